//! The SDK's documented claims, taken to their edges without the app: the
//! typed configuration (`configured`, `export_plugin!`), the `Request`
//! readers, `Reply` and `Page`, `ApiError`, the `HookContext` (actor,
//! `acting_as`, services, configuration, one unit of work),
//! `insert_at_commit`, and `Startup` / `Routes`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hookspecs::host::{self, Guard, PluginConfigs, RequestParts, RouteTable, UnitOfWork};
use hookspecs::prelude::*;
use hookspecs::serde_json::{Value, json};
use hookspecs::services::{Remote, Transport};
use hookspecs::{Method, Migration, PluginExport, RouteError, configured};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// One service call: (method, actor name, whether the context is checked).
type Call = (String, Option<String>, bool);

/// What the services were asked, and by which context.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Transport for Calls {
    fn call(
        &self,
        ctx: &HookContext,
        name: &'static str,
        _args: String,
    ) -> impl Future<Output = Result<String, ApiError>> + Send {
        self.0.lock().unwrap().push((
            name.to_owned(),
            ctx.actor().map(|who| who.name.clone()),
            ctx.is_checked(),
        ));
        async move {
            match name {
                "list_users" => Ok("[]".to_owned()),
                _ => Err(ApiError::internal("not in this test")),
            }
        }
    }
}

fn identity(name: &str, user_id: Option<i64>, admin: bool) -> Identity {
    Identity {
        user_id,
        name: name.into(),
        admin,
        via: "test".into(),
    }
}

