//! The pipeline without sockets: a [`Head`], a body future that records
//! whether it was read, and the [`Answer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use hooks_core::PluginManager;
use hookspecs::host::{Guard, PluginConfigs, RouteDef, RouteTable};
use hookspecs::{ApiError, AppHooks, Method, Reply, Request};
use serde_json::json;

use super::{Answer, BodyResult, Head, handle};
use crate::db::{Db, Scratch};
use crate::http::{InFlight, Limits, router::Router};
use crate::plugins::{APP_PLUGIN, BuiltIn};
use crate::services::AppServices;
use crate::state::State;

const ADMIN: &str = "Bearer admin-secret";

static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn state(extra: Vec<RouteDef>) -> Arc<State> {
    let n = N.fetch_add(1, Ordering::Relaxed);
    state_on(
        &format!("sqlite:file:pipeline{n}?mode=memory&cache=shared"),
        extra,
    )
    .await
}

async fn state_on(url: &str, extra: Vec<RouteDef>) -> Arc<State> {
    let db = Db::open(url).await.expect("a database");
    let hooks = PluginManager::<dyn AppHooks>::new();
    hooks
        .register(APP_PLUGIN, BuiltIn::new("admin-secret".into()))
        .unwrap();
    let table = RouteTable::default();
    for route in crate::api::routes().into_iter().chain(extra) {
        table.add(route).unwrap();
    }
    Arc::new(State {
        db,
        services: Arc::new(AppServices::new(hooks.clone())),
        hooks,
        configs: Arc::new(PluginConfigs::default()),
        router: Arc::new(arc_swap::ArcSwap::from_pointee(
            Router::new(table.freeze()).unwrap(),
        )),
        limits: Limits {
            body_limit: 100,
            ..Limits::default()
        },
        in_flight: InFlight::default(),
        retry: crate::db::Retry {
            max_attempts: 4,
            backoff_ms: 1,
            ..Default::default()
        },
        retries: Default::default(),
    })
}

fn head<'a>(method: &'a str, target: &'a str, authorization: Option<&'a str>) -> Head<'a> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Head {
        method,
        path,
        query,
        authorization,
        content_length: None,
        request_id: "req-1",
    }
}

/// A body that notes whether the pipeline read it.
fn body(text: &str, read: &Arc<AtomicBool>) -> impl Future<Output = BodyResult> + use<> {
    let (text, read) = (Bytes::from(text.to_owned()), read.clone());
    async move {
        read.store(true, Ordering::SeqCst);
        Ok(text)
    }
}

