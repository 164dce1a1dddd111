//! README's "Native or sandboxed?", at edges tests/tests/component_claims.rs
//! leaves alone: the unit of work across the boundary (a component's writes
//! and its nested hooks' writes roll back with the operation; a route's
//! with its request), the time limit over nested calls and over a
//! statement, what the query API lets reach the database, and outbound
//! HTTP to a granted name only.
//!
//! Besides the edges guest (tests/components/edges), these tests build a
//! guest of their own, "steps" (its source is [`STEPS_SOURCE`]), in a
//! temporary crate: each hook and route runs the steps its configuration
//! (or the request's body) lists — a statement, a busy wait, a failure, a
//! panic, a service call — so that a test sets each call's work exactly.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use e2e_tests::receiver::Receiver;
use e2e_tests::*;
use serde_json::{Value, json};

/// Beyond a time limit, how late a 504 may come (the runtime's margin and
/// a loaded machine).
const LATE: Duration = Duration::from_millis(1500);

/// The steps guest: hooks `on_user_created` (the steps of
/// `created.<username>` in its table) and `on_user_modified` (those of
/// `modified.<new display name>`), the route `POST /plugins/<name>/run`
/// (public; the body's `steps`), and a migration making
/// `plugin_<name>_log (id, what)` (or those of its table's `migrations`,
/// `[{version, name, sqlite, postgres}]`). A step: `{exec|query = sql, params,
/// ignore}`, `{busy = ms}`, `{fail = status}`, `{panic = true}`, `{modify =
/// display name, user = id}` (the service `update_user`), `{create =
/// username}` (`create_user`). A failed step fails the call unless
/// `ignore`; each step's outcome is one log line `steps <label> <i>: ...`.
const STEPS_SOURCE: &str = r##"
wit_bindgen::generate!({ path: "WIT_PATH", world: "sdk-plugin" });

use app::plugin::host::{self, Level, Service};
use app::plugin::types::{Hook, HookDecl, HookError, Manifest, Tier};
use exports::app::plugin::migrations::Migration;
use exports::app::plugin::routes::{Guard, Method, RouteDecl};
use serde_json::{Value, json};

struct Steps;

fn config() -> Value {
    serde_json::from_str(&host::config()).unwrap_or_default()
}

fn fail(status: u16, code: &str, message: &str) -> HookError {
    HookError { status, code: code.into(), message: message.into() }
}

fn rows(text: String) -> Result<Value, HookError> {
    serde_json::from_str(&text).map_err(|e| fail(500, "steps", &e.to_string()))
}

fn run(steps: &Value, user: &Value, label: &str) -> Result<Value, HookError> {
    let mut out = Vec::new();
    let steps = steps.as_array().cloned().unwrap_or_default();
    for (i, step) in steps.iter().enumerate() {
        let params = step.get("params").cloned().unwrap_or(json!([])).to_string();
        let done: Result<Value, HookError> = if let Some(sql) = step["exec"].as_str() {
            host::execute(sql, &params).map(Value::from)
        } else if let Some(sql) = step["query"].as_str() {
            host::query(sql, &params).and_then(rows)
        } else if let Some(ms) = step["busy"].as_u64() {
            let start = std::time::Instant::now();
            let mut n: u64 = 0;
            while start.elapsed() < std::time::Duration::from_millis(ms) {
                n = std::hint::black_box(n.wrapping_add(1));
            }
            Ok(Value::Null)
        } else if let Some(status) = step["fail"].as_u64() {
            Err(fail(status as u16, "asked_to_fail", &format!("{label} step {i}")))
        } else if step["panic"] == true {
            panic!("asked to panic at {label} step {i}");
        } else if let Some(name) = step["modify"].as_str() {
            let id = step.get("user").cloned().unwrap_or_else(|| user["id"].clone());
            let args = json!([id, {"display_name": name}]).to_string();
            host::call_service(Service::UpdateUser, None, &args).and_then(rows)
        } else if let Some(name) = step["create"].as_str() {
            let args = json!([{"username": name, "email": format!("{name}@example.org")}]).to_string();
            host::call_service(Service::CreateUser, None, &args).and_then(rows)
        } else {
            Err(fail(500, "steps", "an unknown step"))
        };
        match done {
            Ok(value) => {
                host::log(Level::Info, &format!("steps {label} {i}: ok {value}"));
                out.push(value);
            }
            Err(e) => {
                host::log(
                    Level::Info,
                    &format!("steps {label} {i}: error {} {}: {}", e.status, e.code, e.message),
                );
                if step["ignore"] != true {
                    return Err(e);
                }
                out.push(json!({"error": e.code}));
            }
        }
    }
    Ok(Value::Array(out))
}