/// A pool of one connection to a fresh SQLite file holding
/// `plugin_t_log (id, text UNIQUE NOT NULL, extra)`.
async fn pool(dir: &tempfile::TempDir) -> AnyPool {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE plugin_t_log (id INTEGER PRIMARY KEY AUTOINCREMENT, \
         text TEXT NOT NULL UNIQUE, extra TEXT)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// `(text, extra)` of every committed row, by id.
async fn committed(pool: &AnyPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT text, extra FROM plugin_t_log ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A request's context on `uow`, acting as `actor`, with `configs`.
fn context(
    uow: &Arc<UnitOfWork>,
    actor: Option<Identity>,
    configs: Value,
    calls: &Calls,
) -> HookContext {
    let configs: HashMap<String, Value> = configs
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    host::context(
        uow.clone(),
        actor,
        Arc::new(Remote(calls.clone())),
        Arc::new(PluginConfigs(configs)),
    )
}

/// A request to a route, as the pipeline hands one to a handler.
fn request(
    ctx: HookContext,
    params: &[(&str, &str)],
    query: &[(&str, &str)],
    body: Option<Value>,
) -> Request {
    RequestParts {
        method: Method::Post,
        path: "/plugins/t/x".into(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
            .into(),
        query: Arc::new(
            query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        body: body.map(Arc::new),
    }
    .with(ctx)
}

/// A context on a unit of work that is never used (no database).
fn idle_context() -> HookContext {
    static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    sqlx::any::install_default_drivers();
    // A lazy pool spawns its upkeep on the current runtime: never run here.
    let _entered = RUNTIME.enter();
    let pool = AnyPoolOptions::new()
        .connect_lazy("sqlite:///nonexistent-dir/never/opened.db")
        .unwrap();
    context(
        &Arc::new(UnitOfWork::new(pool, None)),
        None,
        json!({}),
        &Calls::default(),
    )
}

/// `(status, code, field)` of an error.
fn parts(error: &ApiError) -> (u16, &str, Option<&str>) {
    (
        error.status,
        error.code.as_str(),
        error.details.get("field").and_then(Value::as_str),
    )
}

// ---------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(crate = "hookspecs::serde", default)]
struct Config {
    greeting: String,
    limits: Limits,
    tags: Vec<String>,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(crate = "hookspecs::serde", default)]
struct Limits {
    max: u32,
    min: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting: "hello".into(),
            limits: Limits::default(),
            tags: vec!["default".into()],
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max: 10, min: 1 }
    }
}

/// `configured` (export.rs): "A plugin's typed configuration from its
/// `[plugins.<name>]` table (`Value::Null` when there is none: the
/// defaults). An unknown key or a value of the wrong type is an error
/// naming the key." Taken to nested tables and lists: the key named is the
/// whole path to it, and a partial table keeps the other defaults.
#[test]
fn typed_config_takes_defaults_and_names_the_unknown_or_mistyped_key_at_any_depth() {
    assert_eq!(configured::<Config>(&Value::Null), Ok(Config::default()));
    assert_eq!(configured::<Config>(&json!({})), Ok(Config::default()));
    let partial: Config = configured(&json!({"limits": {"max": 3}})).unwrap();
    assert_eq!(
        partial,
        Config {
            limits: Limits { max: 3, min: 1 },
            ..Config::default()
        },
        "a partial nested table keeps the other defaults"
    );

    let unknown = |table: Value| configured::<Config>(&table).unwrap_err();
    assert_eq!(
        unknown(json!({"greting": "x"})),
        "invalid configuration: unknown key `greting`"
    );
    assert_eq!(
        unknown(json!({"limits": {"mx": 3}})),
        "invalid configuration: unknown key `limits.mx`"
    );
    let two = unknown(json!({"zeta": 1, "alpha": 2}));
    assert!(
        two.contains("`alpha`") && two.contains("`zeta`"),
        "every unknown key is named: {two}"
    );

    for (table, key) in [
        (json!({"greeting": 5}), "`greeting`"),
        (json!({"limits": {"max": "ten"}}), "`limits.max`"),
        (json!({"limits": {"max": -1}}), "`limits.max`"),
        (
            json!({"limits": {"max": 4_294_967_296_u64}}),
            "`limits.max`",
        ),
        (json!({"tags": ["a", 3]}), "`tags[1]`"),
        (json!({"limits": 5}), "`limits`"),
    ] {
        let why = configured::<Config>(&table).unwrap_err();
        assert!(
            why.starts_with("invalid configuration: ")
                && why.contains(key)
                && why.contains("invalid"),
            "{table}: {why}"
        );
    }
}

static BUILT: AtomicUsize = AtomicUsize::new(0);

struct Exported;

#[hookimpl]
impl AppHooks for Exported {
    async fn on_user_created(&self, _user: &User, _ctx: &HookContext) -> HookResult<()> {
        Ok(())
    }
}

fn build(config: Config) -> Result<PluginExport, String> {
    BUILT.fetch_add(1, Ordering::SeqCst);
    match config.greeting.as_str() {
        "" => Err("`greeting` must not be empty".into()),
        "idle" => Ok(PluginExport::idle("set `greeting` in [plugins.t]")),
        _ => Ok(PluginExport::new(Exported)),
    }
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "log",
        sqlite: "CREATE TABLE plugin_t_log (id INTEGER PRIMARY KEY)",
        postgres: "CREATE TABLE plugin_t_log (id BIGINT PRIMARY KEY)",
    },
    Migration {
        version: 2,
        name: "more",
        sqlite: "ALTER TABLE plugin_t_log ADD COLUMN x TEXT",
        postgres: "ALTER TABLE plugin_t_log ADD COLUMN x TEXT",
    },
];

hookspecs::export_plugin!(
    build,
    config = Config,
    requires = ["audit_log", "hello_world"],
    migrations = MIGRATIONS,
);

/// `export_plugin!` (export.rs): "with one taking the plugin's typed
/// configuration ... an unknown key or a wrong type fails the plugin with
/// the key named. The constructor returns anything `IntoExport`: ... a
/// `Result<_, String>` to refuse a bad setting, or `PluginExport::idle`
/// when nothing is configured. Either form may end with `requires =
/// [...]` ... and then `migrations = MIGRATIONS`." A configuration that
/// does not fit never reaches the constructor; whatever the constructor
/// answers carries the declared requirements and migrations.
#[test]
fn export_plugin_checks_the_config_before_the_constructor_and_keeps_requires_and_migrations() {
    let before = BUILT.load(Ordering::SeqCst);
    let wrong = app_plugin_register(&json!({"greeting": 7})).err().unwrap();
    assert!(wrong.contains("`greeting`"), "{wrong}");
    let unknown = app_plugin_register(&json!({"greetin": "x"})).err().unwrap();
    assert_eq!(unknown, "invalid configuration: unknown key `greetin`");
    assert_eq!(
        BUILT.load(Ordering::SeqCst),
        before,
        "the constructor never ran on a configuration that does not fit"
    );

    let refused = app_plugin_register(&json!({"greeting": ""})).err().unwrap();
    assert_eq!(
        refused, "`greeting` must not be empty",
        "the constructor's own words"
    );

    for (table, idle) in [
        (Value::Null, None),
        (
            json!({"greeting": "idle"}),
            Some("set `greeting` in [plugins.t]"),
        ),
    ] {
        let export = app_plugin_register(&table).unwrap();
        assert_eq!(export.requires, ["audit_log", "hello_world"], "{table}");
        let versions: Vec<i64> = export.migrations.iter().map(|m| m.version).collect();
        assert_eq!(versions, [1, 2], "{table}");
        assert_eq!(export.idle.as_deref(), idle, "{table}");
    }
    let idle = app_plugin_register(&json!({"greeting": "idle"})).unwrap();
    assert!(
        idle.plugin.impls().is_empty(),
        "an idle plugin has no hook to call"
    );
}

// ---------------------------------------------------------------------
// Request readers
// ---------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(crate = "hookspecs::serde")]
#[allow(dead_code)]
struct Note {
    text: String,
    meta: Meta,
}

#[derive(Debug, serde::Deserialize)]
#[serde(crate = "hookspecs::serde")]
#[allow(dead_code)]
struct Meta {
    size: u32,
}

/// `Request::json` (http.rs): "The JSON body, an object, as `T`. 422
/// naming the field that does not fit (`body` when there is no JSON object
/// at all)."
#[test]
fn json_answers_422_naming_body_when_there_is_no_object_and_the_field_otherwise() {
    let read = |body: Option<Value>| {
        request(idle_context(), &[], &[], body)
            .json::<Note>()
            .unwrap_err()
    };
    for body in [
        None,
        Some(json!([1])),
        Some(json!("text")),
        Some(json!(null)),
        Some(json!(3)),
    ] {
        let error = read(body.clone());
        assert_eq!(parts(&error), (422, "invalid", Some("body")), "{body:?}");
        assert_eq!(error.message, "the body must be a JSON object", "{body:?}");
    }
    for (body, field) in [
        (json!({"meta": {"size": 1}}), "text"),
        (json!({"text": 5, "meta": {"size": 1}}), "text"),
        (json!({"text": "t", "meta": {"size": "big"}}), "meta.size"),
        (json!({"text": "t", "meta": {"size": -1}}), "meta.size"),
        (json!({"text": "t", "meta": 4}), "meta"),
    ] {
        let error = read(Some(body.clone()));
        assert_eq!(parts(&error), (422, "invalid", Some(field)), "{body}");
        assert!(
            error.message.starts_with(&format!("{field}: ")),
            "{body}: {}",
            error.message
        );
    }
    let fine = request(
        idle_context(),
        &[],
        &[],
        Some(json!({"text": "t", "meta": {"size": 2}, "extra": 1})),
    );
    assert_eq!(fine.json::<Note>().unwrap().meta.size, 2);
}

/// `Request::json` (http.rs): "422 naming the field that does not fit":
/// a field missing inside a nested object is the field that does not fit,
/// as a missing top-level field is named itself (`from_json`'s doc:
/// `name: missing field`), not the object around it.
#[test]
fn json_names_a_missing_nested_field_itself() {
    let error = request(
        idle_context(),
        &[],
        &[],
        Some(json!({"text": "t", "meta": {}})),
    )
    .json::<Note>()
    .unwrap_err();
    assert_eq!(
        parts(&error),
        (422, "invalid", Some("meta.size")),
        "{}",
        error.message
    );
}

/// `Request::id_param` (http.rs): "A path parameter parsed as an id. 404
/// if it is not a number: no resource can have that id." README: "an id,
/// or 404".
#[test]
fn id_param_is_the_number_or_404() {
    let id = |value: &str| request(idle_context(), &[("id", value)], &[], None).id_param("id");
    assert_eq!(id("42").unwrap(), 42);
    assert_eq!(id("9223372036854775807").unwrap(), i64::MAX);
    for not_an_id in [
        "abc",
        "",
        "1.5",
        "4 2",
        "0x10",
        "9223372036854775808",
        "１２",
    ] {
        let error = id(not_an_id).unwrap_err();
        assert_eq!(
            (error.status, error.code.as_str(), error.message.as_str()),
            (404, "not_found", "no such resource"),
            "{not_an_id:?}"
        );
    }
    let unnamed = request(idle_context(), &[("id", "7")], &[], None).id_param("other");
    assert_eq!(
        unnamed.unwrap_err().status,
        404,
        "a parameter the route does not have"
    );
}

/// `Request::page` (http.rs): "The page of a list the request asks for:
/// `?after=N&limit=M`. 422 naming `after` or `limit` when either is not a
/// number, or `limit` is 0 or above `Page::MAX_LIMIT`." page.rs: "Items
/// per page when the request does not say" is `DEFAULT_LIMIT`.
#[test]
fn page_reads_after_and_limit_within_bounds_or_422_naming_which() {
    let page = |query: &[(&str, &str)]| request(idle_context(), &[], query, None).page();
    assert_eq!(
        page(&[]).unwrap(),
        Page {
            after: None,
            limit: Page::DEFAULT_LIMIT
        }
    );
    assert_eq!(
        page(&[("after", "7"), ("limit", "500")]).unwrap(),
        Page {
            after: Some(7),
            limit: Page::MAX_LIMIT
        }
    );
    assert_eq!(page(&[("limit", "1")]).unwrap().limit, 1);
    for bad in ["0", "501", "-1", "abc", "", "4294967296", "2.5"] {
        let error = page(&[("limit", bad)]).unwrap_err();
        assert_eq!(
            parts(&error),
            (422, "invalid", Some("limit")),
            "limit={bad:?}"
        );
        assert_eq!(error.message, "limit must be 1 to 500", "limit={bad:?}");
    }
    for bad in ["abc", "", "1.0", "9223372036854775808"] {
        let error = page(&[("after", bad)]).unwrap_err();
        assert_eq!(
            parts(&error),
            (422, "invalid", Some("after")),
            "after={bad:?}"
        );
    }
}

/// `Request::query` and `param` (http.rs): "A query-string parameter", "A
/// path parameter": `None` when absent, an empty value kept as empty.
#[test]
fn query_and_param_tell_absent_from_empty() {
    let req = request(
        idle_context(),
        &[("word", "")],
        &[("q", ""), ("x", "a b")],
        None,
    );
    assert_eq!(req.query("q"), Some(""));
    assert_eq!(req.query("x"), Some("a b"));
    assert_eq!(req.query("missing"), None);
    assert_eq!(req.param("word"), Some(""));
    assert_eq!(req.param("missing"), None);
    assert_eq!((req.method(), req.path()), (Method::Post, "/plugins/t/x"));
}

// ---------------------------------------------------------------------
// Reply and Page
// ---------------------------------------------------------------------

/// `Reply` (http.rs): "200 with `body`", "201 with `body`", "204, no
/// body"; a JSON value is `Reply::ok`. `Reply::page`: "When the page is
/// full, the reply names the next page" (after the last item's key, same
/// limit); not full, none; `Page::all()` is "Every item, in one page".
#[test]
fn reply_statuses_and_pages_name_the_next_page_only_when_full() {
    assert_eq!(
        (Reply::ok(json!(1)).status, Reply::ok(json!(1)).body),
        (200, json!(1))
    );
    assert_eq!(Reply::created(json!({"a": 1})).status, 201);
    let none = Reply::no_content();
    assert_eq!(
        (none.status, none.body, none.next),
        (204, Value::Null, None)
    );
    assert_eq!(Reply::from(json!([1])), Reply::ok(json!([1])));

    #[derive(serde::Serialize)]
    #[serde(crate = "hookspecs::serde")]
    struct Item {
        id: i64,
    }
    let items = [Item { id: 10 }, Item { id: 20 }, Item { id: 35 }];
    let key = |item: &Item| item.id;

    let full = Reply::page(
        &items,
        Page {
            after: Some(4),
            limit: 3,
        },
        key,
    )
    .unwrap();
    assert_eq!(full.status, 200);
    assert_eq!(full.body, json!([{"id": 10}, {"id": 20}, {"id": 35}]));
    assert_eq!(
        full.next,
        Some(Page {
            after: Some(35),
            limit: 3
        }),
        "by the key, not the position"
    );
    let short = Reply::page(&items[..2], Page::first(3), key).unwrap();
    assert_eq!(short.next, None);
    let all = Reply::page(&items, Page::all(), key).unwrap();
    assert_eq!(all.next, None, "Page::all() is one page");
    let empty = Reply::page(&items[..0], Page::first(1), key).unwrap();
    assert_eq!((empty.body, empty.next), (json!([]), None));
    assert_eq!(
        Page::first(7),
        Page {
            after: None,
            limit: 7
        }
    );
}

// ---------------------------------------------------------------------
// ApiError
// ---------------------------------------------------------------------

/// `ApiError` (error.rs): "An error with an HTTP status, answered as JSON
/// `{"error": {"code", "message", ...details}}`" and each constructor's
/// status: 400, 401, 403, 404 (with `resource`), 409, 422 (with `field`),
/// 413 (with `limit`), 500; "Equal when what the client sees is equal".
#[test]
fn api_error_constructors_have_their_status_code_and_details() {
    let cases = [
        (
            ApiError::bad_request("b"),
            400,
            "bad_request",
            json!({"code": "bad_request", "message": "b"}),
        ),
        (
            ApiError::unauthorized(),
            401,
            "unauthorized",
            json!({"code": "unauthorized", "message": "a valid `Authorization: Bearer <token>` is required"}),
        ),
        (
            ApiError::forbidden("no"),
            403,
            "forbidden",
            json!({"code": "forbidden", "message": "no"}),
        ),
        (
            ApiError::not_found("space", 7),
            404,
            "not_found",
            json!({"code": "not_found", "message": "no space with id 7", "resource": "space"}),
        ),
        (
            ApiError::conflict("c"),
            409,
            "conflict",
            json!({"code": "conflict", "message": "c"}),
        ),
        (
            ApiError::invalid("name", "bad name"),
            422,
            "invalid",
            json!({"code": "invalid", "message": "bad name", "field": "name"}),
        ),
        (
            ApiError::too_large("the body", 2048),
            413,
            "payload_too_large",
            json!({"code": "payload_too_large", "message": "the body exceeds the limit of 2 KiB", "limit": 2048}),
        ),
        (
            ApiError::internal("x"),
            500,
            "internal",
            json!({"code": "internal", "message": "x"}),
        ),
        (
            ApiError::new(429, "quota", "slow down")
                .with("retry_in", 3)
                .with("who", json!(["a"])),
            429,
            "quota",
            json!({"code": "quota", "message": "slow down", "retry_in": 3, "who": ["a"]}),
        ),
    ];
    for (error, status, code, body) in cases {
        assert_eq!(
            (error.status, error.code.as_str()),
            (status, code),
            "{error:?}"
        );
        assert_eq!(error.body(), json!({"error": body}), "{error:?}");
        assert_eq!(error.to_string(), error.message);
    }
    assert_eq!(
        ApiError::conflict("c").with("n", 1),
        ApiError::conflict("c").with("n", 1)
    );
    assert_ne!(
        ApiError::conflict("c").with("n", 1),
        ApiError::conflict("c").with("n", 2)
    );
}

// ---------------------------------------------------------------------
// HookContext
// ---------------------------------------------------------------------

/// `HookContext` (context.rs): "`acting_as`: The same unit of work, acting
/// as `actor` with `actor`'s rights: what the services do through the
/// returned context is authorized for `actor`"; "Inside a hook, `ctx` acts
/// with the application's authority"; `is_checked`: "`false` inside
/// hooks"; "`actor()`: Who is acting (`None` for the application
/// itself)"; `plugin_config`: "The configuration table of plugin `plugin`
/// (`[plugins.<name>]`), if any".
#[tokio::test]
async fn acting_as_changes_who_acts_and_checks_it_on_the_same_unit_of_work() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir).await;
    let uow = Arc::new(UnitOfWork::new(pool.clone(), None));
    let calls = Calls::default();
    let ada = identity("ada", Some(3), false);
    let configs = json!({"journal": {"verbose": true}, "other": {"x": 1}});
    let request_ctx = context(&uow, Some(ada.clone()), configs, &calls);
    assert!(request_ctx.is_checked(), "a request's context is checked");
    let hook = host::app_authority(&request_ctx);
    assert!(
        !hook.is_checked(),
        "a hook's context has the application's authority"
    );
    assert_eq!(hook.actor(), Some(&ada), "and still says who caused it");

    let as_actor = hook.acting_as(hook.actor().cloned());
    let as_nobody = hook.acting_as(None);
    let as_admin = as_nobody.acting_as(Some(identity("root", None, true)));
    for (ctx, who) in [
        (&hook, Some("ada")),
        (&as_actor, Some("ada")),
        (&as_nobody, None),
        (&as_admin, Some("root")),
    ] {
        ctx.services().list_users(ctx, Page::all()).await.unwrap();
        assert_eq!(ctx.actor().map(|a| a.name.as_str()), who);
    }
    let seen = calls.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("list_users".to_owned(), Some("ada".to_owned()), false),
            ("list_users".to_owned(), Some("ada".to_owned()), true),
            ("list_users".to_owned(), None, true),
            ("list_users".to_owned(), Some("root".to_owned()), true),
        ],
        "the services get the acting context: its actor, checked unless a hook's own"
    );

    assert_eq!(
        hook.plugin_config("journal"),
        Some(&json!({"verbose": true}))
    );
    assert_eq!(
        as_nobody.plugin_config("other"),
        Some(&json!({"x": 1})),
        "every plugin's, from any copy"
    );
    assert_eq!(hook.plugin_config("missing"), None);

    // One unit of work: a write through one copy is read through another,
    // and commits with it.
    sqlx::query("INSERT INTO plugin_t_log (text) VALUES ('via acting_as')")
        .execute(&mut *as_nobody.db().await.unwrap())
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plugin_t_log")
        .fetch_one(&mut *hook.db().await.unwrap())
        .await
        .unwrap();
    assert_eq!(n, 1, "the same transaction");
    uow.finish(Ok(())).await.unwrap();
    assert_eq!(committed(&pool).await, [("via acting_as".to_owned(), None)]);
    assert!(
        as_actor.db().await.is_err(),
        "ended with the operation, for every copy"
    );
}

