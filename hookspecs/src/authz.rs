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

/// The core actions, for reading an action's name back.
const CORE: [Action; 13] = [
    Action::CreateUser,
    Action::ReadUser,
    Action::ReadEmail,
    Action::UpdateUser,
    Action::DeleteUser,
    Action::ListUsers,
    Action::CreateSpace,
    Action::ReadSpace,
    Action::UpdateSpace,
    Action::DeleteSpace,
    Action::ListMembers,
    Action::PutMember,
    Action::DeleteMember,
];

/// How many distinct plugin action names a process keeps (see
/// [`Action`]'s `Deserialize`): a component's actions are a handful; more
/// is refused rather than kept for the process's life.
const MAX_PLUGIN_ACTIONS: usize = 1024;

/// The longest plugin action name, bytes: each is kept for the process's
/// life.
const MAX_ACTION_NAME: usize = 128;

/// An action travels by name (`"space.delete"`, or a plugin's own), so that
/// a component can ask `authorize` through the services.
impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A core action's name gives that action; any other name a plugin action,
/// whose name is kept once for the process's life (an `Action` names it
/// `&'static`), up to 1024 distinct names of at most 128 bytes.
impl<'de> serde::Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The name as the text holds it, not copied into a `String` first:
        // a service call's arguments are read at every call.
        deserializer.deserialize_str(ActionName)
    }
}

/// Reads an [`Action`] from its name.
struct ActionName;

impl serde::de::Visitor<'_> for ActionName {
    type Value = Action;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an action's name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Action, E> {
        use std::collections::HashSet;
        use std::sync::{Mutex, PoisonError};
        static KEPT: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
        if let Some(core) = CORE.iter().find(|a| a.as_str() == name) {
            return Ok(*core);
        }
        if name.len() > MAX_ACTION_NAME {
            return Err(E::custom(format!(
                "a plugin action name has at most {MAX_ACTION_NAME} bytes, this one {}",
                name.len()
            )));
        }
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = kept.get_or_insert_with(HashSet::new);
        if let Some(known) = kept.get(name) {
            return Ok(Action::Plugin(known));
        }
        if kept.len() >= MAX_PLUGIN_ACTIONS {
            return Err(E::custom(format!(
                "too many distinct plugin action names (at most {MAX_PLUGIN_ACTIONS})"
            )));
        }
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        kept.insert(name);
        Ok(Action::Plugin(name))
    }
}

/// What the action is done to.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused: 403 naming the action, with this reason.
    Deny(String),
    /// Not even visible: 404, exactly as if the resource did not exist.
    Hide,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_action_name_is_at_most_128_bytes() {
        let named = |name: String| serde_json::from_value::<Action>(serde_json::json!(name));
        let longest = format!("test.{}", "a".repeat(MAX_ACTION_NAME - 5));
        assert_eq!(named(longest.clone()).unwrap().as_str(), longest);
        let why = named("b".repeat(200)).unwrap_err().to_string();
        assert!(why.contains("at most 128 bytes, this one 200"), "{why}");
        assert_eq!(named("space.delete".into()).unwrap(), Action::DeleteSpace);
    }

    #[test]
    fn an_action_is_read_from_text_as_it_is_or_escaped() {
        let read = |text: &str| serde_json::from_str::<Action>(text);
        assert_eq!(read(r#""user.read""#).unwrap(), Action::ReadUser);
        assert_eq!(read(r#""user.re\u0061d""#).unwrap(), Action::ReadUser);
        let kept = read(r#""notes.\u0072ead""#).unwrap();
        assert_eq!(kept, Action::Plugin("notes.read"));
        assert_eq!(read(r#""notes.read""#).unwrap(), kept);
        let why = read("7").unwrap_err().to_string();
        assert!(why.contains("expected an action's name"), "{why}");
    }
}
