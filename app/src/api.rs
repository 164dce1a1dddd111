//! The core HTTP API: every route and its handler, in one table.

use std::sync::Arc;

use futures::future::BoxFuture;
use hookspecs::{
    ApiError, HookContext, Method, NewSpace, NewUser, Reply, Role, SpacePatch, UserPatch,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{Call, Guard, Target};
use crate::{State, outbox};

type Outcome = BoxFuture<'static, Result<Reply, ApiError>>;

/// The core routes. Plugin routes live under `/plugins/<name>/`.
pub fn routes() -> Vec<(Method, &'static str, Target)> {
    use Guard::{Admin, Authenticated as Auth, Public};
    use Method::{Delete, Get, Patch, Post, Put};
    let core = |guard, handler| Target::Core(guard, handler);
    vec![
        (Get, "/health", core(Public, health)),
        (Post, "/api/users", core(Auth, create_user)),
        (Get, "/api/users", core(Auth, list_users)),
        (Get, "/api/users/:id", core(Auth, get_user)),
        (Patch, "/api/users/:id", core(Auth, update_user)),
        (Delete, "/api/users/:id", core(Auth, delete_user)),
        (Post, "/api/spaces", core(Auth, create_space)),
        (Get, "/api/spaces", core(Auth, list_spaces)),
        (Get, "/api/spaces/:id", core(Auth, get_space)),
        (Patch, "/api/spaces/:id", core(Auth, update_space)),
        (Delete, "/api/spaces/:id", core(Auth, delete_space)),
        (Get, "/api/spaces/:id/members", core(Auth, list_members)),
        (
            Put,
            "/api/spaces/:id/members/:user_id",
            core(Auth, put_member),
        ),
        (
            Delete,
            "/api/spaces/:id/members/:user_id",
            core(Auth, delete_member),
        ),
        (Get, "/api/admin/plugins", core(Admin, admin_plugins)),
        (Get, "/api/admin/deliveries", core(Admin, list_deliveries)),
        (
            Post,
            "/api/admin/deliveries/:id/retry",
            core(Admin, retry_delivery),
        ),
    ]
}

fn to_json(value: impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(e.to_string()))
}

fn health(state: Arc<State>, _: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        sqlx::query("SELECT 1")
            .execute(&mut *ctx.db().await?)
            .await?;
        let _ = state;
        Ok(Reply::ok(json!({"status": "ok"})))
    })
}

fn create_user(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let new: NewUser = call.json()?;
        Ok(Reply::created(to_json(
            state.services.create_user(&ctx, new).await?,
        )?))
    })
}

fn list_users(state: Arc<State>, _: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move { Ok(Reply::ok(to_json(state.services.list_users(&ctx).await?)?)) })
}

fn get_user(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        Ok(Reply::ok(to_json(
            state.services.get_user(&ctx, call.id("id")?).await?,
        )?))
    })
}

fn update_user(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let id = call.id("id")?;
        let patch: UserPatch = call.json()?;
        Ok(Reply::ok(to_json(
            state.services.update_user(&ctx, id, patch).await?,
        )?))
    })
}

fn delete_user(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        state.services.delete_user(&ctx, call.id("id")?).await?;
        Ok(Reply::no_content())
    })
}

fn create_space(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let new: NewSpace = call.json()?;
        Ok(Reply::created(to_json(
            state.services.create_space(&ctx, new).await?,
        )?))
    })
}

fn list_spaces(state: Arc<State>, _: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move { Ok(Reply::ok(to_json(state.services.list_spaces(&ctx).await?)?)) })
}

fn get_space(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        Ok(Reply::ok(to_json(
            state.services.get_space(&ctx, call.id("id")?).await?,
        )?))
    })
}

fn update_space(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let id = call.id("id")?;
        let patch: SpacePatch = call.json()?;
        Ok(Reply::ok(to_json(
            state.services.update_space(&ctx, id, patch).await?,
        )?))
    })
}

fn delete_space(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        state.services.delete_space(&ctx, call.id("id")?).await?;
        Ok(Reply::no_content())
    })
}

fn list_members(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        Ok(Reply::ok(to_json(
            state.services.list_members(&ctx, call.id("id")?).await?,
        )?))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutMember {
    role: Role,
}

fn put_member(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let (space, user) = (call.id("id")?, call.id("user_id")?);
        let PutMember { role } = call.json()?;
        let (membership, created) = state.services.put_member(&ctx, space, user, role).await?;
        let body = to_json(membership)?;
        Ok(if created {
            Reply::created(body)
        } else {
            Reply::ok(body)
        })
    })
}

fn delete_member(state: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let (space, user) = (call.id("id")?, call.id("user_id")?);
        state.services.delete_member(&ctx, space, user).await?;
        Ok(Reply::no_content())
    })
}

fn admin_plugins(state: Arc<State>, _: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let report = state.plugin_report();
        Ok(Reply::ok(
            outbox::admin::with_counts(report, &mut *ctx.db().await?).await?,
        ))
    })
}

fn list_deliveries(_: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let param = |name: &str| call.query.get(name).map(String::as_str);
        let filter =
            outbox::admin::Filter::parse(param("status"), param("limit"), param("offset"))?;
        Ok(Reply::ok(
            outbox::admin::list(&mut *ctx.db().await?, &filter).await?,
        ))
    })
}

fn retry_delivery(_: Arc<State>, call: Call, ctx: HookContext) -> Outcome {
    Box::pin(async move {
        let id = call.id("id")?;
        Ok(Reply::ok(
            outbox::admin::retry(&mut *ctx.db().await?, id).await?,
        ))
    })
}
