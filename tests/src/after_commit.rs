//! `after`, a test plugin for the after-commit phase, linked into
//! `test-app` only when [`AFTER_COMMIT_ENV`] is `1` (other tests see no
//! outbox traffic from it).
//!
//! Its `after_user_created` writes `(event id, attempt, username)` into
//! `plugin_after_seen` through the delivery's own unit of work, then panics
//! on the first two attempts for users named `after-panic-*`: only the
//! attempt that succeeded leaves its row.

use hooks_core::Plugin;
use hookspecs::prelude::*;

/// Set to `1` to link `after` in.
pub const AFTER_COMMIT_ENV: &str = "TEST_AFTER_COMMIT";

/// `after`, if [`AFTER_COMMIT_ENV`] asks for it.
pub fn plugins() -> Vec<(String, Plugin<dyn AppHooks>)> {
    match std::env::var(AFTER_COMMIT_ENV).as_deref() {
        Ok("1") => vec![("after".into(), Plugin::new(After))],
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