// ---------------------------------------------------------------------
// insert_at_commit
// ---------------------------------------------------------------------

/// `HookContext::insert_at_commit` (sql.rs): "400 when `table` or a column
/// is not a plain lowercase name (letters, digits, `_`) or `row` is
/// empty." A refused call queues nothing.
#[tokio::test]
async fn insert_at_commit_refuses_names_that_are_not_plain_and_empty_rows_queueing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir).await;
    let uow = Arc::new(UnitOfWork::new(pool.clone(), None));
    let ctx = context(&uow, None, json!({}), &Calls::default());
    let refusals: Vec<(&str, Vec<(&str, Value)>)> = vec![
        ("Plugin_t_log", vec![("text", json!("a"))]),
        ("plugin_t_log; DROP TABLE x", vec![("text", json!("b"))]),
        ("\"plugin_t_log\"", vec![("text", json!("c"))]),
        ("1plugin", vec![("text", json!("d"))]),
        ("", vec![("text", json!("e"))]),
        ("plugin_t_log", vec![("Text", json!("f"))]),
        (
            "plugin_t_log",
            vec![("text", json!("g")), ("extra) VALUES (1); --", json!(1))],
        ),
        ("plugin_t_log", vec![]),
    ];
    for (table, row) in refusals {
        let error = ctx.insert_at_commit(table, row.clone()).await.unwrap_err();
        assert_eq!(
            (error.status, error.code.as_str()),
            (400, "bad_sql"),
            "{table:?} {row:?}"
        );
    }
    uow.finish(Ok(())).await.unwrap();
    assert!(
        committed(&pool).await.is_empty(),
        "nothing refused was queued"
    );
}

