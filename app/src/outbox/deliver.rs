//! One event to one plugin: the after-commit hook of that plugin alone,
//! the one matching the event. The delivery worker calls it for each event
//! of a plugin's batch; the test kit for each event its operations made.

use hooks_core::PluginManager;
use hookspecs::{ApiError, AppHooks, Delivery, HookContext};

/// Calls `plugin`'s (and only `plugin`'s) after-commit hook for `delivery`.
///
/// # Errors
///
/// The hook's error, panic or the engine's refusal, its message the text
/// for the delivery's `last_error`; a race the hook's writes lost with a
/// concurrent transaction says so (`is_race`), so that the attempt is run
/// again rather than counted as failed.
pub async fn deliver_to(
    hooks: &PluginManager<dyn AppHooks>,
    plugin: &str,
    delivery: &Delivery,
    ctx: &HookContext,
) -> Result<(), ApiError> {
    let others: Vec<&str> = hooks
        .plugin_names()
        .into_iter()
        .filter(|n| *n != plugin)
        .collect();
    let relay = hooks
        .subset_hook_caller(&others)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    hookspecs::host::deliver(&relay, delivery, ctx)
        .await
        .map_err(|e| {
            let text = e.to_string();
            if ApiError::from(e).is_race() {
                ApiError::race(text)
            } else {
                ApiError::internal(text)
            }
        })
}
