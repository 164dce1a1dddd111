//! One event to one plugin: the after-commit hook of that plugin alone,
//! the one matching the event. The delivery worker calls it for each event
//! of a plugin's batch; the test kit for each event its operations made.

use hooks_core::PluginManager;
use hookspecs::{AppHooks, Change, Delivery, HookContext};

/// Calls `plugin`'s (and only `plugin`'s) after-commit hook for `delivery`.
///
/// # Errors
///
/// The hook's error, panic or the engine's refusal, as text for the
/// delivery's `last_error`.
pub async fn deliver_to(
    hooks: &PluginManager<dyn AppHooks>,
    plugin: &str,
    delivery: &Delivery,
    ctx: &HookContext,
) -> Result<(), String> {
    let others: Vec<&str> = hooks
        .plugin_names()
        .into_iter()
        .filter(|n| *n != plugin)
        .collect();
    let relay = hooks
        .subset_hook_caller(&others)
        .map_err(|e| e.to_string())?;
    let d = delivery;
    let called = match &d.change {
        Change::UserCreated(user) => relay.after_user_created(user, d, ctx).await,
        Change::UserModified { before, after } => {
            relay.after_user_modified(before, after, d, ctx).await
        }
        Change::UserDeleted(user) => relay.after_user_deleted(user, d, ctx).await,
        Change::SpaceCreated(space) => relay.after_space_created(space, d, ctx).await,
        Change::SpaceModified { before, after } => {
            relay.after_space_modified(before, after, d, ctx).await
        }
        Change::SpaceDeleted(space) => relay.after_space_deleted(space, d, ctx).await,
        Change::MembershipCreated(m) => relay.after_membership_created(m, d, ctx).await,
        Change::MembershipModified { before, after } => {
            relay.after_membership_modified(before, after, d, ctx).await
        }
        Change::MembershipDeleted(m) => relay.after_membership_deleted(m, d, ctx).await,
    };
    called.map(drop).map_err(|e| e.to_string())
}