/// `insert_at_commit` (sql.rs): "Inserts `row` ... into `table` when the
/// operation commits ... rows of one table with the same columns are
/// inserted in the order queued. Until then the transaction's own reads do
/// not see the row ... An operation rolled back ... inserts nothing of what
/// it queued." Values: "null, booleans, numbers and strings, anything else
/// as its JSON text", bound, never spliced.
#[tokio::test]
async fn insert_at_commit_inserts_in_queued_order_at_commit_only_and_binds_values() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir).await;

    let uow = Arc::new(UnitOfWork::new(pool.clone(), None));
    let ctx = context(&uow, None, json!({}), &Calls::default());
    let hostile = "x'); DROP TABLE plugin_t_log; --";
    for (text, extra) in [
        ("third", json!({"nested": [1, 2]})),
        ("first", json!(null)),
        (hostile, json!(true)),
        ("second", json!(2.5)),
    ] {
        ctx.insert_at_commit("plugin_t_log", [("text", json!(text)), ("extra", extra)])
            .await
            .unwrap();
    }
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plugin_t_log")
        .fetch_one(&mut *ctx.db().await.unwrap())
        .await
        .unwrap();
    assert_eq!(seen, 0, "not seen by the transaction before the commit");
    uow.finish(Ok(())).await.unwrap();
    let rows = committed(&pool).await;
    let texts: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["third", "first", hostile, "second"],
        "in the order queued"
    );
    assert_eq!(
        rows[0].1.as_deref(),
        Some(r#"{"nested":[1,2]}"#),
        "an object as its JSON text"
    );
    assert_eq!(rows[1].1, None, "null is NULL");

    // Rolled back: nothing of what it queued, nor of what it wrote.
    let uow = Arc::new(UnitOfWork::new(pool.clone(), None));
    let ctx = context(&uow, None, json!({}), &Calls::default());
    sqlx::query("INSERT INTO plugin_t_log (text) VALUES ('written')")
        .execute(&mut *ctx.db().await.unwrap())
        .await
        .unwrap();
    ctx.insert_at_commit("plugin_t_log", [("text", json!("queued"))])
        .await
        .unwrap();
    let failed = uow.finish::<()>(Err(ApiError::conflict("no"))).await;
    assert_eq!(failed.unwrap_err().code, "conflict");
    assert_eq!(committed(&pool).await.len(), 4);
}

