//! Test plugins for the after-commit phase, linked into `test-app` only
//! when [`AFTER_COMMIT_ENV`] asks for one (other tests see no outbox
//! traffic from them).
//!
//! - `after` (`1`): its `after_user_created` writes `(event id, attempt,
//!   username)` into `plugin_after_seen` through the delivery's own unit of
//!   work, then panics on the first two attempts for users named
//!   `after-panic-*`: only the attempt that succeeded leaves its row.
//! - `every` (`every`): the catch-all hooks, see [`Every`].

use hooks_core::Plugin;
use hookspecs::prelude::*;

/// Set to `1` to link `after` in, to `every` for `every`.
pub const AFTER_COMMIT_ENV: &str = "TEST_AFTER_COMMIT";

/// `after` or `every`, if [`AFTER_COMMIT_ENV`] asks for it.
pub fn plugins() -> Vec<(String, Plugin<dyn AppHooks>)> {
    match std::env::var(AFTER_COMMIT_ENV).as_deref() {
        Ok("1") => vec![("after".into(), Plugin::new(After))],
        Ok("every") => vec![("every".into(), Plugin::new(Every))],
        _ => Vec::new(),
    }
}

/// See the module.
pub struct After;

#[hookimpl]
impl AppHooks for After {
    async fn after_user_created(
        &self,
        user: &User,
        delivery: &Delivery,
        ctx: &HookContext,
    ) -> HookResult<()> {
        let mut db = ctx.db().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS plugin_after_seen \
             (event_key TEXT NOT NULL, attempt BIGINT NOT NULL, username TEXT NOT NULL)",
        )
        .execute(&mut *db)
        .await?;
        sqlx::query(
            "INSERT INTO plugin_after_seen (event_key, attempt, username) VALUES ($1, $2, $3)",
        )
        .bind(&delivery.event_id)
        .bind(i64::from(delivery.attempt))
        .bind(&user.username)
        .execute(&mut *db)
        .await?;
        if user.username.starts_with("after-panic-") && delivery.attempt < 3 {
            panic!("after panics on attempt {}", delivery.attempt);
        }
        Ok(())
    }
}

/// `every`: the catch-all hooks, registered as linked-in plugins are (its
/// `Plugin::new` value, expanded by the app). Each writes `(phase, event,
/// entity)` into `plugin_every_seen`: `on_change` in the operation's
/// transaction (`tx`; it vetoes users named `veto-*` with a 409),
/// `after_change` in the delivery's unit of work (`after`). It implements
/// `after_space_created` too (`after-space`), which takes that event from
/// `after_change`.
pub struct Every;

async fn seen(ctx: &HookContext, phase: &str, change: &Change) -> HookResult<()> {
    let mut db = ctx.db().await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS plugin_every_seen \
         (seq BIGINT NOT NULL, phase TEXT NOT NULL, event TEXT NOT NULL, entity TEXT NOT NULL)",
    )
    .execute(&mut *db)
    .await?;
    sqlx::query(
        "INSERT INTO plugin_every_seen (seq, phase, event, entity) VALUES \
         ((SELECT COALESCE(MAX(seq), 0) + 1 FROM plugin_every_seen), $1, $2, $3)",
    )
    .bind(phase)
    .bind(change.name())
    .bind(change.entity().label())
    .execute(&mut *db)
    .await?;
    Ok(())
}

#[hookimpl]
impl AppHooks for Every {
    async fn on_change(&self, change: &Change, ctx: &HookContext) -> HookResult<()> {
        if let Change::UserCreated(user) = change {
            if user.username.starts_with("veto-") {
                return Err(ApiError::conflict(format!("every vetoes {}", user.username)).into());
            }
        }
        seen(ctx, "tx", change).await
    }

    async fn after_change(&self, delivery: &Delivery, ctx: &HookContext) -> HookResult<()> {
        seen(ctx, "after", &delivery.change).await
    }

    async fn after_space_created(
        &self,
        _: &Space,
        delivery: &Delivery,
        ctx: &HookContext,
    ) -> HookResult<()> {
        seen(ctx, "after-space", &delivery.change).await
    }
}
