//! The second phase: what a committed operation changed ([`Change`]) and
//! how one plugin receives it ([`Delivery`]), through the `after_*` hooks
//! of [`AppHooks`](crate::AppHooks).
//!
//! Each `on_*` hook has an `after_*` twin. The application records the
//! change in an outbox table inside the operation's transaction, and
//! delivers it once that transaction committed: to every plugin that
//! implements the `after_*` hook, one delivery each, at least once, in
//! commit order per plugin, retried with backoff on error, panic or time
//! limit, then kept as dead for an admin to retry.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{Membership, Space, User};

/// One committed change to an entity. Serialised as
/// `{"event": "user.created", "data": {...}}`; a modification's `data` is
/// `{"before": {...}, "after": {...}}`.
///
/// ```
/// use hookspecs::{Change, User};
/// use hookspecs::serde_json::json;
///
/// let ada = User {
///     id: 7,
///     username: "ada".into(),
///     email: String::new(),
///     display_name: None,
///     created_at: "2026-01-01T00:00:00Z".into(),
/// };
/// let change = Change::UserCreated(ada);
/// assert_eq!(change.name(), "user.created");
/// assert_eq!(change.after_hook(), "after_user_created");
/// assert_eq!(Change::event_of("after_user_created"), Some("user.created"));
/// assert_eq!(change.data()["id"], json!(7));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data")]
pub enum Change {
    /// `user.created`.
    #[serde(rename = "user.created")]
    UserCreated(User),
    /// `user.modified`.
    #[serde(rename = "user.modified")]
    UserModified {
        /// As it was.
        before: User,
        /// As it is now.
        after: User,
    },
    /// `user.deleted`.
    #[serde(rename = "user.deleted")]
    UserDeleted(User),
    /// `space.created`.
    #[serde(rename = "space.created")]
    SpaceCreated(Space),
    /// `space.modified`.
    #[serde(rename = "space.modified")]
    SpaceModified {
        /// As it was.
        before: Space,
        /// As it is now.
        after: Space,
    },
    /// `space.deleted`.
    #[serde(rename = "space.deleted")]
    SpaceDeleted(Space),
    /// `membership.created`.
    #[serde(rename = "membership.created")]
    MembershipCreated(Membership),
    /// `membership.modified`.
    #[serde(rename = "membership.modified")]
    MembershipModified {
        /// As it was.
        before: Membership,
        /// As it is now.
        after: Membership,
    },
    /// `membership.deleted`.
    #[serde(rename = "membership.deleted")]
    MembershipDeleted(Membership),
}

impl Change {
    /// Every event name, in the order of the variants.
    pub const NAMES: [&'static str; 9] = [
        "user.created",
        "user.modified",
        "user.deleted",
        "space.created",
        "space.modified",
        "space.deleted",
        "membership.created",
        "membership.modified",
        "membership.deleted",
    ];

    /// The event's name: `user.created`, `space.modified`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Change::UserCreated(_) => "user.created",
            Change::UserModified { .. } => "user.modified",
            Change::UserDeleted(_) => "user.deleted",
            Change::SpaceCreated(_) => "space.created",
            Change::SpaceModified { .. } => "space.modified",
            Change::SpaceDeleted(_) => "space.deleted",
            Change::MembershipCreated(_) => "membership.created",
            Change::MembershipModified { .. } => "membership.modified",
            Change::MembershipDeleted(_) => "membership.deleted",
        }
    }

    /// The after-commit hook that receives it: `after_user_created`, ...
    pub fn after_hook(&self) -> &'static str {
        match self {
            Change::UserCreated(_) => "after_user_created",
            Change::UserModified { .. } => "after_user_modified",
            Change::UserDeleted(_) => "after_user_deleted",
            Change::SpaceCreated(_) => "after_space_created",
            Change::SpaceModified { .. } => "after_space_modified",
            Change::SpaceDeleted(_) => "after_space_deleted",
            Change::MembershipCreated(_) => "after_membership_created",
            Change::MembershipModified { .. } => "after_membership_modified",
            Change::MembershipDeleted(_) => "after_membership_deleted",
        }
    }

    /// The event an after-commit hook receives: `after_user_created` gives
    /// `user.created`; `None` for any other name.
    pub fn event_of(after_hook: &str) -> Option<&'static str> {
        let rest = after_hook.strip_prefix("after_")?;
        Self::NAMES
            .into_iter()
            .find(|name| name.replace('.', "_") == rest)
    }

    /// The event's `data`: the entity, or `{"before", "after"}`.
    pub fn data(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}

/// One plugin's delivery of one committed event: what an `after_*` hook
/// gets beside the entity.
///
/// ```
/// use hookspecs::{Change, Delivery, Space, Access, Role};
///
/// # let space = Space { id: 3, name: "lab".into(), parent_id: None, access: Access::Open,
/// #     default_role: Role::Reader, created_at: "2026-01-01T00:00:00Z".into() };
/// let delivery = Delivery {
///     event_id: "01J…".into(),
///     attempt: 2,
///     recorded_at: "2026-01-01T00:00:00Z".into(),
///     change: Change::SpaceDeleted(space),
/// };
/// // What the webhooks plugin posts; `id` is the same on every attempt,
/// // so the receiver can drop the duplicates at-least-once delivery makes.
/// let doc = delivery.document();
/// assert_eq!(doc["id"], "01J…");
/// assert_eq!(doc["event"], "space.deleted");
/// assert_eq!(doc["data"]["name"], "lab");
/// ```
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The event's id: unique, and the same on every attempt and for every
    /// plugin. Use it as the idempotency key of whatever the hook does.
    pub event_id: String,
    /// 1 on the first attempt, then 2, 3, ...
    pub attempt: u32,
    /// When the operation recorded it (RFC 3339, UTC).
    pub recorded_at: String,
    /// What changed.
    pub change: Change,
}

impl Delivery {
    /// The event as a JSON document: `{"id", "event", "data"}` (what the
    /// `webhooks` plugin posts).
    pub fn document(&self) -> Value {
        json!({
            "id": self.event_id,
            "event": self.change.name(),
            "data": self.change.data(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> User {
        User {
            id,
            username: format!("u{id}"),
            email: format!("u{id}@example.org"),
            display_name: None,
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_change_round_trips_and_names_its_hook() {
        let change = Change::UserModified {
            before: user(1),
            after: user(2),
        };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
        assert_eq!(change.name(), "user.modified");
        assert_eq!(change.after_hook(), "after_user_modified");
        assert_eq!(
            Change::event_of("after_user_modified"),
            Some("user.modified")
        );
        assert_eq!(Change::event_of("on_user_modified"), None);
        assert_eq!(change.data()["after"]["id"], 2);
        let created = Delivery {
            event_id: "e1".into(),
            attempt: 1,
            recorded_at: String::new(),
            change: Change::UserCreated(user(3)),
        };
        assert_eq!(
            created.document(),
            json!({"id": "e1", "event": "user.created", "data": serde_json::to_value(user(3)).unwrap()})
        );
    }
}