impl exports::app::plugin::guest::Guest for Steps {
    fn describe() -> Manifest {
        let priority = config()["priority"].as_i64().unwrap_or(0) as i32;
        let decl = |hook| HookDecl {
            hook,
            priority,
            tier: Tier::Normal,
            before: Vec::new(),
            after: Vec::new(),
        };
        Manifest {
            hooks: vec![
                decl(Hook::OnPluginsLoaded),
                decl(Hook::OnUserCreated),
                decl(Hook::OnUserModified),
            ],
            requires: Vec::new(),
        }
    }

    fn call(hook: Hook, args: String) -> Result<String, HookError> {
        let args: Vec<Value> =
            serde_json::from_str(&args).map_err(|e| fail(500, "steps", &e.to_string()))?;
        match hook {
            Hook::OnUserCreated => {
                let name = args[0]["username"].as_str().unwrap_or_default().to_owned();
                let steps = config()["created"][&name].clone();
                run(&steps, &args[0], &format!("created:{name}"))?;
            }
            Hook::OnUserModified => {
                let name = args[1]["display_name"].as_str().unwrap_or_default().to_owned();
                let steps = config()["modified"][&name].clone();
                run(&steps, &args[1], &format!("modified:{name}"))?;
            }
            _ => return Err(fail(500, "steps", "not implemented")),
        }
        Ok("null".into())
    }
}

impl exports::app::plugin::routes::Guest for Steps {
    fn start() -> Result<Vec<RouteDecl>, HookError> {
        Ok(vec![RouteDecl { method: Method::Post, path: "/run".into(), guard: Guard::Public }])
    }

    fn handle(_route: u32, request: String) -> Result<String, HookError> {
        let request: Value =
            serde_json::from_str(&request).map_err(|e| fail(500, "steps", &e.to_string()))?;
        let body = &request["body"];
        let label = body["label"].as_str().unwrap_or("route").to_owned();
        let results = run(&body["steps"], &json!({"id": body["user"]}), &label)?;
        Ok(json!({"status": 200, "body": {"results": results}, "next": null}).to_string())
    }
}

impl exports::app::plugin::migrations::Guest for Steps {
    fn all() -> Vec<Migration> {
        if let Some(declared) = config()["migrations"].as_array() {
            return declared
                .iter()
                .map(|m| Migration {
                    version: m["version"].as_i64().unwrap_or(1),
                    name: m["name"].as_str().unwrap_or("m").into(),
                    sqlite: m["sqlite"].as_str().unwrap_or_default().into(),
                    postgres: m["postgres"].as_str().unwrap_or_default().into(),
                })
                .collect();
        }
        let name = host::plugin_name();
        let sql = |id: &str| format!("CREATE TABLE plugin_{name}_log (id {id} PRIMARY KEY, what TEXT NOT NULL)");
        vec![Migration {
            version: 1,
            name: "log".into(),
            sqlite: sql("INTEGER"),
            postgres: sql("BIGINT"),
        }]
    }
}

export!(Steps);
"##;

/// The steps guest, built once per test process (in a temporary crate, with
/// the edges guest's manifest and lock file, into the tests' target for
/// components).
fn steps() -> &'static PathBuf {
    static STEPS: OnceLock<PathBuf> = OnceLock::new();
    STEPS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let edges = workspace().join("tests/components/edges");
        let manifest = std::fs::read_to_string(edges.join("Cargo.toml"))
            .unwrap()
            .replace("app_plugin_edges", "app_plugin_steps");
        std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
        std::fs::copy(edges.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        std::fs::create_dir(dir.join("src")).unwrap();
        let wit = workspace().join("hookspecs/wit");
        let source = STEPS_SOURCE.replace("WIT_PATH", wit.to_str().unwrap());
        std::fs::write(dir.join("src/lib.rs"), source).unwrap();
        build_component(&dir, "steps")
    })
}

