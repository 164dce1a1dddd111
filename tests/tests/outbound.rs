//! Outbound HTTP from a component: the `courier` fixture
//! (tests/fixtures/app_plugin_courier) built for wasm32-wasip2, loaded by
//! the real app, POSTing each created user to a local receiver through
//! the SDK's `client::send` from its after-commit hook. Only to the hosts
//! `[plugins.courier.sandbox] hosts` lists, only after the commit, within
//! the plugin's time limit; on SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e_tests::receiver::{Answer, Receiver};
use e2e_tests::*;

/// The courier's time limit per call.
const LIMIT: Duration = Duration::from_millis(300);

/// `host:port` of `receiver`.
fn host_of(receiver: &Receiver) -> String {
    let rest = receiver
        .url
        .strip_prefix("http://")
        .expect("an http:// receiver");
    rest[..rest.find('/').expect("a path")].to_owned()
}

/// The real app with the courier alone in its plugin folder, POSTing to
/// `receiver`, allowed to reach `hosts`.
fn start(backend: Backend, receiver: &Receiver, hosts: &[&str]) -> (TestApp, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(
        workspace_component("courier"),
        folder.path().join("app_plugin_courier.wasm"),
    )
    .unwrap();
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    // Retries come fast; the app's own limit on an attempt is longer than
    // the plugin's, so the plugin's is what a hanging receiver meets.
    let config = format!(
        "[plugins.courier]\nurl = \"{}\"\n\n[plugins.courier.sandbox]\ntime_limit_ms = {}\n\
         hosts = [{}]\n\n[deliveries]\nbackoff_ms = 50\npoll_ms = 100\nlease_ms = 3000\n\
         timeout_ms = 2500\n",
        receiver.url,
        LIMIT.as_millis(),
        hosts.join(", ")
    );
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
        .config(&config);
    let app = TestApp::start_with(backend, options);
    (app, folder)
}

/// `status:attempts` of the courier's deliveries, by id.
fn deliveries(app: &TestApp) -> Vec<String> {
    app.db.column(
        "SELECT status || ':' || attempts FROM outbox_deliveries \
         WHERE plugin = 'courier' ORDER BY id",
    )
}

fn delivered(app: &TestApp) -> i64 {
    app.db.count(
        "SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = 'courier' AND status = 'delivered'",
    )
}

/// The courier's failed attempts so far, over all its deliveries.
fn failed_attempts(app: &TestApp) -> i64 {
    app.db.count(
        "SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM outbox_deliveries \
         WHERE plugin = 'courier' AND status <> 'delivered'",
    )
}

fn users(app: &TestApp) -> i64 {
    app.db.count("SELECT COUNT(*) FROM users")
}

e2e! {
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed")]
    fn a_granted_host_receives_each_committed_user_exactly_once(backend) {
        let receiver = Receiver::start();
        let (app, _folder) = start(backend, &receiver, &[&host_of(&receiver)]);
        for name in ["ada", "bob", "cyd"] {
            app.create_user(name);
        }
        wait_until("three deliveries", || delivered(&app) == 3);
        assert_eq!(deliveries(&app), ["delivered:1", "delivered:1", "delivered:1"]);
        let got = receiver.received();
        assert_eq!(got.len(), 3, "{got:?}");
        let names: BTreeSet<&str> = got.iter().filter_map(|r| r.json["username"].as_str()).collect();
        assert_eq!(names, BTreeSet::from(["ada", "bob", "cyd"]));
        let keys: BTreeSet<&str> = got.iter().map(|r| r.key.as_str()).collect();
        let events: BTreeSet<String> = app.db.column("SELECT event_key FROM outbox_events").into_iter().collect();
        assert_eq!(keys.len(), 3, "one key per event: {keys:?}");
        assert_eq!(keys, events.iter().map(String::as_str).collect());
        assert!(got.iter().all(|r| r.attempt == "1"), "{got:?}");
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed")]
    fn a_host_not_granted_is_refused_naming_the_key_and_nothing_is_sent(backend) {
        let receiver = Receiver::start();
        let (app, _folder) = start(backend, &receiver, &["127.0.0.1:1", "example.com"]);
        app.create_user("ada");
        assert_eq!(users(&app), 1, "the operation itself commits");
        wait_until("two refused attempts", || failed_attempts(&app) >= 2);
        let host = host_of(&receiver);
        let why = format!(
            "outbound HTTP to {host} is not granted: list it in [plugins.courier.sandbox] hosts"
        );
        let errors = app.db.column(
            "SELECT last_error FROM outbox_deliveries WHERE plugin = 'courier'",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains(&why), "{errors:?}");
        assert_eq!(delivered(&app), 0);
        assert_eq!(receiver.received().len(), 0, "nothing reached the receiver");
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed")]
    fn an_in_transaction_hook_is_refused_and_its_operation_rolls_back(backend) {
        let receiver = Receiver::start();
        let (app, _folder) = start(backend, &receiver, &[&host_of(&receiver)]);
        let body = json!({"username": "inside-eve", "email": "eve@example.org"});
        let refused = expect_error(403, "forbidden", app.post("/api/users", ADMIN, body));
        let message = refused["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("outbound HTTP is allowed only in an after-commit hook")
                && message.contains("`on_user_created` runs inside the operation's transaction"),
            "{refused}"
        );
        assert_eq!(users(&app), 0, "the creation rolled back");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox_events"), 0);
        // The next user is delivered, alone: nothing of eve was recorded.
        app.create_user("ada");
        wait_until("ada's delivery", || delivered(&app) == 1);
        let got = receiver.received();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].json["username"], "ada");
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed")]
    fn a_hanging_receiver_meets_the_time_limit_and_the_delivery_is_retried(backend) {
        let receiver = Receiver::failing_first(1, Answer::Hang);
        let (app, _folder) = start(backend, &receiver, &[&host_of(&receiver)]);
        app.create_user("ada");
        wait_until("the delivery", || delivered(&app) == 1);
        assert_eq!(deliveries(&app), ["delivered:2"]);
        let got = receiver.received();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].key, got[1].key);
        assert_eq!((got[0].attempt.as_str(), got[1].attempt.as_str()), ("1", "2"));
        let output = app.proc.output.text();
        let host = host_of(&receiver);
        assert!(
            output.contains(&format!("no answer from {host} within the plugin's time limit"))
                || output.contains("time limit of 300 ms"),
            "{output}"
        );
        // The process lives and serves.
        app.create_user("bob");
        wait_until("bob's delivery", || delivered(&app) == 2);
        assert_eq!(receiver.received().len(), 3);
    }
}
