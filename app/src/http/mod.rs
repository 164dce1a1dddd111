//! The HTTP facade: routerify_ng does the routing; around it, this module
//! enforces the body limit before any handler, turns every request into a
//! unit of work with an authenticated identity, answers JSON errors
//! everywhere (404, 405 included) and logs one line per request. Plugins
//! only ever see `PluginRequest` and `Reply`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use hookspecs::{ApiError, HookContext, Method, PluginRequest, Reply, RouteDef};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use routerify_ng::prelude::RequestExt;
use routerify_ng::{RequestService, RequestServiceBuilder, Router};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::State;

/// What a core handler gets: the parsed request.
pub struct Call {
    /// Path parameters.
    pub params: HashMap<String, String>,
    /// Query-string parameters.
    pub query: HashMap<String, String>,
    /// The JSON body, if any.
    pub body: Option<Value>,
    method: Method,
    path: String,
    token: Option<String>,
}

impl Call {
    /// A path parameter that is an id; anything else is a 404.
    pub fn id(&self, name: &str) -> Result<i64, ApiError> {
        let raw = self
            .params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default();
        raw.parse()
            .map_err(|_| ApiError::new(404, "not_found", format!("no resource `{raw}`")))
    }

    /// The JSON body, an object, as `T`: 422 naming the field that does not fit.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        match &self.body {
            Some(body @ Value::Object(_)) => hookspecs::from_json(body.clone()),
            _ => Err(ApiError::invalid("body", "the body must be a JSON object")),
        }
    }

    fn read(req: &Request<Full<Bytes>>, body: Bytes) -> Result<Self, ApiError> {
        let method = method_of(req.method())
            .ok_or_else(|| ApiError::new(405, "method_not_allowed", "method not allowed"))?;
        let params = req
            .params()
            .params_names()
            .filter_map(|n| Some((n.clone(), req.param(n.as_str())?.clone())))
            .collect();
        let query = req
            .uri()
            .query()
            .map(|q| {
                q.split('&')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (decode(k), decode(v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body =
            if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(serde_json::from_slice(&body).map_err(|e| {
                    ApiError::bad_request(format!("the body is not valid JSON: {e}"))
                })?)
            };
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        Ok(Call {
            params,
            query,
            body,
            method,
            path: req.uri().path().to_owned(),
            token,
        })
    }
}

/// A query-string component: `+` is a space, `%XX` a byte.
fn decode(component: &str) -> String {
    let spaced = component.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn method_of(method: &hyper::Method) -> Option<Method> {
    Some(match *method {
        hyper::Method::GET => Method::Get,
        hyper::Method::POST => Method::Post,
        hyper::Method::PUT => Method::Put,
        hyper::Method::PATCH => Method::Patch,
        hyper::Method::DELETE => Method::Delete,
        _ => return None,
    })
}

fn hyper_method(method: Method) -> hyper::Method {
    match method {
        Method::Get => hyper::Method::GET,
        Method::Post => hyper::Method::POST,
        Method::Put => hyper::Method::PUT,
        Method::Patch => hyper::Method::PATCH,
        Method::Delete => hyper::Method::DELETE,
    }
}

/// Who may call a route.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Anyone (`/health`; plugin routes, whose handlers decide).
    Public,
    /// A recognised credential (`/api/...`).
    Authenticated,
    /// An admin credential.
    Admin,
}

/// A core handler.
pub type CoreHandler =
    fn(Arc<State>, Call, HookContext) -> BoxFuture<'static, Result<Reply, ApiError>>;

/// What answers a route.
#[derive(Clone)]
pub enum Target {
    /// The application's own handler.
    Core(Guard, CoreHandler),
    /// A plugin's handler.
    Plugin(String, hookspecs::Handler),
}

/// Builds the router from the core routes and the (frozen) plugin routes.
pub fn router(
    state: Arc<State>,
    core: &[(Method, &'static str, Target)],
    plugins: &[RouteDef],
) -> anyhow::Result<Router<Infallible>> {
    let plugin_targets = plugins.iter().filter_map(|def| {
        let handler = def.handler.clone()?;
        Some((
            def.method,
            def.path.as_str(),
            Target::Plugin(def.owner.clone(), handler),
        ))
    });
    let all = core
        .iter()
        .map(|(m, p, t)| (*m, *p, t.clone()))
        .chain(plugin_targets);
    let mut builder = Router::<Infallible>::builder();
    for (method, path, target) in all {
        let state = state.clone();
        builder = builder.add(path, vec![hyper_method(method)], move |req| {
            let (state, target) = (state.clone(), target.clone());
            async move { Ok(dispatch(state, req, target).await) }
        });
    }
    let fallback_state = state.clone();
    builder = builder.any(move |req| {
        let state = fallback_state.clone();
        async move { Ok(not_routed(&state, &req)) }
    });
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("building the router: {e}"))
}

/// One routed request: read it, open its unit of work, authenticate, run
/// the handler, commit or roll back.
async fn dispatch(
    state: Arc<State>,
    req: Request<Full<Bytes>>,
    target: Target,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let req = Request::from_parts(parts, Full::new(Bytes::new()));
    let call = Call::read(&req, body);
    let writes = req.method() != hyper::Method::GET;
    let outcome = if !writes {
        run(state, call, target, writes).await
    } else {
        // A write runs to its end even if the client goes away: dropped
        // halfway, its transaction (and SQLite's write lock) would stay open
        // until its connection happened to be used again.
        tokio::spawn(run(state, call, target, writes))
            .await
            .unwrap_or_else(|e| Err(ApiError::internal(format!("the operation failed: {e}"))))
    };
    match outcome {
        Ok(reply) => reply_response(reply),
        Err(error) => error_response(&error),
    }
}

async fn run(
    state: Arc<State>,
    call: Result<Call, ApiError>,
    target: Target,
    writes: bool,
) -> Result<Reply, ApiError> {
    let call = call?;
    let guard = match &target {
        Target::Core(guard, _) => *guard,
        Target::Plugin(..) => Guard::Public,
    };
    // Core public routes (`/health`) ignore credentials; plugin routes take
    // one if given, and their handlers decide whether they need it.
    let authenticate = !matches!(target, Target::Core(Guard::Public, _));
    let ctx = state.context(state.db.begin(writes), None);
    let outcome = async {
        let identity = match call.token.as_deref().filter(|_| authenticate) {
            Some(token) => state
                .hooks
                .hook()
                .authenticate(token, &ctx)
                .await
                .map_err(ApiError::from)?
                .map(|answer| answer.value),
            None => None,
        };
        match (guard, &identity) {
            (Guard::Authenticated | Guard::Admin, None) => return Err(ApiError::unauthorized()),
            (Guard::Admin, Some(who)) if !who.admin => {
                return Err(ApiError::forbidden(
                    "this endpoint needs an admin credential",
                ));
            }
            _ => {}
        }
        let ctx = ctx.acting_as(identity);
        match target {
            Target::Core(_, handler) => handler(state.clone(), call, ctx).await,
            Target::Plugin(plugin, handler) => {
                let req = PluginRequest::new(
                    call.method,
                    call.path,
                    call.params,
                    call.query,
                    call.body,
                    ctx,
                );
                // A plugin's handler is plugin code: its panic is its failure, not ours.
                AssertUnwindSafe(handler(req))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        Err(ApiError::internal(format!(
                            "plugin `{plugin}` panicked in its route handler"
                        ))
                        .with("plugin", plugin.as_str()))
                    })
            }
        }
    }
    .await;
    let finished = finish(&ctx, outcome).await;
    if writes && finished.is_ok() {
        crate::outbox::committed();
    }
    finished
}

/// Commits on success, rolls back on failure: nothing half-written.
async fn finish(ctx: &HookContext, outcome: Result<Reply, ApiError>) -> Result<Reply, ApiError> {
    match outcome {
        Ok(reply) => {
            ctx.unit_of_work().commit().await?;
            Ok(reply)
        }
        Err(error) => {
            if let Err(rollback) = ctx.unit_of_work().rollback().await {
                tracing::error!(%rollback, "rollback failed");
            }
            Err(error)
        }
    }
}

/// No route matched: 405 if the path exists with other methods, else 404.
fn not_routed(state: &State, req: &Request<Full<Bytes>>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let allowed: Vec<&str> = state
        .routes
        .iter()
        .filter(|r| matches_path(&r.path, path))
        .map(|r| r.method.as_str())
        .collect();
    if allowed.is_empty() {
        return error_response(&ApiError::new(
            404,
            "not_found",
            format!("no route for {path}"),
        ));
    }
    let mut response = error_response(
        &ApiError::new(
            405,
            "method_not_allowed",
            format!("{} is not allowed on {path}", req.method()),
        )
        .with("allowed", allowed.clone()),
    );
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(hyper::header::ALLOW, value);
    }
    response
}