/// The edges guest, built once per test process.
fn edges() -> &'static PathBuf {
    static EDGES: OnceLock<PathBuf> = OnceLock::new();
    EDGES.get_or_init(|| build_component(&workspace().join("tests/components/edges"), "edges"))
}

/// `[plugins.<plugin>.<table>]` with one key per `(key, steps)`.
fn steps_table(plugin: &str, table: &str, entries: &[(&str, Value)]) -> String {
    let mut out = format!("[plugins.{plugin}.{table}]\n");
    for (key, steps) in entries {
        out += &format!("\"{key}\" = {}\n", toml(steps));
    }
    out + "\n"
}

/// A step inserting `(id, what)` into `plugin_<plugin>_log`.
fn write(plugin: &str, id: i64, what: &str) -> Value {
    json!({"exec": format!("INSERT INTO plugin_{plugin}_log (id, what) VALUES ({id}, '{what}')")})
}

/// `plugin_<plugin>_log`'s rows as `id:what`, by id (read directly).
fn log_rows(app: &TestApp, plugin: &str) -> Vec<String> {
    app.db.column(&format!(
        "SELECT CAST(id AS TEXT) || ':' || what FROM plugin_{plugin}_log ORDER BY id"
    ))
}

/// The users' names, sorted (read directly).
fn usernames(app: &TestApp) -> Vec<String> {
    app.db
        .column("SELECT username FROM users ORDER BY username")
}

fn new_user(name: &str) -> Value {
    json!({"username": name, "email": format!("{name}@example.org")})
}

/// The steps route of `plugin` running `steps`, as `token`.
fn route(app: &TestApp, plugin: &str, token: Option<&str>, steps: Value) -> Response {
    app.post(
        &format!("/plugins/{plugin}/run"),
        token,
        json!({"steps": steps}),
    )
}

