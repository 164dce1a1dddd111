//! Both phases of an entity change start here: the in-transaction hook
//! fires, and the event is recorded for the after-commit phase, in the same
//! transaction.

use hooks_core::PluginManager;
use hookspecs::{ApiError, AppHooks, Change, HookContext};
use serde_json::{Value, json};

/// Records the event in the outbox (one row, read by every plugin
/// implementing its after-commit hook, `after_*`, inserted at commit),
/// then fires its
/// in-transaction hook (`on_*`; its failure is the operation's, and rolls
/// the record back with it). Recording first puts a change before those
/// its hooks cause (a user's creation before the space a hook makes for
/// them). Nothing is recorded when no plugin implements the `after_*` hook
/// (a plugin's `after_change` is registered as each `after_*` hook it
/// stands for, see `AppHooks`).
///
/// # Errors
///
/// The hook's failure, or the database's.
pub async fn emit(
    hooks: &PluginManager<dyn AppHooks>,
    ctx: &HookContext,
    change: Change,
) -> Result<(), ApiError> {
    record(hooks, ctx, &change).await?;
    hookspecs::host::fire(&hooks.hook(), &change, ctx)
        .await
        .map_err(ApiError::from)
}

async fn record(
    hooks: &PluginManager<dyn AppHooks>,
    ctx: &HookContext,
    change: &Change,
) -> Result<(), ApiError> {
    let implemented = hooks
        .get_hookimpls(change.after_hook())
        .unwrap_or_default()
        .iter()
        .any(|i| !i.wrapper);
    if !implemented {
        return Ok(());
    }
    let key = hookspecs::new_secret("evt_")?;
    let text = serde_json::to_string(change).map_err(|e| ApiError::internal(e.to_string()))?;
    // One row, whatever the number of plugins: each reads the log from its
    // own position (see the worker). Inserted as the operation commits,
    // with whatever rows its plugins queued too: on PostgreSQL one
    // statement, one round trip for all of them. Queued now, it keeps its
    // place before the events its hooks cause.
    // The row is handed over, its strings moved, not copied (`json!` of a
    // variable serializes a copy).
    ctx.insert_at_commit(
        "outbox_events",
        [
            ("event_key", Value::String(key)),
            ("event_name", json!(change.name())),
            ("change", Value::String(text)),
            ("recorded_at", Value::String(hookspecs::now())),
            ("recorded_ms", json!(super::now_ms())),
        ],
    )
    .await
}
