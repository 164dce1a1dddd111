//! Entity changes, declared once: the table in the `changes!` macro gives
//! each change its [`Change`](crate::Change) variant, its wire name
//! (`user.created`), its in-transaction hook (`on_user_created`) and its
//! after-commit hook (`after_user_created`). Everything that names a change
//! comes from it: `Change` and its names ([`Change::KINDS`](crate::Change::KINDS)),
//! [`Delivery`](crate::Delivery), the two hooks of each change in
//! [`AppHooks`](crate::AppHooks) (whose default bodies hand the change to
//! the catch-all hooks `on_change` and `after_change`), and the two
//! functions the application fires them with
//! ([`host::fire`](crate::host::fire), [`host::deliver`](crate::host::deliver)).
//!
//! The second phase: the application records each change in an outbox table
//! inside the operation's transaction, and delivers it once that
//! transaction committed: to every plugin that hears it after commit, one
//! delivery each, at least once, started in commit order per plugin (one
//! at a time, in that order, for a plugin configured `ordered`), retried with
//! backoff on error, panic or time limit, then kept as dead for an admin
//! to retry.
//!
//! Adding an entity is one row in the table (and an [`Entity`] impl for its
//! type), plus the services that make its changes.

use crate::model::{Membership, Space, User};

/// What [`Delivery::body`](crate::Delivery::body) serializes: the event's
/// id, then the change's own form (`"event"`, `"data"`).
#[derive(serde::Serialize)]
pub(crate) struct Body<'a> {
    pub(crate) id: &'a str,
    #[serde(flatten)]
    pub(crate) change: &'a crate::Change,
}

