//! The request pipeline, every request's one path, in order: route,
//! body size, identity, access, body, unit of work, handler, commit or
//! rollback, reply. Plain async code over [`Head`], the router's answer
//! for it and a body future: no hyper type, so it is tested without
//! sockets. The body is only awaited once the route, the method and the
//! credential have been accepted.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use futures::FutureExt;
use hookspecs::host::{Guard, RequestParts, RouteDef};
use hookspecs::{ApiError, HookContext, Identity, Method, Page, Reply};
use serde_json::{Value, json};

use super::router::PathMatch;
use crate::state::State;

/// What a request is before its body: everything the pipeline decides on.
/// Borrowed from the transport's request (no copy of a string per request).
#[derive(Clone, Copy, Debug, Default)]
pub struct Head<'a> {
    /// The method's name, as sent (`GET`, `HEAD`, `OPTIONS`, ...).
    pub method: &'a str,
    /// The path, percent-encoded as sent.
    pub path: &'a str,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The declared `Content-Length`, if any.
    pub content_length: Option<u64>,
    /// This request's id (`X-Request-Id`).
    pub request_id: &'a str,
}

/// The pipeline's answer: a status, a JSON body and extra headers.
#[derive(Debug, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// Headers beside `Content-Type` and `X-Request-Id`.
    pub headers: Vec<(&'static str, String)>,
}

/// Why the body could not be had: the transport's errors are `ApiError`s
/// (413 too large, 408 too slow, 400 broken).
pub type BodyResult = Result<Bytes, ApiError>;

/// Runs one request through the pipeline. `found` is the router's answer
/// for the request's path ([`Router::find`](super::router::Router::find)):
/// the transport asks it, handing over the request's own method and `Uri`;
/// the request keeps that table to its end even if a reload swaps it.
pub async fn handle(
    state: &Arc<State>,
    head: &Head<'_>,
    found: Option<PathMatch<'_>>,
    body: impl Future<Output = BodyResult>,
) -> Answer {
    match respond(state, head, found, body).await {
        Ok(answer) => answer,
        Err(error) => error_answer(&error, head),
    }
}

async fn respond(
    state: &Arc<State>,
    head: &Head<'_>,
    found: Option<PathMatch<'_>>,
    body: impl Future<Output = BodyResult>,
) -> Result<Answer, ApiError> {
    let found = found.ok_or_else(no_route)?;
    let method = match head.method {
        "HEAD" => Some(Method::Get),
        name => Method::ALL.into_iter().find(|m| m.as_str() == name),
    };
    let route = match method.and_then(|m| found.route(m)) {
        Some(route) => route,
        None if head.method == "OPTIONS" => return Ok(options(&found.methods())),
        None => return Err(not_allowed(head, &found.methods())),
    };
    let params = found.params;
    let limit = state.limits.body_limit;
    if head.content_length.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large("the body", limit));
    }
    let identity = identify(state, route.guard, head.authorization).await?;
    let body = parse_body(&body.await?)?;
    let parts = RequestParts {
        method: route.method,
        path: decoded(head.path).ok_or_else(no_route)?,
        params: shared_params(params),
        query: parsed_query(head.query),
        body: body.map(Arc::new),
    };
    let anonymous = identity.is_none();
    let reply = operate(state, route, parts, identity)
        .await
        .map_err(|error| {
            // The policy's refusal (it names the action) of a caller with
            // no credential: 401, as on a route that asks for one, so that
            // the client knows to sign in. Other refusals stand.
            if anonymous && error.status == 403 && error.details.contains_key("action") {
                ApiError::unauthorized()
            } else {
                error
            }
        })?;
    let mut headers = Vec::new();
    if let Some(next) = reply.next {
        headers.push(("link", next_link(head, next)));
    }
    Ok(Answer {
        status: reply.status,
        body: (reply.status != 204).then_some(reply.body),
        headers,
    })
}

/// Who is calling, and whether the route lets them. Authentication runs in
/// a unit of work of its own, ended before the body is read: a slow client
/// never holds a transaction open.
async fn identify(
    state: &Arc<State>,
    guard: Guard,
    authorization: Option<&str>,
) -> Result<Option<Identity>, ApiError> {
    let identity = match authorization.and_then(bearer) {
        // Boxed: its future (a hook call and a unit of work's end) would
        // otherwise make every request's state larger, and be moved with it.
        Some(token) => Box::pin(authenticate(state, token)).await?,
        None => None,
    };
    match (guard, &identity) {
        (Guard::SignedIn | Guard::Admin, None) => Err(ApiError::unauthorized()),
        (Guard::Admin, Some(who)) if !who.admin => Err(ApiError::forbidden(
            "this endpoint needs an admin credential",
        )
        .with("action", "admin")),
        _ => Ok(identity),
    }
}