fn matches_path(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| p.starts_with(':') && !s.is_empty() || p == s)
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(if status == StatusCode::NO_CONTENT {
        Full::new(Bytes::new())
    } else {
        Full::new(Bytes::from(body.to_string()))
    });
    *response.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

fn reply_response(reply: Reply) -> Response<Full<Bytes>> {
    json_response(reply.status, &reply.body)
}

/// Any error, as JSON.
pub fn error_response(error: &ApiError) -> Response<Full<Bytes>> {
    if error.status >= 500 {
        tracing::error!(code = %error.code, "{}", error.message);
    }
    json_response(error.status, &error.body())
}

/// Bodies declared or found larger than this are not even drained.
const DRAIN_CAP: u64 = 64 * 1024 * 1024;

/// Reads the body up to `limit` bytes: 413 before any handler otherwise.
/// The rest of an oversized body is read and dropped frame by frame (never
/// buffered) so the client gets the 413 instead of a reset connection.
async fn limited(req: Request<Incoming>, limit: usize) -> Result<Request<Full<Bytes>>, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "payload_too_large",
            format!("the body exceeds {limit} bytes"),
        )
        .with("limit", limit)
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP) {
        return Err(too_large());
    }
    let (parts, mut body) = req.into_parts();
    let mut kept = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the body failed: {e}")))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        seen += data.len() as u64;
        if seen <= limit as u64 {
            kept.extend_from_slice(data);
        } else if seen > DRAIN_CAP {
            break;
        }
    }
    if seen > limit as u64 {
        return Err(too_large());
    }
    Ok(Request::from_parts(parts, Full::new(kept.freeze())))
}

/// Serves until `shutdown` completes, then stops accepting, lets requests in
/// flight finish (up to 30 s) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router<Infallible>,
    body_limit: usize,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let services = RequestServiceBuilder::new(router)
        .map_err(|e| anyhow::anyhow!("building the request service: {e}"))?;
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let routed = Arc::new(services.build(remote));
        let service =
            hyper::service::service_fn(move |req| handle(routed.clone(), req, body_limit));
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after 30 s; stopping anyway");
    }
    Ok(())
}

async fn handle(
    routed: Arc<RequestService<Infallible>>,
    req: Request<Incoming>,
    body_limit: usize,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = match limited(req, body_limit).await {
        Ok(req) => routed.call(req).await.unwrap_or_else(|e| {
            error_response(&ApiError::internal(format!("routing failed: {e}")))
        }),
        Err(error) => error_response(&error),
    };
    tracing::info!(
        target: "app::http",
        "{method} {path} {} {:.1}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(response)
}