e2e! {
    /// "the services ... in the unit of work of the hook that called it
    /// ...; what they write commits or rolls back with the operation, and
    /// the hooks they fire run, this component's included (each call in an
    /// instance of its own ...)", and "Its error is the hook's error: the
    /// operation rolls back": a component's rows, and those its nested
    /// hook wrote, commit together, and roll back together when a later
    /// plugin's hook, or its own nested hook, fails or traps.
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_components_rows_and_its_nested_hooks_roll_back_with_a_later_failure(backend) {
        let folder = component_folder(steps(), &["first", "second"]);
        let mut config = String::from("[plugins.first]\npriority = 10\n\n[plugins.second]\npriority = 0\n\n");
        config += &steps_table("first", "created", &[
            ("ok", json!([write("first", 1, "created ok"), {"modify": "deep-ok"}])),
            ("laterfails", json!([write("first", 2, "created laterfails"), {"modify": "deep-lf"}])),
            ("nestedfails", json!([write("first", 3, "created nestedfails"), {"modify": "deep-fail"}])),
            ("nestedtraps", json!([write("first", 4, "created nestedtraps"), {"modify": "deep-trap"}])),
        ]);
        config += &steps_table("first", "modified", &[
            ("deep-ok", json!([write("first", 11, "modified ok")])),
            ("deep-lf", json!([write("first", 12, "modified laterfails")])),
            ("deep-fail", json!([write("first", 13, "modified nestedfails"), {"fail": 409}])),
            ("deep-trap", json!([write("first", 14, "modified nestedtraps"), {"panic": true}])),
        ]);
        config += &steps_table("second", "created", &[
            ("ok", json!([write("second", 1, "created ok")])),
            ("laterfails", json!([write("second", 2, "created laterfails"), {"fail": 422}])),
        ]);
        let app = launch_real(backend, folder.path(), &config);
        assert_eq!(plugin_status(&app, "first"), "loaded");
        assert_eq!(plugin_status(&app, "second"), "loaded");

        let ok = expect(201, app.post("/api/users", ADMIN, new_user("ok")));
        assert_eq!(log_rows(&app, "first"), ["1:created ok", "11:modified ok"]);
        assert_eq!(log_rows(&app, "second"), ["1:created ok"]);
        let shown = expect(200, app.get(&format!("/api/users/{}", id(&ok)), ADMIN));
        assert_eq!(shown["display_name"], "deep-ok", "the nested service's change committed");

        // `second` fails after `first` wrote, its nested hook too.
        let error = expect_error(422, "asked_to_fail", app.post("/api/users", ADMIN, new_user("laterfails")));
        assert_eq!(error["plugin"], "second", "{error}");
        app.proc.output.wait_for("first's steps for laterfails", |out| {
            out.contains("steps modified:deep-lf 0: ok 1") && out.contains("steps created:laterfails 1: ok")
        });
        // Its nested hook fails, or traps, after writing.
        let error = expect_error(409, "asked_to_fail", app.post("/api/users", ADMIN, new_user("nestedfails")));
        assert_eq!(error["plugin"], "first", "{error}");
        let error = expect_error(500, "hook_failed", app.post("/api/users", ADMIN, new_user("nestedtraps")));
        assert!(logged_500(&app, &error).contains("it trapped"), "{error}");
        app.proc.output.wait_for("the nested writes ran", |out| {
            out.contains("steps modified:deep-fail 0: ok 1") && out.contains("steps modified:deep-trap 0: ok 1")
        });

        assert_eq!(log_rows(&app, "first"), ["1:created ok", "11:modified ok"], "nothing of the failed operations");
        assert_eq!(log_rows(&app, "second"), ["1:created ok"]);
        assert_eq!(usernames(&app), ["ok"]);
        // And the app writes on: a fourth creation with no steps.
        app.create_user("plain");
        assert_eq!(usernames(&app), ["ok", "plain"]);
    }

    /// Routes: "its unit of work is the request's: the services and its SQL
    /// act as the caller (authorized as for a native route), and an error
    /// rolls them back", "within the plugin's time limit (504) and memory
    /// cap (a trap is that request's 500; the process lives)": rows and a
    /// user written before an error, a trap or the time limit are gone,
    /// the caller's authority is the services', and the next request
    /// writes at once (no lock left behind).
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_routes_writes_roll_back_when_it_fails_traps_or_times_out(backend) {
        let folder = component_folder(steps(), &["rt"]);
        let app = launch_real(backend, folder.path(), "[plugins.rt.sandbox]\ntime_limit_ms = 700\n");
        assert_eq!(plugin_status(&app, "rt"), "loaded");

        let error = expect_error(409, "asked_to_fail", route(&app, "rt", ADMIN, json!([
            write("rt", 1, "then fails"), {"create": "made-then-failed"}, {"fail": 409},
        ])));
        assert_eq!(error["message"], "route step 2");
        let error = expect_error(500, "hook_failed", route(&app, "rt", ADMIN, json!([
            write("rt", 2, "then traps"), {"create": "made-then-trapped"}, {"panic": true},
        ])));
        assert!(logged_500(&app, &error).contains("it trapped"));
        let started = Instant::now();
        let error = expect_error(504, "hook_timeout", route(&app, "rt", ADMIN, json!([
            write("rt", 3, "then spins"), {"create": "made-then-spun"}, {"busy": 60_000},
        ])));
        let took = started.elapsed();
        assert!(took < Duration::from_millis(700) + LATE, "a 504 after {took:?}: {error}");
        app.proc.output.wait_for("each route's writes ran", |out| {
            ["made-then-failed", "made-then-trapped", "made-then-spun"]
                .iter()
                .all(|name| out.contains(&format!("\"username\":\"{name}\"")))
        });
        assert_eq!(log_rows(&app, "rt"), Vec::<String>::new(), "every failed request rolled back");
        assert_eq!(usernames(&app), Vec::<String>::new());

        // As the caller: nobody may not create a user, the admin may.
        let (status, body) = route(&app, "rt", None, json!([{"create": "by-nobody"}]));
        assert!(status == 401 || status == 403, "{status} {body}");
        let started = Instant::now();
        let answer = expect(200, route(&app, "rt", ADMIN, json!([write("rt", 4, "kept"), {"create": "by-admin"}])));
        assert!(started.elapsed() < Duration::from_secs(5), "the next write waited {:?}", started.elapsed());
        assert_eq!(answer["results"][0], 1, "{answer}");
        assert_eq!(log_rows(&app, "rt"), ["4:kept"]);
        assert_eq!(usernames(&app), ["by-admin"]);
    }
}