/// `insert_at_commit` (sql.rs): "a failure to insert it (a constraint)
/// fails the operation, after its hooks ran, and rolls everything back".
/// README: "a row the table refuses fails the operation".
#[tokio::test]
async fn insert_at_commit_a_refused_row_fails_the_commit_and_writes_nothing_of_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir).await;
    let uow = Arc::new(UnitOfWork::new(pool.clone(), None));
    let ctx = context(&uow, None, json!({}), &Calls::default());
    sqlx::query("INSERT INTO plugin_t_log (text) VALUES ('taken')")
        .execute(&mut *ctx.db().await.unwrap())
        .await
        .unwrap();
    ctx.insert_at_commit("plugin_t_log", [("text", json!("fresh"))])
        .await
        .unwrap();
    ctx.insert_at_commit("plugin_t_log", [("text", json!("taken"))])
        .await
        .unwrap();
    let outcome = uow.finish(Ok("the handler's answer")).await;
    assert!(outcome.is_err(), "the commit failed: {outcome:?}");
    assert!(
        committed(&pool).await.is_empty(),
        "nothing of the operation"
    );
    // The pool's one connection is usable again, outside a transaction.
    let next = Arc::new(UnitOfWork::new(pool.clone(), None));
    let ctx = context(&next, None, json!({}), &Calls::default());
    ctx.insert_at_commit("plugin_t_log", [("text", json!("after"))])
        .await
        .unwrap();
    next.finish(Ok(())).await.unwrap();
    assert_eq!(committed(&pool).await, [("after".to_owned(), None)]);
}