/// The identity `token` stands for, if any. Recognising a credential is
/// the application's own business: its own unit of work, its authority.
async fn authenticate(state: &State, token: &str) -> Result<Option<Identity>, ApiError> {
    let uow = state.db.begin(false);
    let ctx = state.app_context(uow.clone());
    let outcome = recognise(state, token, &ctx).await;
    uow.finish(outcome).await
}

/// The first plugin's answer for `token`, unless it names a user who no
/// longer exists: whichever plugin recognised it, such a credential is no
/// credential (401).
async fn recognise(
    state: &State,
    token: &str,
    ctx: &HookContext,
) -> Result<Option<Identity>, ApiError> {
    let Some(answer) = state.hooks.hook().authenticate(token, ctx).await? else {
        return Ok(None);
    };
    if let Some(id) = answer.value.user_id {
        match state.services.get_user(ctx, id).await {
            Err(gone) if gone.status == 404 => return Ok(None),
            found => drop(found?),
        }
    }
    Ok(Some(answer.value))
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is
/// case-insensitive (RFC 9110, 11.1).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The handler in its unit of work: committed if it answers `Ok`, rolled
/// back otherwise. A request that writes runs in a task of its own, to its
/// end even if the client goes away: dropped halfway, its transaction (and
/// SQLite's write lock) would stay open until its connection happened to be
/// used again.
async fn operate(
    state: &Arc<State>,
    route: &RouteDef,
    parts: RequestParts,
    identity: Option<Identity>,
) -> Result<Reply, ApiError> {
    if !route.method.writes() {
        return attempt(state, route, parts, identity).await;
    }
    let (state, route) = (state.clone(), route.clone());
    let run = async move { attempt(&state, &route, parts, identity).await };
    let outcome = tokio::spawn(run).await.unwrap_or_else(|e| {
        Err(ApiError::internal(format!(
            "the operation's task failed: {e}"
        )))
    });
    if outcome.is_ok() {
        // What it recorded for after-commit hooks can be delivered now.
        crate::outbox::committed();
    }
    outcome
}

/// Runs the operation, again from the start each time it loses a race
/// with a concurrent one (PostgreSQL's serialization failures and
/// deadlocks), a bounded number of times with jittered backoff; then 503.
/// Each run has a unit of work of its own: what a lost run wrote is rolled
/// back, so its hooks ran but left nothing. A request that was run again
/// logs one line, when it ends.
async fn attempt(
    state: &Arc<State>,
    route: &RouteDef,
    parts: RequestParts,
    identity: Option<Identity>,
) -> Result<Reply, ApiError> {
    let _running = state.in_flight.enter();
    let mut run = 1;
    let mut lost = None;
    loop {
        let error = match once(state, route, &parts, identity.clone()).await {
            Err(error) if error.is_race() => error,
            outcome => {
                if let Some(last) = lost {
                    tracing::info!(
                        runs = run,
                        "ran {} {} again after losing races with concurrent operations \
                         (the last: {last})",
                        route.method.as_str(),
                        route.path
                    );
                }
                return outcome;
            }
        };
        if run >= state.retry.max_attempts {
            state.retries.gave_up.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                runs = run,
                "giving up after losing every run to concurrent operations: {error}"
            );
            return Err(ApiError::new(
                503,
                "busy",
                "the operation kept colliding with concurrent ones; try again",
            ));
        }
        state.retries.retried.fetch_add(1, Ordering::Relaxed);
        lost = Some(error);
        tokio::time::sleep(state.retry.backoff(run)).await;
        run += 1;
    }
}

