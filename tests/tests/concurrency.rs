//! Many clients at once on the same rows, through the real app with the
//! shipped plugins: on PostgreSQL with three app instances on one database,
//! on SQLite with one. Every race ends as if the operations had run one
//! after the other, and the counts afterwards are exact.

use std::sync::Arc;
use std::thread;

use e2e_tests::*;
use serde_json::{Value, json};

/// Retries enough that contention never turns into 503s in these tests.
const CONFIG: &str = "[database]\nmax_attempts = 40\nbackoff_ms = 2\n";

/// The real app with every shipped plugin: three instances on one database
/// on PostgreSQL, one on SQLite (an embedded database has one process).
fn instances(backend: Backend) -> Vec<TestApp> {
    let db = Arc::new(TestDb::create(backend));
    let options = Options::default()
        .real_app()
        .config(CONFIG)
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
    let n = if backend == Backend::Postgres { 3 } else { 1 };
    (0..n)
        .map(|_| TestApp::start_on(db.clone(), &options))
        .collect()
}

fn clients(apps: &[TestApp]) -> Vec<Client> {
    apps.iter().map(|a| a.client.clone()).collect()
}

fn open_space(client: &Client, name: &str, parent: Option<i64>) -> Response {
    let body = json!({"name": name, "access": "open", "parent_id": parent});
    client.post("/api/spaces", ADMIN, body)
}

fn new_user(client: &Client, name: &str) -> Response {
    let body = json!({"username": name, "email": format!("{name}@example.org")});
    client.post("/api/users", ADMIN, body)
}

fn audit(apps: &[TestApp], kind: &str, entity: &str) -> i64 {
    apps[0].db.count(&format!(
        "SELECT COUNT(*) FROM plugin_audit_log_entries WHERE kind = '{kind}' AND entity = '{entity}'"
    ))
}