/// The table of entity changes, and what is generated from it.
///
/// Each row is an entity (the hook argument's name and its type) and its
/// three changes, each with its docs, variant, wire name, in-transaction
/// hook and after-commit hook. Invoked once, in `hooks.rs`, around the
/// hand-written part of the `AppHooks` trait (so everything lands in the
/// `hooks` module, which the crate root re-exports from); it expands to:
///
/// - `enum Change` (a modification carries `before` and `after`) and its
///   names: `Change::KINDS`, `NAMES`, `kind`, `name`, `entity`, ...;
/// - `Delivery`, one plugin's delivery of a `Change`;
/// - the `AppHooks` trait: the hand-written hooks, the catch-all hooks, and
///   two per change (`on_*`, `after_*`) whose default bodies hand the
///   change to the catch-all (see `AppHooks`, "Every change at once");
/// - `fire` and `deliver`: the one `match` from a `Change` to its hooks,
///   re-exported by [`host`](crate::host).
macro_rules! changes {
    // The table: the one place that names the changes. A row:
    //   argument: Type { created|modified|deleted Variant "wire.name" on_hook after_hook; ... }
    ($(#[$attr:meta])* pub trait AppHooks { $($own:tt)* }) => {
        $crate::changes::changes! {
            @expand [$(#[$attr])*] { $($own)* }
            user: User {
                /// A user was created.
                created UserCreated "user.created" on_user_created after_user_created;
                /// A user was changed.
                modified UserModified "user.modified" on_user_modified after_user_modified;
                /// A user was deleted (after their memberships).
                deleted UserDeleted "user.deleted" on_user_deleted after_user_deleted;
            }
            space: Space {
                /// A space was created.
                created SpaceCreated "space.created" on_space_created after_space_created;
                /// A space was changed.
                modified SpaceModified "space.modified" on_space_modified after_space_modified;
                /// A space was deleted (after its sub-spaces and memberships).
                deleted SpaceDeleted "space.deleted" on_space_deleted after_space_deleted;
            }
            membership: Membership {
                /// A user joined a space.
                created MembershipCreated "membership.created" on_membership_created after_membership_created;
                /// A member's role changed.
                modified MembershipModified "membership.modified" on_membership_modified after_membership_modified;
                /// A user left a space (or was removed).
                deleted MembershipDeleted "membership.deleted" on_membership_deleted after_membership_deleted;
            }
        }
    };
    // What is generated from it.
    (@expand [$(#[$attr:meta])*] { $($own:tt)* }
     $( $entity:ident : $ty:ident {
        $(#[$c_doc:meta])* created $created:ident $c_wire:literal $on_c:ident $after_c:ident;
        $(#[$m_doc:meta])* modified $modified:ident $m_wire:literal $on_m:ident $after_m:ident;
        $(#[$d_doc:meta])* deleted $deleted:ident $d_wire:literal $on_d:ident $after_d:ident;
     } )*
    ) => {
        /// One committed change to an entity. Serialised as
        /// `{"event": "user.created", "data": {...}}`; a modification's
        /// `data` is `{"before": {...}, "after": {...}}`.
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
        /// assert_eq!(change.kind().on_hook, "on_user_created");
        /// assert_eq!(change.after_hook(), "after_user_created");
        /// assert_eq!(Change::event_of("after_user_created"), Some("user.created"));
        /// assert_eq!(change.entity().label(), "user 7");
        /// assert_eq!(change.data()["id"], json!(7));
        /// ```
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "event", content = "data")]
        pub enum Change {
            $(
                $(#[$c_doc])*
                #[serde(rename = $c_wire)]
                $created($ty),
                $(#[$m_doc])*
                #[serde(rename = $m_wire)]
                $modified {
                    /// As it was.
                    before: $ty,
                    /// As it is now.
                    after: $ty,
                },
                $(#[$d_doc])*
                #[serde(rename = $d_wire)]
                $deleted($ty),
            )*
        }

        impl Change {
            /// Every change's names, in the table's order.
            pub const KINDS: &'static [ChangeKind] = &[$(
                ChangeKind::new($c_wire, stringify!($on_c), stringify!($after_c)),
                ChangeKind::new($m_wire, stringify!($on_m), stringify!($after_m)),
                ChangeKind::new($d_wire, stringify!($on_d), stringify!($after_d)),
            )*];

            /// Every event name, in the table's order.
            pub const NAMES: &'static [&'static str] = &[$($c_wire, $m_wire, $d_wire,)*];

            /// This change's names.
            pub fn kind(&self) -> &'static ChangeKind {
                match self {
                    $(
                        Change::$created(_) => const {
                            &ChangeKind::new($c_wire, stringify!($on_c), stringify!($after_c))
                        },
                        Change::$modified { .. } => const {
                            &ChangeKind::new($m_wire, stringify!($on_m), stringify!($after_m))
                        },
                        Change::$deleted(_) => const {
                            &ChangeKind::new($d_wire, stringify!($on_d), stringify!($after_d))
                        },
                    )*
                }
            }

            /// The entity it is about (as it is now, for a modification).
            pub fn entity(&self) -> &dyn Entity {
                match self {
                    $(
                        Change::$created(e) | Change::$deleted(e) => e,
                        Change::$modified { after, .. } => after,
                    )*
                }
            }

            /// The JSON array of its in-transaction hook's entity
            /// arguments: `[entity]`, or `[before, after]` for a
            /// modification (what a sandboxed plugin's `on_*` hook is
            /// given), written from the entities directly.
            ///
            /// ```
            /// use hookspecs::{Change, Space, Access, Role};
            ///
            /// # let space = Space { id: 3, name: "lab".into(), parent_id: None, access: Access::Open,
            /// #     default_role: Role::Reader, created_at: String::new() };
            /// let change = Change::SpaceModified { before: space.clone(), after: space };
            /// let text = change.arguments();
            /// assert!(text.starts_with(r#"[{"id":3,"name":"lab""#));
            /// assert_eq!(Change::from_arguments("space.modified", &text).unwrap(), change);
            /// ```
            pub fn arguments(&self) -> String {
                self.arguments_then(None::<&()>)
            }

            /// [`arguments`](Self::arguments), then `last` if some, as
            /// one array.
            fn arguments_then(&self, last: Option<&impl serde::Serialize>) -> String {
                let text = match (self, last) {
                    $(
                        (Change::$created(e) | Change::$deleted(e), None) => {
                            serde_json::to_string(&(e,))
                        }
                        (Change::$created(e) | Change::$deleted(e), Some(last)) => {
                            serde_json::to_string(&(e, last))
                        }
                        (Change::$modified { before, after }, None) => {
                            serde_json::to_string(&(before, after))
                        }
                        (Change::$modified { before, after }, Some(last)) => {
                            serde_json::to_string(&(before, after, last))
                        }
                    )*
                };
                // The entities are structs of strings and numbers: they
                // always serialize.
                text.unwrap_or_default()
            }

            /// The change `event` (`user.created`) whose in-transaction
            /// hook's arguments ([`arguments`](Self::arguments)) are
            /// `json`, read into the entities directly.
            ///
            /// # Errors
            ///
            /// `json` is not that array, or `event` names no change.
            pub fn from_arguments(event: &str, json: &str) -> Result<Change, serde_json::Error> {
                match event {
                    $(
                        $c_wire => serde_json::from_str(json).map(|(e,)| Change::$created(e)),
                        $m_wire => serde_json::from_str(json)
                            .map(|(before, after)| Change::$modified { before, after }),
                        $d_wire => serde_json::from_str(json).map(|(e,)| Change::$deleted(e)),
                    )*
                    other => Err(serde::de::Error::custom(format!("no change `{other}`"))),
                }
            }
        }

        impl Change {
            /// The event's name: `user.created`, `space.modified`, ...
            pub fn name(&self) -> &'static str {
                self.kind().event
            }

            /// The after-commit hook that receives it: `after_user_created`, ...
            pub fn after_hook(&self) -> &'static str {
                self.kind().after_hook
            }

            /// The names of the event called `event` (`user.created`), if there is one.
            pub fn kind_of(event: &str) -> Option<&'static ChangeKind> {
                Self::KINDS.iter().find(|k| k.event == event)
            }

            /// The event an after-commit hook receives: `after_user_created` gives
            /// `user.created`; `None` for any other name.
            pub fn event_of(after_hook: &str) -> Option<&'static str> {
                Self::KINDS
                    .iter()
                    .find(|k| k.after_hook == after_hook)
                    .map(|k| k.event)
            }

            /// The event's `data`: the entity, or `{"before", "after"}`.
            pub fn data(&self) -> serde_json::Value {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::Object(mut map)) => {
                        map.remove("data").unwrap_or_default()
                    }
                    _ => serde_json::Value::Null,
                }
            }
        }

        /// One plugin's delivery of one committed event: what an `after_*` hook
        /// gets beside the entity, and what `after_change` gets.
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
        ///
        /// Its serde form (`{"event_id", "attempt", "recorded_at",
        /// "change"}`) is how it crosses to a sandboxed plugin.
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        pub struct Delivery {
            /// The event's id: unique, and the same on every attempt and for every
            /// plugin. Use it as the idempotency key of whatever the hook does.
            pub event_id: String,
            /// 1 on the first attempt, then 2, 3, ...; 1 again after an
            /// admin's retry of a dead delivery (a fresh round of attempts).
            pub attempt: u32,
            /// When the operation recorded it (RFC 3339, UTC).
            pub recorded_at: String,
            /// What changed.
            pub change: Change,
        }

        impl Delivery {
            /// The JSON array of its after-commit hook's arguments but the
            /// context: the change's entities ([`Change::arguments`]), then
            /// the delivery itself (what a sandboxed plugin's `after_*`
            /// hook is given).
            pub fn arguments(&self) -> String {
                self.change.arguments_then(Some(self))
            }

            /// The delivery of the change `event` whose after-commit
            /// hook's arguments ([`arguments`](Self::arguments)) are
            /// `json`: read from its last element (the entities before it
            /// are the change's, which the delivery holds).
            ///
            /// # Errors
            ///
            /// `json` is not that array, or `event` names no change.
            pub fn from_arguments(event: &str, json: &str) -> Result<Delivery, serde_json::Error> {
                use serde::de::IgnoredAny;
                match event {
                    $(
                        $c_wire | $d_wire => {
                            serde_json::from_str(json).map(|(_, d): (IgnoredAny, _)| d)
                        }
                        $m_wire => serde_json::from_str(json)
                            .map(|(_, _, d): (IgnoredAny, IgnoredAny, _)| d),
                    )*
                    other => Err(serde::de::Error::custom(format!("no change `{other}`"))),
                }
            }

            /// The event as a JSON document, `{"id", "event", "data"}`, to
            /// serialize: what the `webhooks` plugin posts, written in that
            /// order straight from the delivery (no [`serde_json::Value`]
            /// tree on the way).
            pub fn body(&self) -> impl serde::Serialize + '_ {
                crate::changes::Body {
                    id: &self.event_id,
                    change: &self.change,
                }
            }

            /// [`Delivery::body`] as a [`serde_json::Value`], to read fields
            /// from.
            pub fn document(&self) -> serde_json::Value {
                serde_json::to_value(self.body()).expect("a change serializes")
            }
        }

        $(#[$attr])*
        #[hookspec]
        pub trait AppHooks {
            $($own)*

            /// Every change, in the operation's transaction: what a plugin
            /// implements instead of each `on_*` hook to hear them all. See
            /// "Every change at once" above.
            async fn on_change(&self, change: &Change, ctx: &HookContext) -> HookResult<()>;

            /// Every change, after commit: what a plugin implements instead
            /// of each `after_*` hook to hear them all (`delivery.change`
            /// says which). See "Every change at once" above.
            async fn after_change(&self, delivery: &Delivery, ctx: &HookContext)
                -> HookResult<()>;

            $(
                $(#[$c_doc])*
                async fn $on_c(&self, $entity: &$ty, ctx: &HookContext) -> HookResult<()> {
                    self.on_change(&Change::$created($entity.clone()), ctx).await
                }
                $(#[$m_doc])*
                async fn $on_m(
                    &self,
                    before: &$ty,
                    after: &$ty,
                    ctx: &HookContext,
                ) -> HookResult<()> {
                    let (before, after) = (before.clone(), after.clone());
                    self.on_change(&Change::$modified { before, after }, ctx).await
                }
                $(#[$d_doc])*
                async fn $on_d(&self, $entity: &$ty, ctx: &HookContext) -> HookResult<()> {
                    self.on_change(&Change::$deleted($entity.clone()), ctx).await
                }
            )*
            $(
                /// After commit:
                $(#[$c_doc])*
                async fn $after_c(
                    &self,
                    $entity: &$ty,
                    delivery: &Delivery,
                    ctx: &HookContext,
                ) -> HookResult<()> {
                    let _ = $entity;
                    self.after_change(delivery, ctx).await
                }
                /// After commit:
                $(#[$m_doc])*
                async fn $after_m(
                    &self,
                    before: &$ty,
                    after: &$ty,
                    delivery: &Delivery,
                    ctx: &HookContext,
                ) -> HookResult<()> {
                    let _ = (before, after);
                    self.after_change(delivery, ctx).await
                }
                /// After commit:
                $(#[$d_doc])*
                async fn $after_d(
                    &self,
                    $entity: &$ty,
                    delivery: &Delivery,
                    ctx: &HookContext,
                ) -> HookResult<()> {
                    let _ = $entity;
                    self.after_change(delivery, ctx).await
                }
            )*
        }

        /// Fires `change`'s in-transaction hook (`on_*`) on every plugin,
        /// in `ctx`'s transaction.
        ///
        /// # Errors
        ///
        /// The first failing implementation's error (the operation's veto).
        pub async fn fire(
            relay: &AppHooksRelay<'_>,
            change: &Change,
            ctx: &HookContext,
        ) -> Result<(), HookError> {
            match change {
                $(
                    Change::$created(e) => relay.$on_c(e, ctx).await.map(drop),
                    Change::$modified { before, after } => {
                        relay.$on_m(before, after, ctx).await.map(drop)
                    }
                    Change::$deleted(e) => relay.$on_d(e, ctx).await.map(drop),
                )*
            }
        }

        /// Calls `delivery`'s after-commit hook (`after_*`) on the plugins
        /// `relay` reaches (the worker gives it one plugin's).
        ///
        /// # Errors
        ///
        /// The hook's error, panic or time limit.
        pub async fn deliver(
            relay: &AppHooksRelay<'_>,
            delivery: &Delivery,
            ctx: &HookContext,
        ) -> Result<(), HookError> {
            let d = delivery;
            match &d.change {
                $(
                    Change::$created(e) => relay.$after_c(e, d, ctx).await.map(drop),
                    Change::$modified { before, after } => {
                        relay.$after_m(before, after, d, ctx).await.map(drop)
                    }
                    Change::$deleted(e) => relay.$after_d(e, d, ctx).await.map(drop),
                )*
            }
        }
    };
}
pub(crate) use changes;

/// One change's names: a row of the table (see [`Change::KINDS`](crate::Change::KINDS)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeKind {
    /// The wire name: `user.created`.
    pub event: &'static str,
    /// The in-transaction hook: `on_user_created`.
    pub on_hook: &'static str,
    /// The after-commit hook: `after_user_created`.
    pub after_hook: &'static str,
}

impl ChangeKind {
    pub(crate) const fn new(
        event: &'static str,
        on_hook: &'static str,
        after_hook: &'static str,
    ) -> Self {
        ChangeKind {
            event,
            on_hook,
            after_hook,
        }
    }
}

/// What a change is about, named for people and logs: `user 7`, `space 3`,
/// `space 3 user 5`. Each entity type of the table implements it.
///
/// ```
/// use hookspecs::{Change, Entity, Membership, Role};
///
/// let m = Membership { space_id: 3, user_id: 5, role: Role::Reader, created_at: String::new() };
/// assert_eq!(m.label(), "space 3 user 5");
/// assert_eq!(Change::MembershipDeleted(m).entity().label(), "space 3 user 5");
/// ```
pub trait Entity {
    /// `<kind> <id>`.
    fn label(&self) -> String;
}

impl Entity for User {
    fn label(&self) -> String {
        format!("user {}", self.id)
    }
}

impl Entity for Space {
    fn label(&self) -> String {
        format!("space {}", self.id)
    }
}

impl Entity for Membership {
    fn label(&self) -> String {
        format!("space {} user {}", self.space_id, self.user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Change, Delivery};
    use serde_json::json;

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
        assert_eq!(change.kind().on_hook, "on_user_modified");
        assert_eq!(change.entity().label(), "user 2");
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
        // The posted bytes: the document's fields in its order, the
        // entity's in its type's.
        let text = serde_json::to_string(&created.body()).unwrap();
        assert!(
            text.starts_with(r#"{"id":"e1","event":"user.created","data":{"id":3,"#),
            "{text}"
        );
    }

    #[test]
    fn a_hooks_arguments_cross_as_text_and_read_back() {
        let modified = Change::UserModified {
            before: user(1),
            after: user(2),
        };
        let text = modified.arguments();
        let values: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(values, [json!(user(1)), json!(user(2))]);
        assert_eq!(
            Change::from_arguments("user.modified", &text).unwrap(),
            modified
        );
        let created = Change::UserCreated(user(3));
        assert_eq!(
            Change::from_arguments("user.created", &created.arguments()).unwrap(),
            created
        );
        assert!(Change::from_arguments("user.created", &text).is_err());
        assert!(Change::from_arguments("user.exploded", "[]").is_err());
        for change in [created, modified] {
            let delivery = Delivery {
                event_id: "e1".into(),
                attempt: 2,
                recorded_at: "2026-01-01T00:00:00Z".into(),
                change,
            };
            let text = delivery.arguments();
            let values: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
            let mut expected: Vec<serde_json::Value> =
                serde_json::from_str(&delivery.change.arguments()).unwrap();
            expected.push(json!({
                "event_id": "e1",
                "attempt": 2,
                "recorded_at": "2026-01-01T00:00:00Z",
                "change": delivery.change,
            }));
            assert_eq!(values, expected);
            let back = Delivery::from_arguments(delivery.change.name(), &text).unwrap();
            assert_eq!(
                (back.event_id, back.attempt, back.change),
                ("e1".into(), 2, delivery.change)
            );
        }
    }

    #[test]
    fn the_table_names_each_change_once_and_its_hooks_exist() {
        assert_eq!(Change::KINDS.len(), 9);
        let names: Vec<&str> = Change::KINDS.iter().map(|k| k.event).collect();
        assert_eq!(names, Change::NAMES);
        for kind in Change::KINDS {
            assert_eq!(Change::kind_of(kind.event), Some(kind));
            assert_eq!(Change::event_of(kind.after_hook), Some(kind.event));
            let hooks = <dyn crate::AppHooks as hooks_core::Spec>::HOOKS;
            for hook in [kind.on_hook, kind.after_hook] {
                assert!(hooks.iter().any(|h| h.name == hook), "{hook}");
            }
        }
    }
}