// ---------------------------------------------------------------------
// Startup and Routes
// ---------------------------------------------------------------------

fn ok_route(routes: &hookspecs::Routes, method: Method, path: &str) -> Result<(), RouteError> {
    routes.add(method, path, |_req: Request| async { Ok(json!({})) })
}

/// `Startup` (http.rs): "`config()`: The plugin's configuration
/// (`[plugins.<name>]`), if any"; "`routes()`: Adds routes under
/// `/plugins/<name>/` ... A handle kept past startup refuses every route
/// with `RouteError::Frozen`"; `signed_in()` / `admin()`: "The routes
/// added through the returned handle need a recognised credential" / "are
/// for the admin only". A handle taken during startup and kept, and the
/// guarded handles made from it later, all refuse once startup is over.
#[test]
fn a_routes_handle_kept_past_startup_refuses_every_route_whatever_its_guard() {
    let table = RouteTable::default();
    let configs = PluginConfigs(HashMap::from([
        ("greeter".to_owned(), json!({"greeting": "hi"})),
        ("other".to_owned(), json!({"secret": 1})),
    ]));
    let configs = Arc::new(configs);
    let startup = host::startup("greeter", table.clone(), configs.clone());
    assert_eq!(startup.plugin(), "greeter");
    assert_eq!(
        startup.config(),
        Some(&json!({"greeting": "hi"})),
        "its own table only"
    );
    assert_eq!(
        host::startup("quiet", table.clone(), configs).config(),
        None
    );

    let kept = startup.routes();
    ok_route(&kept, Method::Get, "/open").unwrap();
    ok_route(&kept.signed_in(), Method::Post, "/mine").unwrap();
    ok_route(&kept.admin(), Method::Delete, "/all/").unwrap();
    ok_route(&kept, Method::Get, "/").unwrap();
    let registered: Vec<(Method, String, Guard)> = table
        .routes()
        .iter()
        .map(|r| (r.method, r.path.clone(), r.guard))
        .collect();
    assert_eq!(
        registered,
        [
            (
                Method::Get,
                "/plugins/greeter/open".to_owned(),
                Guard::Public
            ),
            (
                Method::Post,
                "/plugins/greeter/mine".to_owned(),
                Guard::SignedIn
            ),
            (
                Method::Delete,
                "/plugins/greeter/all".to_owned(),
                Guard::Admin
            ),
            (Method::Get, "/plugins/greeter".to_owned(), Guard::Public),
        ]
    );
    assert!(table.routes().iter().all(|r| r.owner == "greeter"));

    table.freeze();
    for (handle, method, path) in [
        (kept.clone(), Method::Put, "/late"),
        (kept.signed_in(), Method::Post, "/late"),
        (kept.admin(), Method::Get, "/late/:id"),
        (startup.routes(), Method::Patch, "/late"),
    ] {
        let refused = ok_route(&handle, method, path).unwrap_err();
        let full = format!("/plugins/greeter{path}");
        assert_eq!(
            refused,
            RouteError::Frozen {
                plugin: "greeter".into(),
                method: method.as_str(),
                path: full.clone(),
            }
        );
        assert_eq!(
            refused.to_string(),
            format!(
                "plugin `greeter` tried to add route {} {full} after startup; \
                 routes can only be added in on_plugins_loaded",
                method.as_str()
            )
        );
    }
    assert_eq!(table.routes().len(), 4, "nothing was added after startup");
}

