//! Records every entity change (kind, entity, acting user, time) in its own
//! table, inside the transaction of the operation (one hook, `on_change`):
//! a rolled-back operation leaves no entry.
//! `GET /plugins/audit_log/entries?limit=&offset=` lists them newest first,
//! to the admin only (every user's events are in it).
//!
//! Its SQL goes through the SDK's query API (`ctx.insert_at_commit`, `ctx.query`),
//! so the same source also builds for wasm32-wasip2.

use hookspecs::Migration;
use hookspecs::prelude::*;
use hookspecs::serde_json::Value;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "entries",
    sqlite: include_str!("../migrations/0001_entries.sqlite.sql"),
    postgres: include_str!("../migrations/0001_entries.postgres.sql"),
}];

#[derive(Default)]
pub struct AuditLog;

async fn record(ctx: &HookContext, kind: &str, entity: String) -> HookResult<()> {
    let actor = ctx.actor().map(|a| a.name.as_str());
    // Nothing reads an entry back before the operation commits: inserted
    // then, with the operation's event, it costs no round trip of its own.
    // The row is handed over, its owned strings moved (`json!` of a
    // variable serializes a copy).
    ctx.insert_at_commit(
        "plugin_audit_log_entries",
        [
            ("kind", json!(kind)),
            ("entity", Value::String(entity)),
            ("actor", json!(actor)),
            ("at", Value::String(hookspecs::now())),
        ],
    )
    .await?;
    Ok(())
}

#[hookimpl]
impl AppHooks for AuditLog {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        // Every user's events: for the admin only.
        startup
            .routes()
            .admin()
            .get("/entries", |req: Request| async move {
                let number = |name: &str, default: i64| -> Result<i64, ApiError> {
                    match req.query(name) {
                        None => Ok(default),
                        Some(raw) => raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                            ApiError::invalid(name, format!("{name} must be a number >= 0"))
                        }),
                    }
                };
                let (limit, offset) = (number("limit", 50)?.min(500), number("offset", 0)?);
                let entries = req
                    .ctx()
                    .query(
                        "SELECT id, kind, entity, actor, at FROM plugin_audit_log_entries \
                         ORDER BY id DESC LIMIT $1 OFFSET $2",
                        &[json!(limit), json!(offset)],
                    )
                    .await?;
                Ok(json!({"entries": entries, "limit": limit, "offset": offset}))
            })?;
        Ok(())
    }

    async fn on_change(&self, change: &Change, ctx: &HookContext) -> HookResult<()> {
        // Entries name their kind as the hooks did: `user_created`.
        let kind = change
            .kind()
            .on_hook
            .strip_prefix("on_")
            .unwrap_or_default();
        record(ctx, kind, change.entity().label()).await
    }
}

hookspecs::export_plugin!(AuditLog::default, migrations = MIGRATIONS);

#[cfg(test)]
mod tests {
    use app_testkit::{HookTest, admin, new_user, run};
    use hookspecs::ApiError;

    #[test]
    fn records_each_change_inside_the_operation_and_nothing_of_a_failed_one() {
        run(async {
            let kit = HookTest::new()
                .await
                .register("audit_log", crate::app_plugin_register)
                .await;
            let ada = kit
                .run(admin(), |ctx| async move {
                    ctx.services().create_user(&ctx, new_user("ada")).await
                })
                .await
                .unwrap();
            let failed = kit
                .run(admin(), |ctx| async move {
                    ctx.services().create_user(&ctx, new_user("bob")).await?;
                    Err::<(), _>(ApiError::conflict("changed my mind"))
                })
                .await;
            assert_eq!(failed.unwrap_err().code, "conflict");
            let entries = kit
                .column(
                    "SELECT kind || ' ' || entity || ' by ' || actor FROM plugin_audit_log_entries",
                )
                .await;
            assert_eq!(entries, [format!("user_created user {} by admin", ada.id)]);
            assert_eq!(kit.count("SELECT COUNT(*) FROM users").await, 1);
        });
    }
}
