//! The core HTTP API: every route, in one table, each answered by a plain
//! handler over the services. Plugin routes live under `/plugins/<name>/`.

use std::future::Future;
use std::sync::Arc;

use hookspecs::host::{Guard, RouteDef};
use hookspecs::{ApiError, Method, NewSpace, NewUser, Reply, Request, Role, SpacePatch, UserPatch};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::outbox;
use crate::plugins::{APP_PLUGIN, PluginReport, ReloadError, Reloader};

/// The core routes, but for [`plugin_report`].
pub fn routes() -> Vec<RouteDef> {
    use Guard::{Admin, Public, SignedIn};
    use Method::{Delete, Get, Patch, Post, Put};
    vec![
        core(Get, "/health", Public, health),
        core(Post, "/api/users", SignedIn, create_user),
        core(Get, "/api/users", SignedIn, list_users),
        core(Get, "/api/users/:id", SignedIn, get_user),
        core(Patch, "/api/users/:id", SignedIn, update_user),
        core(Delete, "/api/users/:id", SignedIn, delete_user),
        core(Post, "/api/spaces", SignedIn, create_space),
        core(Get, "/api/spaces", SignedIn, list_spaces),
        core(Get, "/api/spaces/:id", SignedIn, get_space),
        core(Patch, "/api/spaces/:id", SignedIn, update_space),
        core(Delete, "/api/spaces/:id", SignedIn, delete_space),
        core(Get, "/api/spaces/:id/members", SignedIn, list_members),
        core(
            Put,
            "/api/spaces/:id/members/:user_id",
            SignedIn,
            put_member,
        ),
        core(
            Delete,
            "/api/spaces/:id/members/:user_id",
            SignedIn,
            delete_member,
        ),
        core(Get, "/api/admin/deliveries", Admin, list_deliveries),
        core(
            Post,
            "/api/admin/deliveries/:id/retry",
            Admin,
            retry_delivery,
        ),
    ]
}

/// `GET /api/admin/plugins`: added once the plugins have started, when what
/// it reports is settled.
pub fn plugin_report(report: PluginReport) -> RouteDef {
    let report = Arc::new(report);
    core(
        Method::Get,
        "/api/admin/plugins",
        Guard::Admin,
        move |req: Request| {
            let report = report.to_json();
            async move {
                let report =
                    outbox::admin::with_counts(report, &mut *req.ctx().db().await?).await?;
                Ok(Reply::ok(report))
            }
        },
    )
}

/// `POST /api/admin/plugins/:name/reload`: rebuilds (a crate) and swaps a
/// component for its new version. 404 for no such plugin; 409 for one that
/// cannot be reloaded (native: never unloaded), with why; 422 when the new
/// version is refused, with why (the old one runs on).
pub fn plugin_reload(reloader: Arc<Reloader>) -> RouteDef {
    core(
        Method::Post,
        "/api/admin/plugins/:name/reload",
        Guard::Admin,
        move |req: Request| {
            let reloader = reloader.clone();
            async move {
                let name = req.param("name").unwrap_or_default().to_owned();
                match reloader.reload(&name).await {
                    Ok(generation) => Ok(Reply::ok(
                        json!({"plugin": name, "reloaded": true, "generation": generation}),
                    )),
                    Err(error @ ReloadError::Unknown(_)) => {
                        Err(ApiError::new(404, "not_found", error.to_string()))
                    }
                    Err(error @ ReloadError::NotReloadable(_)) => {
                        Err(ApiError::new(409, "not_reloadable", error.to_string()))
                    }
                    Err(error @ ReloadError::Refused(_)) => {
                        Err(ApiError::new(422, "reload_refused", error.to_string()))
                    }
                }
            }
        },
    )
}

fn core<F, Fut>(method: Method, path: &str, guard: Guard, handler: F) -> RouteDef
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, ApiError>> + Send + 'static,
{
    RouteDef::new(method, path, APP_PLUGIN, guard, handler)
}

fn to_json(value: impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(e.to_string()))
}

async fn health(req: Request) -> Result<Reply, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&mut *req.ctx().db().await?)
        .await?;
    Ok(Reply::ok(json!({"status": "ok"})))
}