/// "`time_limit_ms = 1000   # per hook call, the nested calls it makes
/// included`": a hook that works 600 ms, then calls a service whose hook
/// (the same component's, in an instance of its own) works 600 ms more,
/// ends at the limit with a 504, and its operation rolls back; half of
/// each fits.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn the_time_limit_covers_the_nested_calls_a_hook_makes() {
    let folder = component_folder(steps(), &["clock"]);
    let mut config = String::from("[plugins.clock.sandbox]\ntime_limit_ms = 1000\n\n");
    config += &steps_table(
        "clock",
        "created",
        &[
            (
                "slow",
                json!([write("clock", 1, "slow"), {"busy": 600}, {"modify": "slow-inner"}]),
            ),
            (
                "quick",
                json!([write("clock", 2, "quick"), {"busy": 200}, {"modify": "quick-inner"}]),
            ),
        ],
    );
    config += &steps_table(
        "clock",
        "modified",
        &[
            (
                "slow-inner",
                json!([{"busy": 600}, write("clock", 11, "slow inner")]),
            ),
            (
                "quick-inner",
                json!([{"busy": 200}, write("clock", 12, "quick inner")]),
            ),
        ],
    );
    let app = launch_real(Backend::Sqlite, folder.path(), &config);
    assert_eq!(plugin_status(&app, "clock"), "loaded");
    let started = Instant::now();
    let answer = app.post("/api/users", ADMIN, new_user("slow"));
    let took = started.elapsed();
    let error = expect_error(504, "hook_timeout", answer);
    assert_eq!(error["plugin"], "clock", "{error}");
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(1000) + LATE,
        "a 504 after {took:?}"
    );
    expect(201, app.post("/api/users", ADMIN, new_user("quick")));
    assert_eq!(log_rows(&app, "clock"), ["2:quick", "12:quick inner"]);
    assert_eq!(usernames(&app), ["quick"]);
}

/// "what they write commits or rolls back with the operation" and "A
/// failure of the database reaches the component as a fixed message
/// ... The hook fails with any of these unless it handles them": a
/// statement the query API lets through must not end the operation's
/// transaction. SQLite's `INSERT OR ROLLBACK` (which both parsers read,
/// on the plugin's own table) rolls back the whole transaction on a
/// conflict: a component that handles that error and writes on must
/// not commit half an operation, nor one the API reports failed.
fn cannot_end_the_transaction(backend: Backend) {
    let folder = component_folder(steps(), &["ender"]);
    let dup = |id: i64| {
        json!({
            "exec": format!("INSERT OR ROLLBACK INTO plugin_ender_log (id, what) VALUES ({id}, 'dup')"),
            "ignore": true,
        })
    };
    let config = steps_table(
        "ender",
        "created",
        &[
            (
                "victim",
                json!([write("ender", 10, "before"), dup(10), write("ender", 11, "after"), {"fail": 409}]),
            ),
            (
                "half",
                json!([
                    write("ender", 20, "before"),
                    dup(20),
                    write("ender", 21, "after")
                ]),
            ),
        ],
    );
    let app = launch_real(backend, folder.path(), &config);
    assert_eq!(plugin_status(&app, "ender"), "loaded");
    // A route: a row, the rollback (handled), a row, then an error: the
    // request's unit of work must leave nothing.
    let (status, body) = route(
        &app,
        "ender",
        ADMIN,
        json!([
            write("ender", 1, "first"), dup(1), write("ender", 2, "second"), {"fail": 409},
        ]),
    );
    assert!(status >= 400, "{status} {body}");
    // A hook: the same within a user's creation, which then fails.
    let (status, body) = app.post("/api/users", ADMIN, new_user("victim"));
    assert!(status >= 400, "{status} {body}");
    let failed = log_rows(&app, "ender");
    // A hook that succeeds after it: all of the creation, or none.
    let (status, body) = app.post("/api/users", ADMIN, new_user("half"));
    let users = usernames(&app);
    let rows = log_rows(&app, "ender");
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "rows of failed operations were committed (then `half`: {status} {body}, users {users:?}, rows {rows:?})"
    );
    if status == 201 {
        assert_eq!(
            (users, rows),
            (
                vec!["half".to_owned()],
                vec!["20:before".to_owned(), "21:after".to_owned()]
            ),
            "201 {body}"
        );
    } else {
        assert_eq!(
            (users, rows),
            (Vec::<String>::new(), Vec::<String>::new()),
            "{status} {body}"
        );
    }
    app.create_user("bystander");
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_statement_cannot_end_the_operations_transaction_sqlite() {
    cannot_end_the_transaction(Backend::Sqlite);
}

