//! Benchmark plugins, linked into the `bench-app` example (the real app,
//! `app::main_with`, driven by `bench/run.py`) and used by the engine's
//! growth benchmark.
//!
//! - `bench` adds three routes: `GET /plugins/bench/json` answers
//!   `{"status":"ok"}` from memory, `GET /plugins/bench/json/:id` too (a
//!   path with a parameter: what the router matches per request),
//!   `GET /plugins/bench/db` runs `SELECT 1` in the request's unit of work
//!   first, as the core `GET /health` does.
//! - With `BENCH_BARE_LISTEN=host:port`, `bench` also starts, on the app's
//!   own Tokio runtime, a bare hyper server with the same handlers
//!   (`/json`, `/json/<anything>`, `/db`; the latter on a pool of the same
//!   size, on the same `DATABASE_URL`): the baseline the plugin routes are
//!   held against.
//! - With `BENCH_LISTENERS=N`, N more plugins (`listener_000`...) each
//!   implement `on_user_created` by counting the users they see: the cost
//!   of N implementations of an entity hook through the whole app.
//! - With `BENCH_AUTHORIZERS=N`, N more plugins (`authorizer_000`...) each
//!   implement `authorize` with no opinion: the cost of the authorization
//!   hook per write.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hookspecs::prelude::*;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tokio::net::TcpListener;

/// The body every benchmark handler answers.
fn status_ok() -> serde_json::Value {
    json!({"status": "ok"})
}

/// The routes, and the bare hyper server beside the app.
pub struct Bench;

#[hookimpl]
impl AppHooks for Bench {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        let routes = startup.routes();
        routes.get("/json", |_req: hookspecs::Request| async move {
            Ok(status_ok())
        })?;
        routes.get("/json/:id", |_req: hookspecs::Request| async move {
            Ok(status_ok())
        })?;
        routes.get("/db", |req: hookspecs::Request| async move {
            sqlx::query("SELECT 1")
                .execute(&mut *req.ctx().db().await?)
                .await?;
            Ok(status_ok())
        })?;
        if let Ok(addr) = std::env::var("BENCH_BARE_LISTEN") {
            let listener = TcpListener::bind(&addr)
                .await
                .map_err(|e| ApiError::internal(format!("binding {addr}: {e}")))?;
            let url = std::env::var("DATABASE_URL")
                .map_err(|_| ApiError::internal("BENCH_BARE_LISTEN needs DATABASE_URL"))?;
            let pool = AnyPoolOptions::new()
                .max_connections(if url.starts_with("sqlite:") { 4 } else { 10 })
                .connect(&url)
                .await?;
            tracing::info!("bare hyper listening on http://{addr}");
            tokio::spawn(bare(listener, pool));
        }
        Ok(())
    }
}

/// A bare hyper server: no router, no unit of work, no hooks.
async fn bare(listener: TcpListener, pool: AnyPool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let pool = pool.clone();
        let service = hyper::service::service_fn(move |req| bare_handler(pool.clone(), req));
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service),
        );
    }
}

async fn bare_handler(
    pool: AnyPool,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().path() {
        "/json" => (StatusCode::OK, status_ok()),
        // `/json/:id`'s counterpart: one comparison where the app matches.
        path if path.starts_with("/json/") => (StatusCode::OK, status_ok()),
        "/db" => match sqlx::query("SELECT 1").execute(&pool).await {
            Ok(_) => (StatusCode::OK, status_ok()),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            ),
        },
        _ => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Counts the users it sees: the least an `on_user_created` can do.
pub struct Listener;

static SEEN: AtomicU64 = AtomicU64::new(0);

#[hookimpl]
impl AppHooks for Listener {
    async fn on_user_created(&self, user: &User, _ctx: &HookContext) -> HookResult<()> {
        SEEN.fetch_add(user.id.unsigned_abs().min(1), Ordering::Relaxed);
        Ok(())
    }
}

/// Takes part in every authorization with no opinion: the cost of one more
/// `authorize` implementation in front of the default policy.
pub struct Abstainer;

#[hookimpl]
impl AppHooks for Abstainer {
    async fn authorize(
        &self,
        check: &AccessCheck,
        _ctx: &HookContext,
    ) -> HookResult<Option<Decision>> {
        std::hint::black_box(check);
        Ok(None)
    }
}