async fn create_user(req: Request) -> Result<Reply, ApiError> {
    let new: NewUser = req.json()?;
    let ctx = req.ctx();
    Ok(Reply::created(to_json(
        ctx.services().create_user(ctx, new).await?,
    )?))
}

async fn list_users(req: Request) -> Result<Reply, ApiError> {
    let (ctx, page) = (req.ctx(), req.page()?);
    Reply::page(&ctx.services().list_users(ctx, page).await?, page, |u| u.id)
}

async fn get_user(req: Request) -> Result<Reply, ApiError> {
    let ctx = req.ctx();
    let user = ctx.services().get_user(ctx, req.id_param("id")?).await?;
    Ok(Reply::ok(to_json(user)?))
}

async fn update_user(req: Request) -> Result<Reply, ApiError> {
    let id = req.id_param("id")?;
    let patch: UserPatch = req.json()?;
    let ctx = req.ctx();
    Ok(Reply::ok(to_json(
        ctx.services().update_user(ctx, id, patch).await?,
    )?))
}

async fn delete_user(req: Request) -> Result<Reply, ApiError> {
    let ctx = req.ctx();
    ctx.services().delete_user(ctx, req.id_param("id")?).await?;
    Ok(Reply::no_content())
}

async fn create_space(req: Request) -> Result<Reply, ApiError> {
    let new: NewSpace = req.json()?;
    let ctx = req.ctx();
    Ok(Reply::created(to_json(
        ctx.services().create_space(ctx, new).await?,
    )?))
}

async fn list_spaces(req: Request) -> Result<Reply, ApiError> {
    let (ctx, page) = (req.ctx(), req.page()?);
    Reply::page(&ctx.services().list_spaces(ctx, page).await?, page, |s| {
        s.id
    })
}

async fn get_space(req: Request) -> Result<Reply, ApiError> {
    let ctx = req.ctx();
    let space = ctx.services().get_space(ctx, req.id_param("id")?).await?;
    Ok(Reply::ok(to_json(space)?))
}

async fn update_space(req: Request) -> Result<Reply, ApiError> {
    let id = req.id_param("id")?;
    let patch: SpacePatch = req.json()?;
    let ctx = req.ctx();
    Ok(Reply::ok(to_json(
        ctx.services().update_space(ctx, id, patch).await?,
    )?))
}

async fn delete_space(req: Request) -> Result<Reply, ApiError> {
    let ctx = req.ctx();
    ctx.services()
        .delete_space(ctx, req.id_param("id")?)
        .await?;
    Ok(Reply::no_content())
}

async fn list_members(req: Request) -> Result<Reply, ApiError> {
    let (ctx, page, space) = (req.ctx(), req.page()?, req.id_param("id")?);
    let members = ctx.services().list_members(ctx, space, page).await?;
    Reply::page(&members, page, |m| m.user_id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutMember {
    role: Role,
}

async fn put_member(req: Request) -> Result<Reply, ApiError> {
    let (space, user) = (req.id_param("id")?, req.id_param("user_id")?);
    let PutMember { role } = req.json()?;
    let ctx = req.ctx();
    let (membership, created) = ctx.services().put_member(ctx, space, user, role).await?;
    let body = to_json(membership)?;
    Ok(if created {
        Reply::created(body)
    } else {
        Reply::ok(body)
    })
}

async fn delete_member(req: Request) -> Result<Reply, ApiError> {
    let (space, user) = (req.id_param("id")?, req.id_param("user_id")?);
    let ctx = req.ctx();
    ctx.services().delete_member(ctx, space, user).await?;
    Ok(Reply::no_content())
}

async fn list_deliveries(req: Request) -> Result<Reply, ApiError> {
    let filter =
        outbox::admin::Filter::parse(req.query("status"), req.query("limit"), req.query("offset"))?;
    Ok(Reply::ok(
        outbox::admin::list(&mut *req.ctx().db().await?, &filter).await?,
    ))
}

async fn retry_delivery(req: Request) -> Result<Reply, ApiError> {
    let id = req.id_param("id")?;
    Ok(Reply::ok(
        outbox::admin::retry(&mut *req.ctx().db().await?, id).await?,
    ))
}