/// [`cannot_end_the_transaction`] on PostgreSQL (which refuses the syntax).
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_statement_cannot_end_the_operations_transaction_postgres() {
    cannot_end_the_transaction(Backend::postgres().expect("TEST_DATABASE_URL"));
}

e2e! {
    /// "`time_limit_ms = 1000   # per hook call ...: a busy loop is
    /// interrupted, the client gets a 504`", "A trap of any kind (... a
    /// busy loop or a sleep past the limit) fails that call only ...: the
    /// operation rolls back, the process lives, other requests are
    /// served", and the reason `WITH RECURSIVE` is refused: "its end
    /// depends on the data, and the time limit cannot stop a statement
    /// inside the database". A statement the query API lets through that
    /// runs for hours (a cross join of the plugin's own 60 rows, six
    /// ways) must still end its request at the limit and leave the app
    /// writing.
    #[ignore = "KNOWN LIMIT (README, the query API): a statement the database has begun runs to its end; no 504 before it, and on SQLite the writes wait"]
    fn a_statement_running_past_the_time_limit_leaves_the_app_serving(backend) {
        let folder = component_folder(steps(), &["q"]);
        let app = launch_real(backend, folder.path(), "[plugins.q.sandbox]\ntime_limit_ms = 1000\n");
        assert_eq!(plugin_status(&app, "q"), "loaded");
        let values: Vec<String> = (1..=60).map(|i| format!("({i}, 'r')")).collect();
        let fill = format!("INSERT INTO plugin_q_log (id, what) VALUES {}", values.join(", "));
        expect(200, route(&app, "q", None, json!([{"exec": fill}])));
        let cross = "SELECT COUNT(*) AS n FROM plugin_q_log AS a, plugin_q_log AS b, plugin_q_log AS c, \
                     plugin_q_log AS d, plugin_q_log AS e, plugin_q_log AS f";
        // Each request below is given 8 s (the client's own timeout).
        let client = Client::waiting(app.base.clone(), Duration::from_secs(8));
        let started = Instant::now();
        let slow = client.try_request("POST", "/plugins/q/run", None, Some(&json!({"steps": [{"query": cross}]})));
        let took = started.elapsed();
        // Served on: a creation, a read, a write of the plugin's own.
        let started = Instant::now();
        let created = client.try_request("POST", "/api/users", ADMIN, Some(&new_user("after")));
        let waited = started.elapsed();
        let read = client.try_request("GET", "/api/users", ADMIN, None);
        let written = client.try_request("POST", "/plugins/q/run", None, Some(&json!({"steps": [write("q", 100, "after")]})));
        let seen = format!(
            "the slow query: {slow:?} after {took:?}; the creation: {created:?} after {waited:?}; \
             the read: {read:?}; the write: {written:?}"
        );
        assert_eq!(slow.as_ref().map(|a| a.0), Some(504), "{seen}");
        assert!(took < Duration::from_millis(1000) + LATE, "{seen}");
        assert_eq!(created.as_ref().map(|a| a.0), Some(201), "{seen}");
        assert_eq!(read.as_ref().map(|a| a.0), Some(200), "{seen}");
        assert_eq!(written.as_ref().map(|a| a.0), Some(200), "{seen}");
        assert_eq!(usernames(&app), ["after"]);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM plugin_q_log"), 61);
    }
}

/// Sends each of `statements` to the `fn` component's `query` route on
/// PostgreSQL: those not refused with a 403, with what they answered.
fn not_refused_on_postgres(statements: &[&str]) -> Vec<String> {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let folder = component_folder(edges(), &["fn"]);
    let app = launch_real(backend, folder.path(), "");
    assert_eq!(plugin_status(&app, "fn"), "loaded");
    let execute = |sql: &str| {
        app.post(
            "/plugins/fn/execute",
            None,
            json!({"sql": sql, "params": []}),
        )
    };
    expect(
        200,
        execute("INSERT INTO plugin_fn_items (id, v) VALUES (1, 'a')"),
    );
    let mut ran = Vec::new();
    for statement in statements {
        let (status, body) = app.post(
            "/plugins/fn/query",
            None,
            json!({"sql": statement, "params": []}),
        );
        if status != 403 || body["error"]["code"] != "sql_refused" {
            ran.push(format!("{statement:?}: {status} {body}"));
        }
    }
    ran
}