e2e! {
    fn users_and_open_spaces_created_at_once_all_meet(backend) {
        let apps = instances(backend);
        let clients = clients(&apps);
        let answers = at_once(8, move |i| {
            let client = &clients[i % clients.len()];
            (0..6)
                .map(|k| {
                    if i % 4 == 0 {
                        open_space(client, &format!("open-{i}-{k}"), None)
                    } else {
                        new_user(client, &format!("u{i}x{k}"))
                    }
                })
                .collect::<Vec<_>>()
        });
        let answers: Vec<&Response> = answers.iter().flatten().collect();
        for (status, body) in &answers {
            assert_eq!(*status, 201, "{body}");
        }
        let db = &apps[0].db;
        let (users, spaces) = (db.count("SELECT COUNT(*) FROM users"), db.count("SELECT COUNT(*) FROM spaces"));
        assert_eq!((users, spaces), (36, 12));
        // autoinvite: every user in every open space, whatever came first.
        assert_eq!(db.count("SELECT COUNT(*) FROM memberships"), users * spaces);
        assert_eq!(
            db.count("SELECT COUNT(*) FROM plugin_audit_log_entries WHERE kind = 'membership_created'"),
            users * spaces
        );
    }

    fn of_concurrent_deletes_exactly_one_happens_and_fires(backend) {
        let apps = instances(backend);
        let admin = apps[0].client.clone();
        for round in 0..8 {
            let user = id(&expect(201, new_user(&admin, &format!("gone{round}"))));
            let space = id(&expect(201, open_space(&admin, &format!("gone{round}"), None)));
            // The user is in the open space (autoinvite): delete the membership,
            // the space and the user, three times each at once.
            let targets = [
                format!("/api/spaces/{space}/members/{user}"),
                format!("/api/spaces/{space}"),
                format!("/api/users/{user}"),
            ];
            for target in targets {
                let clients = clients(&apps);
                let target2 = target.clone();
                let mut statuses: Vec<u16> = at_once(3, move |i| clients[i % clients.len()].delete(&target2, ADMIN).0);
                statuses.sort();
                assert_eq!(statuses, [204, 404, 404], "{target}");
            }
            assert_eq!(audit(&apps, "membership_deleted", &format!("space {space} user {user}")), 1);
            assert_eq!(audit(&apps, "space_deleted", &format!("space {space}")), 1);
            assert_eq!(audit(&apps, "user_deleted", &format!("user {user}")), 1);
        }
    }

    fn identical_membership_puts_at_once_are_one_201_and_200s(backend) {
        let apps = instances(backend);
        let admin = apps[0].client.clone();
        let confidential = json!({"name": "team", "access": "confidential"});
        let space = id(&expect(201, admin.post("/api/spaces", ADMIN, confidential)));
        for round in 0..8 {
            let user = id(&expect(201, new_user(&admin, &format!("join{round}"))));
            let clients = clients(&apps);
            let path = format!("/api/spaces/{space}/members/{user}");
            let mut statuses: Vec<u16> = at_once(3, move |i| {
                clients[i % clients.len()].put(&path, ADMIN, json!({"role": "contributor"})).0
            });
            statuses.sort();
            assert_eq!(statuses, [200, 200, 201], "round {round}");
            assert_eq!(audit(&apps, "membership_created", &format!("space {space} user {user}")), 1);
        }
    }

    fn joining_a_child_and_its_parent_at_once_keeps_parent_access(backend) {
        let apps = instances(backend);
        let admin = apps[0].client.clone();
        let secret = |name: &str, parent: Option<i64>| {
            let body = json!({"name": name, "access": "confidential", "parent_id": parent});
            id(&expect(201, admin.post("/api/spaces", ADMIN, body)))
        };
        let parent = secret("parent", None);
        let child = secret("child", Some(parent));
        let sibling = secret("sibling", Some(parent));
        let users: Vec<i64> = (0..6).map(|n| id(&expect(201, new_user(&admin, &format!("kid{n}"))))).collect();
        let clients = clients(&apps);
        let users2 = users.clone();
        let answers = at_once(9, move |i| {
            let client = &clients[i % clients.len()];
            let space = [child, sibling, parent][i % 3];
            users2
                .iter()
                .map(|u| client.put(&format!("/api/spaces/{space}/members/{u}"), ADMIN, json!({"role": "reader"})))
                .collect::<Vec<_>>()
        });
        for (status, body) in answers.iter().flatten() {
            assert!(*status == 200 || *status == 201, "{status} {body}");
        }
        let db = &apps[0].db;
        for space in [parent, child, sibling] {
            assert_eq!(db.count(&format!("SELECT COUNT(*) FROM memberships WHERE space_id = {space}")), 6);
        }
        // Each membership created once, whichever request (or parent_access) made it.
        assert_eq!(
            db.count("SELECT COUNT(*) FROM plugin_audit_log_entries WHERE kind = 'membership_created'"),
            18
        );
    }

    fn related_operations_racing_end_as_single_requests_would(backend) {
        let apps = instances(backend);
        let admin = apps[0].client.clone();
        for round in 0..5 {
            let users: Vec<i64> = (0..3).map(|n| id(&expect(201, new_user(&admin, &format!("r{round}u{n}"))))).collect();
            let body = json!({"name": format!("doomed{round}"), "access": "confidential"});
            let space = id(&expect(201, admin.post("/api/spaces", ADMIN, body)));
            let clients = clients(&apps);
            let users2 = users.clone();
            // Delete the space, add members to it, delete a user being
            // added, create a child under it: all at once.
            let answers: Vec<(String, Response)> = at_once(5, move |i| {
                let client = &clients[i % clients.len()];
                let (what, answer) = match i {
                    0 => ("delete space".to_owned(), client.delete(&format!("/api/spaces/{space}"), ADMIN)),
                    1 | 2 => {
                        let path = format!("/api/spaces/{space}/members/{}", users2[i - 1]);
                        (format!("put {path}"), client.put(&path, ADMIN, json!({"role": "reader"})))
                    }
                    3 => ("delete user".to_owned(), client.delete(&format!("/api/users/{}", users2[2]), ADMIN)),
                    _ => {
                        let body = json!({"name": "late child", "access": "open", "parent_id": space});
                        ("child".to_owned(), client.post("/api/spaces", ADMIN, body))
                    }
                };
                (what, answer)
            });
            for (what, (status, body)) in &answers {
                let fine = match what.as_str() {
                    "delete space" | "delete user" => *status == 204,
                    "child" => *status == 201 || *status == 422,
                    _ => [200, 201, 404].contains(status),
                };
                assert!(fine, "{what}: {status} {body}");
                assert!(!body.to_string().contains("constraint"), "{body}");
            }
            let db = &apps[0].db;
            assert_eq!(db.count(&format!("SELECT COUNT(*) FROM spaces WHERE id = {space} OR parent_id = {space}")), 0);
            assert_eq!(db.count(&format!("SELECT COUNT(*) FROM memberships WHERE space_id = {space} OR user_id = {}", users[2])), 0);
        }
    }

    fn text_fields_have_the_same_rules_on_both_databases(backend) {
        let app = TestApp::start(backend);
        let nul = json!({"username": "nul\u{0}x", "email": "n@example.org"});
        assert_eq!(expect_error(422, "invalid", app.post("/api/users", ADMIN, nul))["field"], "username");
        let nul_name = json!({"username": "ok", "email": "ok@example.org", "display_name": "a\u{0}b"});
        assert_eq!(expect_error(422, "invalid", app.post("/api/users", ADMIN, nul_name))["field"], "display_name");
        let long = json!({"username": "ok", "email": "ok@example.org", "display_name": "x".repeat(201)});
        assert_eq!(expect_error(422, "invalid", app.post("/api/users", ADMIN, long))["field"], "display_name");
        let space = json!({"name": "s\u{0}", "access": "open"});
        assert_eq!(expect_error(422, "invalid", app.post("/api/spaces", ADMIN, space))["field"], "name");
        let space = json!({"name": "é".repeat(201), "access": "open"});
        assert_eq!(expect_error(422, "invalid", app.post("/api/spaces", ADMIN, space))["field"], "name");
        let fits = json!({"username": "ok", "email": "ok@example.org", "display_name": "é".repeat(200)});
        expect(201, app.post("/api/users", ADMIN, fits));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    }

    fn kill_9_under_write_load_loses_no_acknowledged_write(backend) {
        let db = Arc::new(TestDb::create(backend));
        let options = Options::default()
            .real_app()
            .config(CONFIG)
            .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
        let mut app = TestApp::start_on(db.clone(), &options);
        for n in 0..2 {
            expect(201, open_space(&app.client, &format!("lobby{n}"), None));
        }
        let client = app.client.clone();
        let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (client, acked) = (client.clone(), acked.clone());
                thread::spawn(move || {
                    for k in 0..400 {
                        let name = format!("w{w}n{k}");
                        let body = json!({"username": name, "email": format!("{name}@example.org")});
                        match client.try_request("POST", "/api/users", ADMIN, Some(&body)) {
                            Some((201, _)) => acked.lock().unwrap().push(name),
                            Some(_) => {}
                            None => return, // the server is gone
                        }
                    }
                })
            })
            .collect();
        // Kill it in the middle of the writes.
        let wait = std::time::Instant::now();
        while acked.lock().unwrap().len() < 40 {
            assert!(wait.elapsed() < DEADLINE, "no writes were acknowledged");
            thread::yield_now();
        }
        app.proc.child.kill().expect("kill -9");
        app.proc.child.wait().unwrap();
        for w in writers {
            w.join().unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        // Restarted on the same database: everything acknowledged is there,
        // each whole (autoinvite's memberships came in the same transaction).
        let app = TestApp::start_on(db, &options);
        let users: Vec<String> = app.db.column("SELECT username FROM users");
        for name in &acked {
            assert!(users.contains(name), "{name} was acknowledged and lost");
        }
        assert_eq!(
            app.db.count("SELECT COUNT(*) FROM memberships"),
            2 * users.len() as i64,
            "a user without their memberships: something was half-written"
        );
        expect(201, new_user(&app.client, "after-restart"));
    }
}

