//! The application's entities, as hooks and the API see them.

use serde::{Deserialize, Serialize};

/// A user account. Its JSON leaves `email` out where it is hidden.
///
/// ```
/// use hookspecs::User;
/// use hookspecs::serde_json::{self, json};
///
/// let ada: User = serde_json::from_value(json!({
///     "id": 7, "username": "ada", "display_name": null, "created_at": "2026-01-01T00:00:00Z"
/// }))?;
/// assert_eq!(ada.email, "");
/// assert_eq!(serde_json::to_value(&ada)?.get("email"), None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// Unique e-mail address; empty (and left out of JSON) where the
    /// caller may not see it (only the user and the admin do).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// Name shown to others, if set.
    pub display_name: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// `POST /api/users`. Unknown fields are refused.
///
/// ```
/// use hookspecs::{NewUser, from_json};
/// use hookspecs::serde_json::json;
///
/// let new: NewUser = from_json(json!({"username": "ada", "email": "ada@example.org"}))?;
/// assert_eq!(new.display_name, None);
/// let typo = from_json::<NewUser>(json!({"username": "ada", "email": "a@b", "mail": 1}));
/// assert_eq!(typo.unwrap_err().status, 422);
/// # Ok::<(), hookspecs::ApiError>(())
/// ```
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Unique login name (1 to 64 characters).
    pub username: String,
    /// Unique e-mail address.
    pub email: String,
    /// Optional display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `PATCH /api/users/{id}`: the fields to change. A field left out stays;
/// `"display_name": null` clears it.
///
/// ```
/// use hookspecs::{UserPatch, from_json};
/// use hookspecs::serde_json::json;
///
/// let clear: UserPatch = from_json(json!({"display_name": null}))?;
/// assert_eq!(clear.display_name, Some(None));
/// let keep: UserPatch = from_json(json!({"email": "new@example.org"}))?;
/// assert_eq!((keep.display_name, keep.username), (None, None));
/// # Ok::<(), hookspecs::ApiError>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New login name.
    #[serde(default)]
    pub username: Option<String>,
    /// New e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// New display name (`null` clears it). Left out of the JSON when
    /// unchanged, so that a patch round-trips (a component's service call).
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<Option<String>>,
}

/// Who may see a space and join it; `"open"`, `"on_request"`,
/// `"confidential"` in JSON and in the database.
///
/// ```
/// use hookspecs::Access;
///
/// assert_eq!(Access::OnRequest.as_str(), "on_request");
/// assert_eq!(Access::parse("confidential"), Some(Access::Confidential));
/// assert_eq!(Access::parse("secret"), None);
/// assert_eq!(Access::Open.to_string(), "open");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone may join.
    Open,
    /// Joining needs a space manager's approval.
    OnRequest,
    /// Invitation only.
    Confidential,
}

/// A member's role in a space, from least to most powerful (so roles
/// compare: a space manager is at least a reader).
///
/// ```
/// use hookspecs::Role;
///
/// assert!(Role::SpaceManager >= Role::Contributor);
/// assert_eq!(Role::parse("content_manager"), Some(Role::ContentManager));
/// assert_eq!(Role::Reader.as_str(), "reader");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads content.
    Reader,
    /// Adds content.
    Contributor,
    /// Manages content.
    ContentManager,
    /// Manages the space and its members.
    SpaceManager,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        impl $ty {
            /// The name used in JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),* }
            }

            /// Parses the name used in JSON and in the database.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($ty::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(Access { Open = "open", OnRequest = "on_request", Confidential = "confidential" });
text_enum!(Role {
    Reader = "reader",
    Contributor = "contributor",
    ContentManager = "content_manager",
    SpaceManager = "space_manager",
});

/// A space, possibly nested under a parent space.
///
/// ```
/// use hookspecs::{Access, Role, Space};
/// use hookspecs::serde_json::{self, json};
///
/// let lab = Space {
///     id: 3,
///     name: "lab".into(),
///     parent_id: Some(1),
///     access: Access::OnRequest,
///     default_role: Role::Reader,
///     created_at: "2026-01-01T00:00:00Z".into(),
/// };
/// let doc = serde_json::to_value(&lab)?;
/// assert_eq!(doc["access"], json!("on_request"));
/// assert_eq!(doc["default_role"], json!("reader"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    /// Primary key.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The enclosing space, if any.
    pub parent_id: Option<i64>,
    /// Who may see and join it.
    pub access: Access,
    /// The role given to members who join without one (autoinvite, parent access).
    pub default_role: Role,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// `POST /api/spaces`.
///
/// ```
/// use hookspecs::{Access, NewSpace, from_json};
/// use hookspecs::serde_json::json;
///
/// let new: NewSpace = from_json(json!({"name": "lab", "access": "open"}))?;
/// assert_eq!((new.parent_id, new.access, new.default_role), (None, Access::Open, None));
/// # Ok::<(), hookspecs::ApiError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSpace {
    /// Display name (1 to 200 characters).
    pub name: String,
    /// The enclosing space, if any.
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// Who may see and join it.
    pub access: Access,
    /// Default `reader`.
    #[serde(default)]
    pub default_role: Option<Role>,
}

/// `PATCH /api/spaces/{id}`: the fields to change. `"parent_id": null`
/// makes the space a top-level one; left out, the parent stays.
///
/// ```
/// use hookspecs::{SpacePatch, from_json};
/// use hookspecs::serde_json::json;
///
/// let to_top: SpacePatch = from_json(json!({"parent_id": null}))?;
/// assert_eq!(to_top.parent_id, Some(None));
/// let renamed: SpacePatch = from_json(json!({"name": "lab 2"}))?;
/// assert_eq!(renamed.parent_id, None);
/// # Ok::<(), hookspecs::ApiError>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpacePatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New parent (`null` makes it a top-level space). Left out of the
    /// JSON when unchanged, as `UserPatch::display_name`.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_id: Option<Option<i64>>,
    /// New access.
    #[serde(default)]
    pub access: Option<Access>,
    /// New default role.
    #[serde(default)]
    pub default_role: Option<Role>,
}

/// A user's role in a space.
///
/// ```
/// use hookspecs::{Membership, Role};
/// use hookspecs::serde_json::{self, json};
///
/// let m: Membership = serde_json::from_value(json!({
///     "space_id": 3, "user_id": 7, "role": "contributor", "created_at": "2026-01-01T00:00:00Z"
/// }))?;
/// assert_eq!(m.role, Role::Contributor);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The space.
    pub space_id: i64,
    /// The member.
    pub user_id: i64,
    /// Their role.
    pub role: Role,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Who is acting: the result of authentication (what an `authenticate`
/// hook answers).
///
/// ```
/// use hookspecs::Identity;
///
/// // A key that acts for user 7, recognised by the `api_keys` plugin:
/// let who = Identity {
///     user_id: Some(7),
///     name: "ada".into(),
///     admin: false,
///     via: "api_keys".into(),
/// };
/// assert!(!who.admin && who.user_id == Some(7));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The user acting, if the credential belongs to one.
    pub user_id: Option<i64>,
    /// A name for logs and audit ("admin", a username, ...).
    pub name: String,
    /// Whether this identity may administer the application.
    pub admin: bool,
    /// What recognised the credential (a plugin name, or "app").
    pub via: String,
}

/// Tells "absent" (`None`) from "`null`" (`Some(None)`) in a PATCH body.
fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