/// "it may use columns, values, `$n` parameters, operators, ... and only
/// the functions `count sum min max avg coalesce nullif lower upper length
/// abs round substr substring trim replace`. Anything else is refused with
/// a 403": PostgreSQL reads `current_schema`, `current_role`, `user` and
/// their kin, unquoted, as calls of functions about the session, which
/// the check must not take for columns.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn functions_postgresql_calls_without_parentheses_are_refused() {
    let ran = not_refused_on_postgres(&[
        "SELECT CAST(current_schema AS TEXT) AS x FROM plugin_fn_items",
        "SELECT CAST(current_role AS TEXT) AS x FROM plugin_fn_items",
        "SELECT CAST(session_user AS TEXT) AS x FROM plugin_fn_items",
        "SELECT CAST(user AS TEXT) AS x FROM plugin_fn_items WHERE v = 'a'",
        "SELECT v FROM plugin_fn_items WHERE v <> current_user",
    ]);
    assert!(ran.is_empty(), "not refused:\n{}", ran.join("\n"));
}

/// The same of PostgreSQL's functional notation: `alias.name`, where
/// `name` is no column of the table, calls the function `name` on the row.
#[test]
#[ignore = "KNOWN LIMIT (README, the query API): on PostgreSQL `alias.to_json` and such are calls the check reads as columns"]
fn functional_notation_on_postgresql_is_refused() {
    let ran = not_refused_on_postgres(&[
        "SELECT CAST(i.to_json AS TEXT) AS x FROM plugin_fn_items AS i",
        "SELECT CAST(plugin_fn_items.row_to_json AS TEXT) AS x FROM plugin_fn_items",
        "SELECT i.pg_column_size AS x FROM plugin_fn_items AS i",
    ]);
    assert!(ran.is_empty(), "not refused:\n{}", ran.join("\n"));
}

e2e! {
    /// "In a component, the app checks each statement before it reaches
    /// the database ... `query` takes one `SELECT`": a NUL in a string
    /// (which SQLite's parser takes for the end of the text and the
    /// PostgreSQL protocol for the end of the statement) is refused or
    /// fails as any statement does, and the app serves on, the plugin's
    /// SQL included.
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_nul_in_a_statement_is_refused_or_fails_and_the_app_serves_on(backend) {
        let folder = component_folder(edges(), &["nul"]);
        let app = launch_real(backend, folder.path(), "");
        app.create_user("victim");
        let client = Client::waiting(app.base.clone(), Duration::from_secs(8));
        let run = |call: &str, sql: &str| {
            client.try_request("POST", &format!("/plugins/nul/{call}"), None, Some(&json!({"sql": sql, "params": []})))
        };
        for (call, sql) in [
            ("query", "SELECT v FROM plugin_nul_items WHERE v = 'a\0' UNION SELECT username FROM users"),
            ("query", "SELECT v FROM plugin_nul_items WHERE v = 'a\0b'"),
            ("execute", "INSERT INTO plugin_nul_items (id, v) VALUES (1, 'x\0y')"),
            ("execute", "DELETE FROM plugin_nul_items WHERE v = '\0'"),
        ] {
            let answer = run(call, sql);
            let (status, body) = answer.unwrap_or_else(|| panic!("no answer within 8 s to {sql:?}"));
            assert!(
                (status == 403 && body["error"]["code"] == "sql_refused")
                    || (status == 400 && body["error"]["code"] == "bad_sql")
                    || (status == 500 && body["error"]["code"] == "statement_failed"),
                "{sql:?}: {status} {body}"
            );
            assert!(!body.to_string().contains("victim"), "{body}");
        }
        let answer = run("execute", "INSERT INTO plugin_nul_items (id, v) VALUES (2, 'fine')");
        assert_eq!(answer.map(|a| a.0), Some(200));
        let answer = run("query", "SELECT id, v FROM plugin_nul_items");
        assert_eq!(answer.map(|a| a.1["rows"].clone()), Some(json!([{"id": 2, "v": "fine"}])));
        app.create_user("after");
        assert_eq!(usernames(&app), ["after", "victim"]);
    }
}