/// Only PostgreSQL re-runs operations (SQLite's writers never collide).
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn a_hook_that_ran_twice_for_one_operation_left_one_effect() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let app = TestApp::start(backend);
    let user = expect(
        201,
        app.post(
            "/api/users",
            ADMIN,
            json!({"username": "retry-ann", "email": "ann@example.org"}),
        ),
    );
    // `failing` lost the first run with a serialization failure, after
    // `recorder` had written its row; the second run committed alone.
    assert_eq!(
        app.recorder_keys(0),
        [key("recorder", "on_user_created", id(&user))]
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    let report: Value = expect(200, app.get("/api/admin/plugins", ADMIN));
    assert_eq!(
        report["operations"]["retried"], 1,
        "{}",
        report["operations"]
    );
    assert_eq!(report["operations"]["gave_up"], 0);
    app.proc.output.wait_for("the retry's log line", |out| {
        out.contains("ran POST /api/users again")
    });
    // One line for the request that was run again, and no warning: the
    // failed commit ended its transaction, nothing rolls back twice.
    let output = app.proc.output.text();
    assert_eq!(
        output.matches("again after losing races").count(),
        1,
        "{output}"
    );
    assert!(!output.contains(" WARN "), "{output}");
}

/// With no run left, the client gets 503 and `Retry-After`, and nothing is written.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn an_operation_that_keeps_losing_answers_503_and_writes_nothing() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let app = TestApp::start_with(
        backend,
        Options::default().config("[database]\nmax_attempts = 1\n"),
    );
    let error = expect_error(
        503,
        "busy",
        app.post(
            "/api/users",
            ADMIN,
            json!({"username": "retry-bo", "email": "bo@example.org"}),
        ),
    );
    assert!(error["message"].is_string());
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
    let report: Value = expect(200, app.get("/api/admin/plugins", ADMIN));
    assert_eq!(report["operations"]["gave_up"], 1);
}