/// README: "A route that clashes stops startup naming both"; `RouteError::
/// Clash`: "Another route already answers that method and path". Two
/// routes that answer the same requests clash whatever their parameters
/// are called, a trailing `/`, or their guards; the same path with another
/// method does not.
#[test]
fn routes_that_answer_the_same_requests_clash_naming_both() {
    let table = RouteTable::default();
    let startup = host::startup("greeter", table.clone(), Default::default());
    let routes = startup.routes();
    ok_route(&routes, Method::Get, "/items/:id").unwrap();
    ok_route(&routes, Method::Post, "/items/:id").unwrap();
    for (handle, path) in [
        (routes.clone(), "/items/:key"),
        (routes.clone(), "/items/:id/"),
        (routes.admin(), "/items/:other"),
    ] {
        let clash = ok_route(&handle, Method::Get, path).unwrap_err();
        let RouteError::Clash {
            path: refused,
            owner,
            existing,
            existing_owner,
            method,
        } = &clash
        else {
            panic!("{path}: not a clash: {clash:?}");
        };
        assert_eq!(*method, "GET");
        assert_eq!(
            refused,
            &format!("/plugins/greeter{}", path.trim_end_matches('/'))
        );
        assert_eq!(
            (existing.as_str(), owner.as_str(), existing_owner.as_str()),
            ("/plugins/greeter/items/:id", "greeter", "greeter")
        );
        let text = clash.to_string();
        assert!(
            text.contains(refused.as_str()) && text.contains("/plugins/greeter/items/:id"),
            "{text}"
        );
    }
    assert_eq!(table.routes().len(), 2);
    for bad in [
        "/items/{id}",
        "/items/<id>",
        "/files/*rest",
        "items",
        "/a//b",
        "/a?b=1",
    ] {
        let refused = ok_route(&routes, Method::Get, bad).unwrap_err();
        assert!(
            matches!(refused, RouteError::InvalidPath { .. }),
            "{bad}: {refused:?}"
        );
        assert!(
            refused.to_string().contains("greeter") && refused.to_string().contains(bad),
            "{refused}"
        );
    }
}
