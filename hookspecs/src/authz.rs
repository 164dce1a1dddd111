//! Who may do what: the question every operation asks the `authorize` hook
//! ([`AccessCheck`]) and its answers ([`Decision`]).

use crate::model::{Identity, NewSpace, Space, User};

/// What an identity is about to do. Every core operation asks before it
/// changes or reveals anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `POST /api/users`.
    CreateUser,
    /// See a user (their public profile).
    ReadUser,
    /// See a user's e-mail address.
    ReadEmail,
    /// Change a user.
    UpdateUser,
    /// Delete a user.
    DeleteUser,
    /// List the users.
    ListUsers,
    /// Create a space (at the top, or inside the space of the resource).
    CreateSpace,
    /// See a space.
    ReadSpace,
    /// Change a space.
    UpdateSpace,
    /// Delete a space (with its sub-spaces).
    DeleteSpace,
    /// See a space's members.
    ListMembers,
    /// Add a member or change their role.
    PutMember,
    /// Remove a member (or leave).
    DeleteMember,
    /// A plugin's own action, named by the plugin (`"audit.read"`).
    Plugin(&'static str),
}

impl Action {
    /// The action's name, as answers name it (`space.delete`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CreateUser => "user.create",
            Action::ReadUser => "user.read",
            Action::ReadEmail => "user.read_email",
            Action::UpdateUser => "user.update",
            Action::DeleteUser => "user.delete",
            Action::ListUsers => "user.list",
            Action::CreateSpace => "space.create",
            Action::ReadSpace => "space.read",
            Action::UpdateSpace => "space.update",
            Action::DeleteSpace => "space.delete",
            Action::ListMembers => "member.list",
            Action::PutMember => "member.put",
            Action::DeleteMember => "member.delete",
            Action::Plugin(name) => name,
        }
    }
}

/// What the action is done to.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    /// The users as a whole (listing, creating).
    Users,
    /// One user.
    User(User),
    /// A space about to be created (its parent, if any, is in it).
    NewSpace(NewSpace),
    /// One space.
    Space(Space),
    /// A membership, existing or about to be, of `user_id` in `space`.
    Membership {
        /// The space.
        space: Space,
        /// The member.
        user_id: i64,
    },
    /// A plugin's own resource.
    Plugin {
        /// The plugin.
        plugin: String,
        /// What kind of thing (`"entry"`).
        kind: String,
        /// Which one, if one.
        id: Option<i64>,
    },
}

/// The question the `authorize` hook answers: may `who` do `action` to
/// `resource`?
///
/// ```
/// use hookspecs::prelude::*;
/// use hookspecs::NewSpace;
///
/// /// Only the admin opens public spaces; everything else is left to the
/// /// next plugin, then to the default policy.
/// struct NoPublicSpaces;
///
/// impl NoPublicSpaces {
///     fn decide(check: &AccessCheck) -> Option<Decision> {
///         match (&check.action, &check.resource) {
///             (Action::CreateSpace, Resource::NewSpace(new))
///                 if new.access == Access::Open && !check.is_admin() =>
///             {
///                 Some(Decision::Deny("only the admin opens public spaces".into()))
///             }
///             _ => None,
///         }
///     }
/// }
///
/// #[hookimpl]
/// impl AppHooks for NoPublicSpaces {
///     async fn authorize(&self, check: &AccessCheck, _ctx: &HookContext) -> HookResult<Option<Decision>> {
///         Ok(Self::decide(check))
///     }
/// }
///
/// let ada = Identity { user_id: Some(7), name: "ada".into(), admin: false, via: "app".into() };
/// let check = AccessCheck {
///     who: Some(ada),
///     action: Action::CreateSpace,
///     resource: Resource::NewSpace(NewSpace {
///         name: "lobby".into(),
///         parent_id: None,
///         access: Access::Open,
///         default_role: None,
///     }),
/// };
/// assert!(matches!(NoPublicSpaces::decide(&check), Some(Decision::Deny(_))));
/// assert_eq!(check.user_id(), Some(7));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AccessCheck {
    /// Who asks (`None`: nobody signed in).
    pub who: Option<Identity>,
    /// What they want to do.
    pub action: Action,
    /// To what.
    pub resource: Resource,
}

impl AccessCheck {
    /// The user id of who asks, if they are a user.
    pub fn user_id(&self) -> Option<i64> {
        self.who.as_ref().and_then(|w| w.user_id)
    }

    /// Whether who asks is the admin.
    pub fn is_admin(&self) -> bool {
        self.who.as_ref().is_some_and(|w| w.admin)
    }
}

/// An answer of the `authorize` hook. A plugin with no opinion answers
/// `None`, and the next one is asked; the application's default policy
/// answers last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused: 403 naming the action, with this reason.
    Deny(String),
    /// Not even visible: 404, exactly as if the resource did not exist.
    Hide,
}