/// Eighteen clients spread over three instances, each creating users that
/// all join the same three open spaces (autoinvite), with the default
/// retry settings: the collisions queue or are re-run cheaply, none ends in
/// a 503, and the invariants are exact.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn eighteen_clients_on_three_instances_creating_users_get_no_503() {
    eighteen_clients_create_users_on_three_instances("");
}

/// The same with each instance's writers queued one at a time (`[database]
/// writers = 1`): they wait for the one writing connection, deliveries'
/// bookkeeping included, and nothing waits for ever or collides more.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn writers_queued_one_at_a_time_per_instance_keep_the_counts_exact() {
    eighteen_clients_create_users_on_three_instances("[database]\nwriters = 1\n");
}

/// Eighteen clients, over three instances started with `config`, create 20
/// users each: every answer a 201, the counts exact, no operation given up.
fn eighteen_clients_create_users_on_three_instances(config: &str) {
    const CLIENTS: usize = 18;
    const EACH: usize = 20;
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let db = Arc::new(TestDb::create(backend));
    let options = Options::default()
        .real_app()
        .config(config)
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
    let apps: Vec<TestApp> = (0..3)
        .map(|_| TestApp::start_on(db.clone(), &options))
        .collect();
    for n in 0..3 {
        expect(201, open_space(&apps[0].client, &format!("lobby{n}"), None));
    }
    let clients = clients(&apps);
    let answers = at_once(CLIENTS, move |i| {
        let client = &clients[i % clients.len()];
        (0..EACH)
            .map(|k| new_user(client, &format!("c{i}n{k}")))
            .collect::<Vec<_>>()
    });
    for (status, body) in answers.iter().flatten() {
        assert_eq!(*status, 201, "{body}");
    }
    let users = (CLIENTS * EACH) as i64;
    assert_eq!(db.count("SELECT COUNT(*) FROM users"), users);
    assert_eq!(db.count("SELECT COUNT(*) FROM memberships"), 3 * users);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM plugin_audit_log_entries WHERE kind = 'membership_created'"),
        3 * users
    );
    for app in &apps {
        let report: Value = expect(200, app.get("/api/admin/plugins", ADMIN));
        assert_eq!(
            report["operations"]["gave_up"], 0,
            "{}",
            report["operations"]
        );
        // Nor any notice from PostgreSQL: the second and third instances
        // found the app's and the plugins' migration tables there already,
        // and the re-runs' refused commits were not rolled back again.
        let output = app.proc.output.text();
        assert!(!output.contains("sqlx::postgres::notice"), "{output}");
    }
}