/// The request through the router, as the transport hands it over (its
/// method and `Uri`), then through the pipeline.
async fn call(state: &Arc<State>, head: Head<'_>, text: &str) -> (Answer, bool) {
    let method = hyper::Method::from_bytes(head.method.as_bytes()).expect("a method");
    let target = match head.query {
        Some(query) => format!("{}?{query}", head.path),
        None => head.path.to_owned(),
    };
    let uri: hyper::Uri = target.parse().expect("a request target");
    let router = state.router.load_full();
    let found = router.find(&method, &uri).await;
    let read = Arc::new(AtomicBool::new(false));
    let answer = handle(state, &head, found, body(text, &read)).await;
    (answer, read.load(Ordering::SeqCst))
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn usernames(answer: &Answer) -> Vec<serde_json::Value> {
    let users = answer
        .body
        .as_ref()
        .and_then(|b| b.as_array())
        .expect("a list");
    users.iter().map(|u| u["username"].clone()).collect()
}

fn code(answer: &Answer) -> &str {
    answer.body.as_ref().unwrap()["error"]["code"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn an_unknown_route_is_404_without_reading_the_body() {
    let state = state(vec![]).await;
    let (answer, read) = call(&state, head("POST", "/nope", None), "{}").await;
    assert_eq!((answer.status, read), (404, false));
    assert_eq!(code(&answer), "not_found");
}

#[tokio::test]
async fn no_credential_is_401_with_www_authenticate_without_reading_the_body() {
    let state = state(vec![]).await;
    let (answer, read) = call(&state, head("POST", "/api/users", None), "{}").await;
    assert_eq!((answer.status, read), (401, false));
    assert_eq!(header(&answer, "www-authenticate"), Some("Bearer"));
    let (answer, read) = call(
        &state,
        head("POST", "/api/users", Some("Bearer wrong")),
        "{}",
    )
    .await;
    assert_eq!((answer.status, read), (401, false));
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_without_reading_the_body() {
    let state = state(vec![]).await;
    let mut big = head("POST", "/api/users", Some(ADMIN));
    big.content_length = Some(101);
    let (answer, read) = call(&state, big, "{}").await;
    assert_eq!((answer.status, read), (413, false));
    assert_eq!(answer.body.unwrap()["error"]["limit"], 100);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let state = state(vec![]).await;
    for auth in [
        "bearer admin-secret",
        "BEARER admin-secret",
        "Bearer  admin-secret ",
    ] {
        let (answer, _) = call(&state, head("GET", "/api/users", Some(auth)), "").await;
        assert_eq!(answer.status, 200, "{auth}");
    }
    let (answer, _) = call(
        &state,
        head("GET", "/api/users", Some("Basic admin-secret")),
        "",
    )
    .await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn head_is_answered_by_get_routes() {
    let state = state(vec![]).await;
    let (answer, _) = call(&state, head("HEAD", "/health", None), "").await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let state = state(vec![]).await;
    let (answer, read) = call(&state, head("PUT", "/api/users", Some(ADMIN)), "{}").await;
    assert_eq!((answer.status, read), (405, false));
    assert_eq!(header(&answer, "allow"), Some("GET, POST, HEAD, OPTIONS"));
    let (answer, _) = call(&state, head("TRACE", "/api/users", None), "").await;
    assert_eq!(answer.status, 405);
}

#[tokio::test]
async fn options_names_the_methods_and_options_star_is_404() {
    let state = state(vec![]).await;
    let (answer, _) = call(&state, head("OPTIONS", "/api/users/7", None), "").await;
    assert_eq!(answer.status, 204);
    assert_eq!(
        header(&answer, "allow"),
        Some("GET, PATCH, DELETE, HEAD, OPTIONS")
    );
    let (answer, _) = call(&state, head("OPTIONS", "*", None), "").await;
    assert_eq!(answer.status, 404);
    assert_eq!(code(&answer), "not_found");
}

#[tokio::test]
async fn bad_percent_encoding_is_404_not_500() {
    let state = state(vec![]).await;
    for path in ["/api/users/%FF", "/api/%E0%A4%A", "/%00"] {
        let (answer, _) = call(&state, head("GET", path, Some(ADMIN)), "").await;
        assert_eq!(answer.status, 404, "{path}");
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let state = state(vec![]).await;
    let (answer, read) = call(&state, head("POST", "/api/users", Some(ADMIN)), "{oops").await;
    assert_eq!((answer.status, read), (400, true));
    assert_eq!(code(&answer), "bad_request");
}

fn failing_routes() -> Vec<RouteDef> {
    vec![
        RouteDef::new(
            Method::Get,
            "/plugins/t/fail",
            "t",
            Guard::Public,
            |_: Request| async {
                Err::<Reply, _>(ApiError::internal("secret: SELECT * FROM users"))
            },
        ),
        RouteDef::new(
            Method::Get,
            "/plugins/t/panic",
            "t",
            Guard::Public,
            |_: Request| async {
                if true {
                    panic!("boom");
                }
                Ok(Reply::no_content())
            },
        ),
        RouteDef::new(
            Method::Post,
            "/plugins/t/write-then-fail",
            "t",
            Guard::Public,
            |req: Request| async move {
                sqlx::query(
                    "INSERT INTO users (username, email, created_at) VALUES ('x', 'x@y.z', 'now')",
                )
                .execute(&mut *req.ctx().db().await?)
                .await?;
                Err::<Reply, _>(ApiError::conflict("changed my mind"))
            },
        ),
        RouteDef::new(
            Method::Get,
            "/plugins/t/admin",
            "t",
            Guard::Admin,
            |_: Request| async { Ok(Reply::ok(json!({"ok": true}))) },
        ),
    ]
}

#[tokio::test]
async fn a_500_says_only_that_something_failed_and_the_request_id() {
    let state = state(failing_routes()).await;
    for path in ["/plugins/t/fail", "/plugins/t/panic"] {
        let (answer, _) = call(&state, head("GET", path, None), "").await;
        assert_eq!(answer.status, 500, "{path}");
        let error = &answer.body.as_ref().unwrap()["error"];
        assert_eq!(error["request_id"], "req-1");
        let text = error.to_string();
        assert!(!text.contains("SELECT") && !text.contains("boom"), "{text}");
    }
    let (answer, _) = call(&state, head("GET", "/plugins/t/panic", None), "").await;
    assert_eq!(answer.body.unwrap()["error"]["plugin"], "t");
}

#[tokio::test]
async fn a_failed_handler_writes_nothing() {
    let state = state(failing_routes()).await;
    let (answer, _) = call(&state, head("POST", "/plugins/t/write-then-fail", None), "").await;
    assert_eq!(answer.status, 409);
    let (answer, _) = call(&state, head("GET", "/api/users", Some(ADMIN)), "").await;
    assert_eq!(answer.body.unwrap(), json!([]));
}

#[tokio::test]
async fn plugin_routes_declare_who_may_call_them() {
    let state = state(failing_routes()).await;
    let (answer, _) = call(&state, head("GET", "/plugins/t/admin", None), "").await;
    assert_eq!(answer.status, 401);
    let (answer, _) = call(&state, head("GET", "/plugins/t/admin", Some(ADMIN)), "").await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn lists_are_paged_with_a_link_to_the_next_page() {
    let state = state(vec![]).await;
    for name in ["a", "b", "c"] {
        let body = json!({"username": name, "email": format!("{name}@example.org")}).to_string();
        let (answer, _) = call(&state, head("POST", "/api/users", Some(ADMIN)), &body).await;
        assert_eq!(answer.status, 201);
    }
    let (first, _) = call(&state, head("GET", "/api/users?limit=2", Some(ADMIN)), "").await;
    let names = usernames(&first);
    assert_eq!(names, [json!("a"), json!("b")]);
    let link = header(&first, "link").unwrap();
    assert_eq!(link, "</api/users?limit=2&after=2>; rel=\"next\"");
    // What else the query held is not echoed back.
    let (echo, _) = call(
        &state,
        head("GET", "/api/users?x=%3Cscript%3E&limit=2&y", Some(ADMIN)),
        "",
    )
    .await;
    assert_eq!(
        header(&echo, "link").unwrap(),
        "</api/users?limit=2&after=2>; rel=\"next\""
    );
    let (second, _) = call(
        &state,
        head("GET", "/api/users?limit=2&after=2", Some(ADMIN)),
        "",
    )
    .await;
    assert_eq!(second.body.as_ref().unwrap().as_array().unwrap().len(), 1);
    assert_eq!(header(&second, "link"), None);
    let (bad, _) = call(
        &state,
        head("GET", "/api/users?limit=100000", Some(ADMIN)),
        "",
    )
    .await;
    assert_eq!(
        (bad.status, bad.body.unwrap()["error"]["field"].clone()),
        (422, json!("limit"))
    );
}

/// A route that writes a row, then loses a race on its first `losses` runs.
fn racing_route(losses: usize, runs: Arc<std::sync::atomic::AtomicUsize>) -> RouteDef {
    RouteDef::new(
        Method::Post,
        "/plugins/t/race",
        "t",
        Guard::Public,
        move |req: Request| {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let name = format!("run{run}");
                sqlx::query(
                    "INSERT INTO users (username, email, created_at) VALUES ($1, $2, 'now')",
                )
                .bind(&name)
                .bind(format!("{name}@example.org"))
                .execute(&mut *req.ctx().db().await?)
                .await?;
                if run <= losses {
                    return Err(ApiError::race("simulated"));
                }
                Ok(Reply::created(json!({"run": run})))
            }
        },
    )
}

#[tokio::test]
async fn a_lost_race_runs_the_whole_operation_again_and_only_the_last_run_counts() {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let state = state(vec![racing_route(2, runs.clone())]).await;
    let (answer, _) = call(&state, head("POST", "/plugins/t/race", None), "").await;
    assert_eq!(
        (answer.status, answer.body.unwrap()),
        (201, json!({"run": 3}))
    );
    let (users, _) = call(&state, head("GET", "/api/users", Some(ADMIN)), "").await;
    let names = usernames(&users);
    assert_eq!(names, [json!("run3")], "the lost runs left nothing");
    assert_eq!(state.retries.retried.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn when_every_run_loses_the_answer_is_503_with_retry_after_and_nothing_is_written() {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let state = state(vec![racing_route(usize::MAX, runs.clone())]).await;
    let (answer, _) = call(&state, head("POST", "/plugins/t/race", None), "").await;
    assert_eq!((answer.status, code(&answer)), (503, "busy"));
    assert_eq!(header(&answer, "retry-after"), Some("1"));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        state.retry.max_attempts as usize
    );
    assert_eq!(state.retries.gave_up.load(Ordering::Relaxed), 1);
    let (users, _) = call(&state, head("GET", "/api/users", Some(ADMIN)), "").await;
    assert_eq!(users.body.unwrap(), json!([]));
}

/// The databases a unit of work is tested on: a SQLite file (WAL, as the
/// app runs it; the in-memory one of the other tests locks tables instead)
/// and, when `TEST_DATABASE_URL` is set, a fresh PostgreSQL database.
/// Returns their URLs and what to drop afterwards.
async fn databases() -> Vec<(String, Option<Scratch>)> {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("pipeline-{}-{n}.db", std::process::id()));
    let mut urls = vec![(format!("sqlite://{}?mode=rwc", file.display()), None)];
    let name = format!("pipeline_{}_{n}", std::process::id());
    if let Some(scratch) = Scratch::postgres(&name).await {
        urls.push((scratch.url.clone(), Some(scratch)));
    }
    urls
}

async fn drop_database(state: Arc<State>, url: &str, pg: Option<Scratch>) {
    state.db.close().await;
    match pg {
        Some(scratch) => scratch.drop().await,
        None => {
            let file = url
                .trim_start_matches("sqlite://")
                .trim_end_matches("?mode=rwc");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{file}{suffix}"));
            }
        }
    }
}

async fn count_users(req: &Request) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *req.ctx().db().await?)
        .await?)
}

/// `GET /plugins/t/twice`: counts the users, says so on `first`, waits for
/// `go`, counts them again.
fn reading_twice(first: tokio::sync::mpsc::Sender<()>, go: Arc<tokio::sync::Notify>) -> RouteDef {
    RouteDef::new(
        Method::Get,
        "/plugins/t/twice",
        "t",
        Guard::Public,
        move |req: Request| {
            let (first, go) = (first.clone(), go.clone());
            async move {
                let before = count_users(&req).await?;
                let _ = first.send(()).await;
                go.notified().await;
                let after = count_users(&req).await?;
                Ok(Reply::ok(json!([before, after])))
            }
        },
    )
}

fn new_user(name: &str) -> String {
    json!({"username": name, "email": format!("{name}@example.org")}).to_string()
}

#[tokio::test]
async fn a_read_sees_one_state_while_a_write_commits_between_its_statements() {
    for (url, pg) in databases().await {
        let (first, mut first_done) = tokio::sync::mpsc::channel(1);
        let go = Arc::new(tokio::sync::Notify::new());
        let state = state_on(&url, vec![reading_twice(first, go.clone())]).await;
        let reader = tokio::spawn({
            let state = state.clone();
            async move {
                call(&state, head("GET", "/plugins/t/twice", None), "")
                    .await
                    .0
            }
        });
        first_done.recv().await.unwrap();
        let (created, _) = call(
            &state,
            head("POST", "/api/users", Some(ADMIN)),
            &new_user("ada"),
        )
        .await;
        assert_eq!(created.status, 201, "{url}: {:?}", created.body);
        go.notify_one();
        let read = reader.await.unwrap();
        assert_eq!(
            (read.status, read.body.unwrap()),
            (200, json!([0, 0])),
            "{url}"
        );
        // The next read on the same connections sees the write.
        for _ in 0..3 {
            let (next, _) = call(&state, head("GET", "/api/users", Some(ADMIN)), "").await;
            assert_eq!(usernames(&next), [json!("ada")], "{url}");
        }
        drop_database(state, &url, pg).await;
    }
}

/// `GET /plugins/t/get-writes`: adds a user, then fails if `?fail` is given.
fn writing_get() -> RouteDef {
    RouteDef::new(
        Method::Get,
        "/plugins/t/get-writes",
        "t",
        Guard::Public,
        |req: Request| async move {
            let name = req.query("name").unwrap_or("x").to_owned();
            sqlx::query("INSERT INTO users (username, email, created_at) VALUES ($1, $2, 'now')")
                .bind(&name)
                .bind(format!("{name}@example.org"))
                .execute(&mut *req.ctx().db().await?)
                .await?;
            if req.query("fail").is_some() {
                return Err(ApiError::conflict("changed my mind"));
            }
            Ok(Reply::ok(json!({"written": name})))
        },
    )
}

#[tokio::test]
async fn a_read_that_writes_commits_or_rolls_back_whole() {
    for (url, pg) in databases().await {
        let state = state_on(&url, vec![writing_get()]).await;
        for _ in 0..3 {
            let (failed, _) = call(
                &state,
                head("GET", "/plugins/t/get-writes?name=no&fail", None),
                "",
            )
            .await;
            assert_eq!(failed.status, 409, "{url}");
        }
        let (kept, _) = call(
            &state,
            head("GET", "/plugins/t/get-writes?name=yes", None),
            "",
        )
        .await;
        assert_eq!(kept.status, 200, "{url}: {:?}", kept.body);
        let (users, _) = call(&state, head("GET", "/api/users", Some(ADMIN)), "").await;
        assert_eq!(usernames(&users), [json!("yes")], "{url}");
        drop_database(state, &url, pg).await;
    }
}

/// A handler that keeps its request past its end (a task it spawned, say)
/// cannot begin a transaction with it: the unit of work ended with the
/// request, begun or not.
#[tokio::test]
async fn a_request_kept_past_its_end_cannot_use_the_database() {
    let kept: Arc<std::sync::Mutex<Option<Request>>> = Arc::default();
    let keep = kept.clone();
    let route = RouteDef::new(
        Method::Get,
        "/keep",
        "t",
        Guard::Public,
        move |req: Request| {
            let keep = keep.clone();
            async move {
                *keep.lock().unwrap() = Some(req);
                Ok(Reply::no_content())
            }
        },
    );
    let state = state(vec![route]).await;
    let (answer, _) = call(&state, head("GET", "/keep", None), "").await;
    assert_eq!(answer.status, 204);
    let req = kept.lock().unwrap().take().expect("the handler ran");
    let error = req.ctx().db().await.err().expect("ended with its request");
    assert!(error.message.contains("already ended"), "{error:?}");
}