/// One run of the handler in a fresh unit of work.
async fn once(
    state: &State,
    route: &RouteDef,
    parts: &RequestParts,
    identity: Option<Identity>,
) -> Result<Reply, ApiError> {
    let uow = state.db.begin(route.method.writes());
    let ctx = state.context(uow.clone(), identity);
    // A handler is plugin code or ours; a panic in either is its failure,
    // not the process's.
    let outcome = AssertUnwindSafe((route.handler)(parts.with(ctx)))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let error = ApiError::internal(format!(
                "the handler of {} {} panicked: {}",
                route.method.as_str(),
                route.path,
                crate::plugins::panic_message(&*panic)
            ));
            Err(if route.owner == crate::plugins::APP_PLUGIN {
                error
            } else {
                error.with("plugin", route.owner.as_str())
            })
        });
    // A handler answering from memory never began the transaction.
    if uow.end_unused() {
        return outcome;
    }
    // Boxed, as `authenticate`: the largest future of the pipeline, needed
    // only by a handler that used the database.
    Box::pin(uow.finish(outcome)).await
}

/// `OPTIONS` on a route's path: its methods.
fn options(allowed: &[Method]) -> Answer {
    Answer {
        status: 204,
        body: None,
        headers: vec![("allow", allow_header(allowed))],
    }
}

fn allow_header(allowed: &[Method]) -> String {
    let mut names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    if allowed.contains(&Method::Get) {
        names.push("HEAD");
    }
    names.push("OPTIONS");
    names.join(", ")
}

fn no_route() -> ApiError {
    ApiError::new(404, "not_found", "no route for this request")
}

fn not_allowed(head: &Head<'_>, allowed: &[Method]) -> ApiError {
    let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{} is not allowed here", head.method),
    )
    .with("allowed", names)
}

fn parse_body(body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// The percent-decoded path; `None` if it does not decode to UTF-8. A
/// path without `%` is itself (already UTF-8: no scan, no validation).
fn decoded(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_owned());
    }
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()
        .map(|p| p.into_owned())
}

/// A request's path parameters. Most paths have none: those share one
/// empty list instead of allocating one each.
fn shared_params(params: Vec<(String, String)>) -> Arc<[(String, String)]> {
    static NONE: LazyLock<Arc<[(String, String)]>> = LazyLock::new(|| Arc::new([]));
    if params.is_empty() {
        NONE.clone()
    } else {
        params.into()
    }
}

/// A request's query parameters. Most requests have none: those share one
/// empty map instead of allocating (and seeding) one each.
fn parsed_query(query: Option<&str>) -> Arc<HashMap<String, String>> {
    static NONE: LazyLock<Arc<HashMap<String, String>>> = LazyLock::new(Default::default);
    match query {
        Some(query) if !query.is_empty() => Arc::new(parse_query(query)),
        _ => NONE.clone(),
    }
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// A query-string component: `+` is a space, `%XX` a byte.
fn decode_component(component: &str) -> String {
    let spaced = component.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// The `Link` header naming the next page: the same path, with the page's
/// own parameters only (never what else the client put in the query).
fn next_link(head: &Head<'_>, next: Page) -> String {
    format!(
        "<{}?limit={}&after={}>; rel=\"next\"",
        head.path,
        next.limit,
        next.after.unwrap_or_default()
    )
}

/// Any error, as the client sees it. A 500 says only that something failed
/// and which request it was; the log line with the same id has the rest.
pub fn error_answer(error: &ApiError, head: &Head<'_>) -> Answer {
    let mut headers = Vec::new();
    let body = if error.status == 500 {
        tracing::error!(request_id = %head.request_id, code = %error.code, "{}", error.message);
        let mut public = ApiError::new(
            500,
            &error.code,
            "something went wrong; the server's log has the details under this request id",
        )
        .with("request_id", head.request_id);
        for key in ["plugin", "hook"] {
            if let Some(value) = error.details.get(key) {
                public = public.with(key, value.clone());
            }
        }
        public.body()
    } else {
        let mut body = error.body();
        body["error"]["request_id"] = json!(head.request_id);
        body
    };
    match error.status {
        401 => headers.push(("www-authenticate", "Bearer".to_owned())),
        405 => {
            let allowed: Vec<Method> = error
                .details
                .get("allowed")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    Method::ALL
                        .into_iter()
                        .find(|x| Some(x.as_str()) == m.as_str())
                })
                .collect();
            headers.push(("allow", allow_header(&allowed)));
        }
        503 => headers.push(("retry-after", "1".to_owned())),
        _ => {}
    }
    Answer {
        status: error.status,
        body: Some(body),
        headers,
    }
}

#[cfg(test)]
mod tests;