/// A component's migration, "Every expression ... built as the query API
/// allows" and a refusal for "any other statement", and the unit of work:
/// SQLite's `ON CONFLICT ROLLBACK` on a column of the plugin's own table
/// makes every plain conflicting `INSERT` end the operation's transaction.
/// Either the migration is refused at load, or the table cannot cost the
/// operation its transaction: a route writing a row, a conflicting one
/// (handled), a row, then failing, leaves nothing.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_migrations_conflict_clause_cannot_end_the_operations_transaction() {
    let folder = component_folder(steps(), &["oc"]);
    let config = "[plugins.oc]\nmigrations = [ { version = 1, name = \"log\", \
                  sqlite = '''CREATE TABLE plugin_oc_log (id INTEGER PRIMARY KEY ON CONFLICT ROLLBACK, what TEXT NOT NULL)''', \
                  postgres = '''CREATE TABLE plugin_oc_log (id BIGINT PRIMARY KEY, what TEXT NOT NULL)''' } ]\n";
    let app = launch_real(Backend::Sqlite, folder.path(), config);
    let status = plugin_status(&app, "oc");
    if status != "loaded" {
        assert!(
            status.starts_with("failed: its migration 1 (log) is refused: its SQLite text: "),
            "{status}"
        );
        return;
    }
    let dup =
        json!({"exec": "INSERT INTO plugin_oc_log (id, what) VALUES (1, 'dup')", "ignore": true});
    let (status, body) = route(
        &app,
        "oc",
        ADMIN,
        json!([
            write("oc", 1, "first"), dup, write("oc", 2, "second"), {"fail": 409},
        ]),
    );
    assert!(status >= 400, "{status} {body}");
    assert_eq!(
        log_rows(&app, "oc"),
        Vec::<String>::new(),
        "rows of a failed request were committed"
    );
}

/// "The URL's `host[:port]` must equal one of them (`example.com` does not
/// grant `example.com:8443`, nor `api.example.com`) ... Anything else is
/// refused before a byte is sent": a host granted by name is not granted
/// by its address (IPv4 or IPv6), nor with a trailing dot or an escaped
/// letter; by its name, it is reached, once.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_host_granted_by_name_is_not_granted_by_its_address() {
    let receiver = Receiver::start();
    let port = receiver
        .url
        .trim_start_matches("http://")
        .split(['/', ':'])
        .nth(1)
        .unwrap()
        .to_owned();
    let sends = [
        format!("http://127.0.0.1:{port}/by-address"),
        format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
        format!("http://localhost.:{port}/dot"),
        format!("http://%6cocalhost:{port}/escaped"),
        format!("http://localhost:{port}/by-name"),
    ];
    let config = format!(
        "[plugins.named]\nsends = {}\n\n[plugins.named.sandbox]\ntime_limit_ms = 8000\nhosts = [\"localhost:{port}\"]\n",
        toml(&json!(sends))
    );
    let folder = component_folder(edges(), &["named"]);
    let app = launch_real(Backend::Sqlite, folder.path(), &config);
    assert_eq!(plugin_status(&app, "named"), "loaded");
    app.create_user("ada");
    let line = |i: usize| {
        let marker = format!("send {i}: ");
        app.proc
            .output
            .wait_for(&marker, |out| out.contains(&marker));
        let output = app.proc.output.text();
        let line = output.lines().find(|l| l.contains(&marker)).unwrap();
        line[line.find(&marker).unwrap() + marker.len()..].to_owned()
    };
    let not_granted = |host: &str| {
        format!(
            "refused 403 forbidden: outbound HTTP to {host} is not granted: list it in [plugins.named.sandbox] hosts"
        )
    };
    assert!(
        line(0).starts_with(&not_granted(&format!("127.0.0.1:{port}"))),
        "{}",
        line(0)
    );
    assert!(
        line(1).starts_with(&not_granted(&format!("[::ffff:127.0.0.1]:{port}"))),
        "{}",
        line(1)
    );
    assert!(
        line(2).starts_with(&not_granted(&format!("localhost.:{port}"))),
        "{}",
        line(2)
    );
    let escaped = line(3);
    assert!(
        escaped.starts_with("refused 400 bad_request: ")
            || escaped.starts_with("refused 403 forbidden: "),
        "{escaped}"
    );
    assert!(line(4).starts_with("answered 200"), "{}", line(4));
    wait_until("the delivery", || delivered(&app.db, "named") == 1);
    assert_eq!(receiver.received().len(), 1, "{:?}", receiver.received());
    assert_eq!(deliveries(&app.db, "named"), ["delivered:1"]);
}
