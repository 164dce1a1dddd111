//! Both phases of an entity change start here: the in-transaction hook
//! fires, and the event is recorded for the after-commit phase, in the same
//! transaction.

use hooks_core::PluginManager;
use hookspecs::{ApiError, AppHooks, Change, HookContext};

/// Records the event in the outbox (one row, read by every plugin
/// implementing its after-commit hook, `after_*`, written as the
/// transaction commits), then fires its
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
    let postgres = ctx.db().await?.backend_name() == "PostgreSQL";
    let literal = |value: &str| quoted(value, postgres);
    let (key, name, text, at) = (
        literal(&key)?,
        literal(change.name())?,
        literal(&text)?,
        literal(&hookspecs::now())?,
    );
    // One row, whatever the number of plugins: each reads the log from its
    // own position (see the worker). Written as the operation commits, in
    // the same round trip as `COMMIT` on PostgreSQL: nothing in the
    // operation reads it back, and the events of one operation keep the
    // order they were recorded in (ids are drawn as the rows are inserted).
    let statement = format!(
        "INSERT INTO outbox_events (event_key, event_name, change, recorded_at, recorded_ms) \
         VALUES ({}, {}, {}, {}, {})",
        key,
        name,
        text,
        at,
        super::now_ms(),
    );
    hookspecs::host::at_commit(ctx, statement);
    Ok(())
}

/// `value` as an SQL string literal. PostgreSQL's `E'...'` reads a
/// backslash as an escape whatever `standard_conforming_strings` says, so
/// both it and the quote are doubled; SQLite knows no escape but the
/// doubled quote. A NUL is refused (neither stores one in text; JSON
/// writes it `\u0000`).
fn quoted(value: &str, postgres: bool) -> Result<String, ApiError> {
    let mut out = String::with_capacity(value.len() + 3);
    if postgres {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if postgres => out.push_str("\\\\"),
            '\0' => return Err(ApiError::internal("an event's text holds a NUL byte")),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn literals_double_quotes_and_on_postgres_backslashes() {
        let tricky = r#"{"name":"o'neil \"x\" \\ '); DROP TABLE users; --"}"#;
        assert_eq!(
            quoted(tricky, true).unwrap(),
            r#"E'{"name":"o''neil \\"x\\" \\\\ ''); DROP TABLE users; --"}'"#
        );
        assert_eq!(
            quoted(tricky, false).unwrap(),
            r#"'{"name":"o''neil \"x\" \\ ''); DROP TABLE users; --"}'"#
        );
        assert!(quoted("a\0b", false).is_err());
    }
}
