//! Test plugins, linked into the `test-app` binary.
//!
//! - `recorder` (priority 10) and `second` (priority 0) record every entity
//!   hook they receive into `plugin_recorder_events`, inside the operation's
//!   transaction. `recorder` also adds routes under `/plugins/recorder/`.
//! - `failing` fails, panics or answers 409 in `on_user_created` for
//!   usernames starting with `fail-`, `panic-` or `conflict-` (and raises a
//!   serialization failure once for `retry-`), and fails
//!   `on_space_created` for space names containing `fail-`.
//! - `cascade` creates a space through the services for `auto-` users, and
//!   recurses endlessly for `loop-N` users.
//! - `tokens` recognises `user-token` as a non-admin identity for user 1.
//! - `gate` takes part in `authorize` (see [`Gate`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hooks_core::Plugin;
use hookspecs::prelude::*;
use hookspecs::{NewSpace, NewUser, Routes};
use serde_json::Value;
use sqlx::Row;

/// The token `tokens` recognises, as a non-admin identity.
pub const USER_TOKEN: &str = "user-token";
/// The name of the file the slow route writes before it sleeps.
pub const SLOW_MARKER: &str = "slow-started";
/// Set to `1` to make `recorder` register one route twice at startup.
pub const ROUTE_CLASH_ENV: &str = "TEST_ROUTE_CLASH";

/// Every test plugin, by name, in registration order.
pub fn all() -> Vec<(String, Plugin<dyn AppHooks>)> {
    vec![
        ("tokens".into(), Plugin::new(Tokens)),
        ("second".into(), Plugin::new(Second)),
        ("failing".into(), Plugin::new(Failing)),
        ("cascade".into(), Plugin::new(Cascade)),
        ("recorder".into(), Plugin::new(Recorder::default())),
        ("gate".into(), Plugin::new(Gate)),
    ]
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS plugin_recorder_events (\
     seq BIGINT NOT NULL, plugin TEXT NOT NULL, hook TEXT NOT NULL, \
     entity_id BIGINT, detail TEXT NOT NULL, actor TEXT)";

async fn ensure_table(ctx: &HookContext) -> Result<(), ApiError> {
    sqlx::query(CREATE_TABLE)
        .execute(&mut *ctx.db().await?)
        .await?;
    Ok(())
}

/// Writes one event row in the hook's unit of work.
async fn record(
    ctx: &HookContext,
    plugin: &str,
    hook: &str,
    entity_id: i64,
    detail: Value,
) -> HookResult<()> {
    ensure_table(ctx).await?;
    sqlx::query(
        "INSERT INTO plugin_recorder_events (seq, plugin, hook, entity_id, detail, actor) \
         VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM plugin_recorder_events), $1, $2, $3, $4, $5)",
    )
    .bind(plugin)
    .bind(hook)
    .bind(entity_id)
    .bind(detail.to_string())
    .bind(ctx.actor().map(|who| who.name.clone()))
    .execute(&mut *ctx.db().await?)
    .await
    .map_err(ApiError::from)?;
    Ok(())
}

fn json_of(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("entities serialize")
}

fn changed(before: &impl serde::Serialize, after: &impl serde::Serialize) -> Value {
    json!({"before": json_of(before), "after": json_of(after)})
}

/// The rows of `plugin_recorder_events`, in order.
async fn events(ctx: &HookContext) -> Result<Value, ApiError> {
    ensure_table(ctx).await?;
    let rows = sqlx::query(
        "SELECT seq, plugin, hook, entity_id, detail, actor FROM plugin_recorder_events ORDER BY seq",
    )
    .fetch_all(&mut *ctx.db().await?)
    .await?;
    rows.iter()
        .map(|row| {
            let detail: String = row.try_get("detail")?;
            Ok(json!({
                "seq": row.try_get::<i64, _>("seq")?,
                "plugin": row.try_get::<String, _>("plugin")?,
                "hook": row.try_get::<String, _>("hook")?,
                "entity_id": row.try_get::<Option<i64>, _>("entity_id")?,
                "detail": serde_json::from_str::<Value>(&detail)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
                "actor": row.try_get::<Option<String>, _>("actor")?,
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()
        .map(Value::Array)
}

/// Implements every entity hook of `AppHooks` for `$ty` by recording it as
/// plugin `$name` at priority `$priority`; `$extra` adds more hooks.
macro_rules! recording_plugin {
    ($ty:ty, $name:literal, $priority:literal, { $($extra:tt)* }) => {
        #[hookimpl]
        impl AppHooks for $ty {
            $($extra)*

            #[hookimpl(priority = $priority)]
            async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_user_created", user.id, json_of(user)).await
            }

            #[hookimpl(priority = $priority)]
            async fn on_user_modified(&self, before: &User, after: &User, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_user_modified", after.id, changed(before, after)).await
            }

            #[hookimpl(priority = $priority)]
            async fn on_user_deleted(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_user_deleted", user.id, json_of(user)).await
            }

            #[hookimpl(priority = $priority)]
            async fn on_space_created(&self, space: &Space, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_space_created", space.id, json_of(space)).await
            }

            #[hookimpl(priority = $priority)]
            async fn on_space_modified(&self, before: &Space, after: &Space, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_space_modified", after.id, changed(before, after)).await
            }

            #[hookimpl(priority = $priority)]
            async fn on_space_deleted(&self, space: &Space, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_space_deleted", space.id, json_of(space)).await
            }

            #[hookimpl(priority = $priority)]
            async fn on_membership_created(&self, m: &Membership, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_membership_created", m.space_id, json_of(m)).await
            }

            #[hookimpl(priority = $priority)]
            async fn on_membership_modified(&self, before: &Membership, after: &Membership, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_membership_modified", after.space_id, changed(before, after)).await
            }

            #[hookimpl(priority = $priority)]
            async fn on_membership_deleted(&self, m: &Membership, ctx: &HookContext) -> HookResult<()> {
                record(ctx, $name, "on_membership_deleted", m.space_id, json_of(m)).await
            }
        }
    };
}

/// Records every entity hook (priority 10) and owns the test routes.
#[derive(Default)]
pub struct Recorder {
    /// The routes handle kept past startup, to try a late registration.
    retained: Arc<OnceLock<Routes>>,
}

impl Recorder {
    fn add_routes(&self, routes: &Routes) -> HookResult<()> {
        routes.get(
            "/events",
            |req: Request| async move { events(req.ctx()).await },
        )?;
        routes.get("/whoami", |req: Request| async move {
            Ok(json_of(req.require_identity()?))
        })?;
        routes.post("/echo/:word", |req: Request| async move {
            Ok(json!({
                "word": req.param("word"),
                "q": req.query("q"),
                "body": req.body(),
                "path": req.path(),
            }))
        })?;
        let retained = self.retained.clone();
        routes.get("/late", move |_req: Request| {
            let retained = retained.clone();
            async move {
                let routes = retained
                    .get()
                    .ok_or_else(|| ApiError::internal("no routes handle retained"))?;
                let outcome = routes.get("/late-added", |_req: Request| async {
                    Ok(json!({"late": true}))
                });
                Ok(match outcome {
                    Ok(()) => Reply::ok(json!({"registered": true})),
                    Err(refused) => Reply::ok(json!({"refused": refused.to_string()})),
                })
            }
        })?;
        routes.get("/slow", |req: Request| async move {
            let dir = req
                .query("dir")
                .ok_or_else(|| ApiError::bad_request("?dir= is required"))?;
            let marker = std::path::Path::new(dir).join(SLOW_MARKER);
            std::fs::write(&marker, b"started").map_err(|e| ApiError::internal(e.to_string()))?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(json!({"slow": "done"}))
        })?;
        // Creates user `slow-writer`, writes the marker, then takes 500 ms more.
        routes.post("/slow-write", |req: Request| async move {
            let dir = req
                .query("dir")
                .ok_or_else(|| ApiError::bad_request("?dir= is required"))?;
            let ctx = req.ctx();
            let user = NewUser {
                username: "slow-writer".into(),
                email: "slow-writer@example.com".into(),
                display_name: None,
            };
            ctx.services().create_user(ctx, user).await?;
            let marker = std::path::Path::new(dir).join(SLOW_MARKER);
            std::fs::write(&marker, b"started").map_err(|e| ApiError::internal(e.to_string()))?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(json!({"slow": "done"}))
        })?;
        routes.get("/panic", |_req: Request| async move {
            if true {
                panic!("the recorder's route panics");
            }
            Ok(json!({}))
        })?;
        // Creates a user through the services, then succeeds or (with
        // `?fail=1`) fails: the handler's writes commit or roll back with it.
        routes.post("/users", |req: Request| async move {
            let new: NewUser = req.json()?;
            let user = req.ctx().services().create_user(req.ctx(), new).await?;
            if req.query("fail") == Some("1") {
                return Err(ApiError::conflict("changed my mind").with("created", user.id));
            }
            Ok(Reply::created(json_of(&user)))
        })?;
        if std::env::var(ROUTE_CLASH_ENV).as_deref() == Ok("1") {
            routes.get("/clash/:first", |_req: Request| async { Ok(json!({})) })?;
            routes.get("/clash/:second", |_req: Request| async { Ok(json!({})) })?;
        }
        Ok(())
    }
}

recording_plugin!(Recorder, "recorder", 10, {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        let routes = startup.routes();
        self.add_routes(&routes)?;
        let _ = self.retained.set(routes);
        Ok(())
    }
});

/// Records every entity hook at priority 0.
pub struct Second;

recording_plugin!(Second, "second", 0, {});

/// Fails `on_user_created` on demand, by username prefix; for `retry-`
/// users, with a serialization failure, the first time only.
pub struct Failing;

/// Whether this is the first time `name` is seen (in this process).
fn first_attempt(name: &str) -> bool {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let first = !seen.iter().any(|s| s == name);
    if first {
        seen.push(name.to_owned());
    }
    first
}

#[hookimpl]
impl AppHooks for Failing {
    async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
        let name = user.username.as_str();
        if name.starts_with("retry-") && first_attempt(name) {
            // What a real serialization failure looks like to the app
            // (PostgreSQL only): the operation must be run again whole.
            sqlx::query(
                "DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = 'serialization_failure'; END $$",
            )
            .execute(&mut *ctx.db().await?)
            .await?;
        }
        if name.starts_with("fail-") {
            return Err(hooks_core::anyhow::anyhow!("refusing {name}"));
        }
        if name.starts_with("panic-") {
            panic!("the failing plugin panics on {name}");
        }
        if name.starts_with("conflict-") {
            return Err(ApiError::conflict(format!("{name} conflicts")).into());
        }
        Ok(())
    }

    async fn on_space_created(&self, space: &Space, _ctx: &HookContext) -> HookResult<()> {
        if space.name.contains("fail-") {
            return Err(hooks_core::anyhow::anyhow!("refusing space {}", space.name));
        }
        Ok(())
    }
}

/// Gives every `auto-` user a space, and every `loop-N` user a `loop-N+1`
/// user (endless: the depth limit stops it), through the services.
pub struct Cascade;

#[hookimpl]
impl AppHooks for Cascade {
    async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
        if user.username.starts_with("auto-") {
            let new = NewSpace {
                name: format!("home of {}", user.username),
                parent_id: None,
                access: Access::Confidential,
                default_role: None,
            };
            ctx.services().create_space(ctx, new).await?;
        }
        if let Some(n) = user.username.strip_prefix("loop-") {
            let next = format!("loop-{}", n.parse::<u64>()? + 1);
            let new = NewUser {
                email: format!("{next}@example.org"),
                username: next,
                display_name: None,
            };
            ctx.services().create_user(ctx, new).await?;
        }
        Ok(())
    }
}

/// Recognises [`USER_TOKEN`] as user 1, not an admin.
pub struct Tokens;

#[hookimpl]
impl AppHooks for Tokens {
    async fn authenticate(&self, token: &str, _ctx: &HookContext) -> HookResult<Option<Identity>> {
        Ok((token == USER_TOKEN).then(|| Identity {
            user_id: Some(1),
            name: "user-1".into(),
            admin: false,
            via: "tokens".into(),
        }))
    }
}

/// Takes part in authorization: forbids spaces named `forbidden-*` (which
/// the default policy allows), lets user 1 delete `deletable-*` users
/// (which it does not) and hides `hidden-*` users from everyone but the
/// admin when they are to be changed or deleted; no opinion otherwise.
pub struct Gate;

#[hookimpl]
impl AppHooks for Gate {
    /// `GET /plugins/gate/secrets/:id`: a resource of its own, for whoever
    /// `authorize` lets peek (user 1 at secret 1, and the admin).
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        startup
            .routes()
            .signed_in()
            .get("/secrets/:id", |req: Request| async move {
                let id = req.id_param("id")?;
                let resource = Resource::Plugin {
                    plugin: "gate".into(),
                    kind: "secret".into(),
                    id: Some(id),
                };
                let ctx = req.ctx();
                ctx.services()
                    .authorize(ctx, Action::Plugin("gate.peek"), resource)
                    .await?;
                Ok(json!({"secret": id}))
            })?;
        Ok(())
    }

    async fn authorize(
        &self,
        check: &AccessCheck,
        _ctx: &HookContext,
    ) -> HookResult<Option<Decision>> {
        Ok(match (&check.action, &check.resource) {
            (Action::CreateSpace, Resource::NewSpace(new))
                if new.name.starts_with("forbidden-") =>
            {
                Some(Decision::Deny("the gate says no".into()))
            }
            (Action::DeleteUser, Resource::User(user))
                if check.user_id() == Some(1) && user.username.starts_with("deletable-") =>
            {
                Some(Decision::Allow)
            }
            (Action::UpdateUser | Action::DeleteUser, Resource::User(user))
                if user.username.starts_with("hidden-") && !check.is_admin() =>
            {
                Some(Decision::Hide)
            }
            (Action::Plugin("gate.peek"), Resource::Plugin { id: Some(1), .. })
                if check.user_id() == Some(1) =>
            {
                Some(Decision::Allow)
            }
            _ => None,
        })
    }
}
