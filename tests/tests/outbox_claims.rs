//! README "After-commit hooks: talking to the world", at edges the other
//! delivery tests leave alone: a time limit just under the lease, the
//! global `ordered` with a plugin's own `false`, a plugin hung on an
//! attempt beside one that is not, the retention with a dead and a parked
//! event outliving it, `kill -9` with a backlog or with a retry in flight,
//! the app's own time limit counted as attempts, and `app deliveries retry`
//! while no app runs. Each test runs on SQLite and PostgreSQL; the
//! `webhooks` plugin posts to a local receiver, and the `after` test plugin
//! (`TEST_AFTER_COMMIT=1`: it panics on the first two attempts for users
//! named `after-panic-*`) is a second party.

use std::collections::BTreeSet;
use std::sync::Arc;

use e2e_tests::after_commit::AFTER_COMMIT_ENV;
use e2e_tests::receiver::{Answer, Received, Receiver};
use e2e_tests::*;
use serde_json::Value;

const SECRET: &str = "outbox-claims-secret";

/// Options for test-app with webhooks posting to `receiver` and the `after`
/// test plugin; `deliveries` goes into `[deliveries]` (after the fast
/// defaults every test starts from), then any table.
fn options(db: &TestDb, receiver: &Receiver, deliveries: &str) -> Options {
    let config = format!(
        "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_ms = 9000\n\n\
         [deliveries]\nbackoff_ms = 50\npoll_ms = 100\nlease_ms = 10000\ntimeout_ms = 6000\n{deliveries}\n",
        receiver.url
    );
    Options::default()
        .config(&config)
        .env("APP_PLUGINS_DIR", webhooks_folder(db).to_str().unwrap())
        .env(AFTER_COMMIT_ENV, "1")
}

/// Starts test-app as [`options`] says on a fresh database.
fn start(backend: Backend, receiver: &Receiver, deliveries: &str) -> TestApp {
    let db = Arc::new(TestDb::create(backend));
    let options = options(&db, receiver, deliveries);
    TestApp::start_on(db, &options)
}

/// The `X-Attempt` headers of the requests received.
fn attempts(got: &[Received]) -> Vec<String> {
    got.iter().map(|r| r.attempt.clone()).collect()
}

/// `plugin`'s delivered events, as the usernames they created, in the
/// order they were settled (`done_ms`, then the row).
fn settled_order(db: &TestDb, plugin: &str) -> Vec<String> {
    let keys = db.column(&format!(
        "SELECT e.event_key FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id \
         WHERE d.plugin = '{plugin}' AND d.status = 'delivered' ORDER BY d.done_ms, d.id"
    ));
    keys.iter()
        .map(|key| {
            let change = db.column(&format!(
                "SELECT change FROM outbox_events WHERE event_key = '{key}'"
            ));
            let change: Value = serde_json::from_str(&change[0]).expect("a change");
            find_username(&change).unwrap_or_else(|| panic!("no username in {change}"))
        })
        .collect()
}

/// The first `username` anywhere in `value`.
fn find_username(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| map.values().find_map(find_username)),
        Value::Array(items) => items.iter().find_map(find_username),
        _ => None,
    }
}

/// `done_ms` of `plugin`'s delivery of user `name`'s creation.
fn done_ms(db: &TestDb, plugin: &str, name: &str) -> i64 {
    let key = key_of_user(db, name);
    db.count(&format!(
        "SELECT d.done_ms FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id \
         WHERE d.plugin = '{plugin}' AND e.event_key = '{key}'"
    ))
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(since.expect("after 1970").as_millis()).expect("in range")
}

/// Kills the app with SIGKILL and waits for it to be gone.
fn kill_9(mut app: TestApp) -> Arc<TestDb> {
    app.proc.signal("KILL");
    let status = app.proc.wait_exit();
    assert!(!status.success(), "killed: {status:?}");
    app.db.clone()
}

e2e! {
    /// README: "`lease_ms = 60000` # a claim's lifetime", "`timeout_ms =
    /// 10000` # one attempt's time limit"; a lease not longer than the
    /// time limit stops startup (deliveries.rs), so a lease longer than it
    /// is a configuration the app accepts; "On SQLite, the one process
    /// delivers (one task per plugin, no lease)"; every committed event is
    /// delivered "at least once". With `lease_ms = 1000` and webhooks'
    /// `timeout_ms = 999` the app starts, and the event must be delivered,
    /// once, to a receiver that answers at once.
    fn a_time_limit_just_under_the_lease_is_accepted_and_delivers(backend) {
        let receiver = Receiver::start();
        let db = Arc::new(TestDb::create(backend));
        let config = format!(
            "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_ms = 500\n\n\
             [deliveries]\nbackoff_ms = 50\npoll_ms = 100\nlease_ms = 1000\n\
             [deliveries.webhooks]\ntimeout_ms = 999\n",
            receiver.url
        );
        let options = Options::default()
            .config(&config)
            .env("APP_PLUGINS_DIR", webhooks_folder(&db).to_str().unwrap());
        let app = TestApp::start_on(db, &options);
        app.create_user("ada");
        let start = std::time::Instant::now();
        while delivered(&app.db, "webhooks") < 1 {
            assert!(
                start.elapsed() < DEADLINE,
                "not delivered within {DEADLINE:?}: {} requests received, deliveries {:?}",
                receiver.received().len(),
                deliveries(&app.db, "webhooks")
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert_eq!(received_names(&receiver.received()), ["ada"]);
        assert_eq!(deliveries(&app.db, "webhooks"), ["delivered:1"]);
    }

    /// README: "A plugin for which order matters more than throughput sets
    /// `ordered = true`"; config: "`ordered = false` # true: one event at a
    /// time, in commit order; a failed one holds back the rest" in
    /// `[deliveries]`, and "`[deliveries.webhooks]` # per plugin: ...,
    /// ordered"; "Either way, one plugin's failures never hold back another
    /// plugin". `[deliveries] ordered = true` with `[deliveries.webhooks]
    /// ordered = false`: `after` (on the default) holds its later events
    /// behind its panicking one until it is delivered (third attempt);
    /// webhooks (its own `false`) delivers its later events while its
    /// failed one is parked, which comes last.
    fn the_global_ordered_applies_to_each_plugin_and_a_plugins_own_false_wins(backend) {
        let receiver = Receiver::failing_first(1, Answer::Status(503));
        let app = start(
            backend,
            &receiver,
            "ordered = true\n[deliveries.after]\nbackoff_ms = 1000\n[deliveries.webhooks]\nordered = false\nbackoff_ms = 4000",
        );
        app.create_user("after-panic-1");
        receiver.wait_for(1);
        wait_until("after's first attempt parked", || {
            deliveries(&app.db, "after") == ["pending:1"]
        });
        app.create_user("calm-1");
        app.create_user("calm-2");
        let committed_ms = now_ms();
        wait_until("all three delivered to both", || {
            delivered(&app.db, "after") == 3 && delivered(&app.db, "webhooks") == 3
        });
        // webhooks: the later ones overtook its parked event.
        let got = receiver.received();
        assert_eq!(got.len(), 4, "{:?}", received_names(&got));
        let got_names = received_names(&got);
        assert_eq!(got_names[0], "after-panic-1");
        assert_eq!(got_names[3], "after-panic-1", "{got_names:?}");
        let middle: BTreeSet<&str> = got_names[1..3].iter().map(String::as_str).collect();
        assert_eq!(middle, BTreeSet::from(["calm-1", "calm-2"]));
        assert_eq!(attempts(&got[3..]), ["2"]);
        assert!(
            done_ms(&app.db, "webhooks", "after-panic-1") > done_ms(&app.db, "webhooks", "calm-2"),
            "webhooks' parked event settled before its later ones"
        );
        // after: one at a time, in commit order, the panicking one first.
        assert_eq!(settled_order(&app.db, "after"), ["after-panic-1", "calm-1", "calm-2"]);
        assert!(
            done_ms(&app.db, "after", "after-panic-1") > committed_ms,
            "after's failed event was delivered before the later ones were committed: the test proves nothing"
        );
        assert!(
            done_ms(&app.db, "after", "after-panic-1") <= done_ms(&app.db, "after", "calm-1"),
            "after's later event delivered before its failed one"
        );
        let mut rows = deliveries(&app.db, "after");
        rows.sort();
        assert_eq!(rows, ["delivered:1", "delivered:1", "delivered:3"]);
        let seen = app.db.column(
            "SELECT attempt || ':' || username FROM plugin_after_seen ORDER BY username",
        );
        assert_eq!(seen, ["3:after-panic-1", "1:calm-1", "1:calm-2"]);
    }

    /// README: "one plugin's failures never hold back another plugin"; a
    /// failed attempt is one that errs, panics "or overrun[s]
    /// `timeout_ms`". Webhooks' first attempt hangs (to its 4 s limit):
    /// meanwhile `after` gets that event and two later ones, while
    /// webhooks, ordered, has recorded nothing yet (its batch is still
    /// running); then webhooks gets all three, the hung one again first.
    fn a_plugin_hung_on_an_attempt_holds_back_no_other_plugin(backend) {
        let receiver = Receiver::failing_first(1, Answer::Hang);
        let app = start(backend, &receiver, "[deliveries.webhooks]\nordered = true\ntimeout_ms = 4000");
        app.create_user("u1");
        receiver.wait_for(1);
        // `after` makes its table on first use: once, before its deliveries
        // run at once (concurrent CREATE TABLE IF NOT EXISTS collide on
        // PostgreSQL).
        wait_until("after delivered u1", || delivered(&app.db, "after") == 1);
        app.create_user("u2");
        app.create_user("u3");
        wait_until("after got all three", || delivered(&app.db, "after") == 3);
        assert_eq!(
            deliveries(&app.db, "webhooks"),
            Vec::<String>::new(),
            "webhooks' hung attempt was already over: the test proves nothing"
        );
        assert_eq!(receiver.received().len(), 1);
        wait_until("webhooks got all three", || delivered(&app.db, "webhooks") == 3);
        let got = receiver.received();
        assert_eq!(received_names(&got), ["u1", "u1", "u2", "u3"]);
        assert_eq!(attempts(&got), ["1", "2", "1", "1"]);
        assert_eq!(got[0].key, got[1].key);
        let mut rows = deliveries(&app.db, "webhooks");
        rows.sort();
        assert_eq!(rows, ["delivered:1", "delivered:1", "delivered:2"]);
        let error = app.proc.output.text();
        assert!(error.contains("the hook overran its time limit of 4s"), "{error}");
    }

    /// README: "Delivered ones are pruned after `retention_s`, and so are
    /// events every plugin's cursor has passed and that have nothing left
    /// to retry"; "then it is dead until an admin retries it"; "a retry by
    /// hand gives it a fresh round of `max_attempts`: its attempts count
    /// from 1 again ... under the same event id". With `retention_s = 1`:
    /// an event dead for webhooks and parked for `after` (a 10 min
    /// backoff) outlives the retention (a later event, delivered to both,
    /// is pruned meanwhile); retried by hand, it reaches the receiver with
    /// the same id and body, `X-Attempt: 1`; made due, `after` gets it too;
    /// then the log is empty.
    fn a_dead_and_a_parked_event_outlive_the_retention_and_are_delivered_after_it(backend) {
        let receiver = Receiver::failing_first(1, Answer::Status(503));
        let app = start(
            backend,
            &receiver,
            "retention_s = 1\nmax_attempts = 1\n[deliveries.after]\nmax_attempts = 3\nbackoff_ms = 600000\nmax_backoff_ms = 600000",
        );
        app.create_user("after-panic-old");
        wait_until("old dead for webhooks and parked for after", || {
            deliveries(&app.db, "webhooks") == ["dead:1"] && deliveries(&app.db, "after") == ["pending:1"]
        });
        let old = key_of_user(&app.db, "after-panic-old");
        app.create_user("new");
        let new = key_of_user(&app.db, "new");
        // The retention passed: the new event, delivered to both, is gone.
        wait_until("the new event pruned", || {
            app.db.count(&format!("SELECT COUNT(*) FROM outbox_events WHERE event_key = '{new}'")) == 0
        });
        assert_eq!(app.db.column("SELECT event_key FROM outbox_events"), [old.as_str()]);
        assert_eq!(deliveries(&app.db, "webhooks"), ["dead:1"]);
        assert_eq!(deliveries(&app.db, "after"), ["pending:1"]);
        assert_eq!(listed(&app, "")["total"], 2);
        let first = receiver.received();
        assert_eq!(received_names(&first), ["after-panic-old", "new"]);

        // The dead one, retried by hand: same id, same body, a fresh round.
        let dead = listed_rows(&listed(&app, "status=dead"));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["event_id"], old.as_str());
        let retried = expect(200, app.post(&format!("/api/admin/deliveries/{}/retry", dead[0]["id"]), ADMIN, json!({})));
        assert_eq!(retried["status"], "pending");
        wait_until("the retried one delivered", || count_status(&app.db, "webhooks", "delivered") == 1);
        let got = receiver.received();
        assert_eq!(got.len(), 3, "{:?}", received_names(&got));
        assert_eq!(got[2].key, old);
        assert_eq!(got[2].body, first[0].body, "the body sent again as it was");
        assert_eq!(got[2].attempt, "1");
        assert_eq!(deliveries(&app.db, "webhooks"), ["delivered:1"]);

        // The parked one, made due (twice: `after` panics on attempt 2).
        for (attempt, expected) in [(2, "pending:2"), (3, "delivered:3")] {
            app.db.column(
                "UPDATE outbox_deliveries SET next_attempt_ms = 0 WHERE plugin = 'after' \
                 AND status = 'pending' RETURNING id",
            );
            wait_until(&format!("after's attempt {attempt}"), || deliveries(&app.db, "after") == [expected]);
        }
        let seen = app.db.column("SELECT attempt || ':' || username || ':' || event_key FROM plugin_after_seen WHERE username = 'after-panic-old'");
        assert_eq!(seen, [format!("3:after-panic-old:{old}")]);
        wait_until("the log empty", || {
            app.db.count("SELECT COUNT(*) FROM outbox_events") == 0
                && app.db.count("SELECT COUNT(*) FROM outbox_deliveries") == 0
        });
        assert_eq!(receiver.received().len(), 3);
    }

    /// README: "a committed one is delivered even if the process is killed
    /// right after the commit"; "at least once per event, each time with
    /// the same `delivery.event_id`"; each plugin "keeps its own position"
    /// and "moves the cursor past each batch in one write". Webhooks
    /// (`concurrency = 1`) hangs on a first event while ten more are
    /// committed; `after` has delivered all eleven; the app is killed with
    /// SIGKILL. After the restart webhooks gets the hung one again and the
    /// ten, each once, in commit order, attempt 1; `after`, whose cursor
    /// was past them, gets none again.
    fn a_backlog_behind_a_hung_attempt_survives_kill_9_each_event_delivered_once_more(backend) {
        let receiver = Receiver::failing_first(1, Answer::Hang);
        let db = Arc::new(TestDb::create(backend));
        let options = options(&db, &receiver, "[deliveries.webhooks]\nconcurrency = 1\ntimeout_ms = 9500");
        let app = TestApp::start_on(db.clone(), &options);
        app.create_user("gate");
        receiver.wait_for(1);
        // `after` makes its table on first use: once, before its deliveries
        // run at once (concurrent CREATE TABLE IF NOT EXISTS collide on
        // PostgreSQL).
        wait_until("after delivered the gate", || delivered(&db, "after") == 1);
        let users: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
        for name in &users {
            app.create_user(name);
        }
        wait_until("after delivered all eleven", || delivered(&db, "after") == 11);
        assert_eq!(receiver.received().len(), 1);
        let db = kill_9(app);
        assert_eq!(deliveries(&db, "webhooks"), Vec::<String>::new(), "nothing recorded for webhooks");
        assert_eq!(db.count("SELECT COUNT(*) FROM outbox_events"), 11);

        let again = TestApp::start_on(db.clone(), &options);
        wait_until("webhooks delivered all eleven", || delivered(&db, "webhooks") == 11);
        let got = receiver.received();
        let mut expected = vec!["gate".to_owned(), "gate".to_owned()];
        expected.extend(users.iter().cloned());
        assert_eq!(received_names(&got), expected);
        assert_eq!(got[0].key, got[1].key);
        assert!(got.iter().all(|r| r.attempt == "1"), "{:?}", attempts(&got));
        let keys: Vec<String> = got[1..].iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys, delivery_order(&db), "commit order");
        assert_eq!(deliveries(&db, "webhooks"), vec!["delivered:1"; 11]);
        // `after` got each event exactly once, before and after the kill.
        again.create_user("last");
        wait_until("last delivered to both", || {
            delivered(&db, "after") == 12 && delivered(&db, "webhooks") == 12
        });
        assert_eq!(db.count("SELECT COUNT(*) FROM plugin_after_seen"), 12);
        assert_eq!(db.count("SELECT COUNT(DISTINCT event_key) FROM plugin_after_seen"), 12);
        assert_eq!(deliveries(&db, "after"), vec!["delivered:1"; 12]);
        assert_eq!(receiver.received().len(), 13);
        // Each plugin was given the same event ids: the log's.
        let given: BTreeSet<String> = db.column("SELECT event_key FROM plugin_after_seen").into_iter().collect();
        let posted: BTreeSet<String> = receiver.received().into_iter().map(|r| r.key).collect();
        let logged: BTreeSet<String> = db.column("SELECT event_key FROM outbox_events").into_iter().collect();
        assert_eq!(given, logged);
        assert_eq!(posted, logged);
    }

    /// README: a failed attempt "is retried after `backoff_ms` ... up to
    /// `max_attempts`"; only "a retry by hand gives it a fresh round of
    /// `max_attempts`: its attempts count from 1 again"; "at least once ...
    /// with the same `delivery.event_id`". Two failed attempts recorded,
    /// the third in flight when the app is killed with SIGKILL: after the
    /// restart the event is sent again as attempt 3 (the lost one was
    /// never recorded, and a crash is no hand retry), then delivered.
    fn a_retry_in_flight_at_kill_9_is_sent_again_as_the_same_attempt(backend) {
        let receiver = Receiver::scripted(|n| match n {
            0 | 1 => Answer::Status(503),
            2 => Answer::Hang,
            _ => Answer::Status(200),
        });
        let db = Arc::new(TestDb::create(backend));
        let options = options(&db, &receiver, "");
        let app = TestApp::start_on(db.clone(), &options);
        app.create_user("ada");
        receiver.wait_for(3);
        let db = kill_9(app);
        assert_eq!(deliveries(&db, "webhooks"), ["pending:2"]);
        let _again = TestApp::start_on(db.clone(), &options);
        wait_until("delivered after the restart", || delivered(&db, "webhooks") == 1);
        let got = receiver.received();
        assert_eq!(attempts(&got), ["1", "2", "3", "3"]);
        let keys: BTreeSet<&str> = got.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, BTreeSet::from([key_of_user(&db, "ada").as_str()]));
        assert_eq!(deliveries(&db, "webhooks"), ["delivered:3"]);
    }

    /// README: "A failed attempt (error, panic, or overrunning
    /// `timeout_ms`) parks the event ... up to `max_attempts`, then it is
    /// dead"; "the reason is the delivery's `last_error`". The app's own
    /// limit (`[deliveries.webhooks] timeout_ms = 300`, shorter than the
    /// plugin's 5 s) cuts each attempt: two attempts, `X-Attempt` 1 and 2,
    /// then dead with the limit as its reason, and never sent again while
    /// a later event is delivered.
    fn attempts_cut_by_the_apps_time_limit_count_up_to_max_attempts(backend) {
        let receiver = Receiver::failing_first(2, Answer::Hang);
        let app = start(backend, &receiver, "max_attempts = 2\n[deliveries.webhooks]\ntimeout_ms = 300");
        app.create_user("slow");
        wait_until("dead", || count_status(&app.db, "webhooks", "dead") == 1);
        let got = receiver.received();
        assert_eq!(received_names(&got), ["slow", "slow"]);
        assert_eq!(attempts(&got), ["1", "2"]);
        let dead = listed_rows(&listed(&app, "status=dead"));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["attempts"], 2, "{}", dead[0]);
        let why = dead[0]["last_error"].as_str().unwrap_or_default();
        assert!(why.contains("overran its time limit of 300ms"), "{}", dead[0]);
        app.create_user("quick");
        wait_until("quick delivered", || delivered(&app.db, "webhooks") == 1);
        assert_eq!(received_names(&receiver.received()), ["slow", "slow", "quick"]);
        assert_eq!(deliveries(&app.db, "webhooks"), ["dead:2", "delivered:1"]);
    }

    /// README: "`app deliveries retry ID`"; "a retry by hand gives it a
    /// fresh round ... (`delivery.attempt`, and the webhooks plugin's
    /// `X-Attempt`), under the same event id". A dead delivery retried from
    /// the command line while no app runs is delivered by the next start,
    /// as attempt 1; the CLI's bad arguments (no subcommand, no id, an id
    /// that is no number) fail and change nothing.
    fn a_dead_delivery_retried_by_the_cli_while_the_app_is_down_is_delivered_at_the_next_start(backend) {
        let receiver = Receiver::failing_first(2, Answer::Status(503));
        let db = Arc::new(TestDb::create(backend));
        let options = options(&db, &receiver, "max_attempts = 2");
        let app = TestApp::start_on(db.clone(), &options);
        app.create_user("bob");
        wait_until("dead", || count_status(&db, "webhooks", "dead") == 1);
        drop(app);
        let id = db.column("SELECT id FROM outbox_deliveries WHERE plugin = 'webhooks'");
        assert_eq!(id.len(), 1);
        let cli = |args: &[&str]| run_to_exit(&db, &Options::default().args(args));
        for bad in [
            vec!["deliveries"],
            vec!["deliveries", "retry"],
            vec!["deliveries", "retry", "abc"],
            vec!["deliveries", "retry", id[0].as_str(), "extra"],
        ] {
            let (status, out) = cli(&bad);
            assert!(!status.success(), "{bad:?}: {out}");
            assert!(!out.contains("listening on"), "{bad:?}: {out}");
        }
        assert_eq!(deliveries(&db, "webhooks"), ["dead:2"]);
        let (status, out) = cli(&["deliveries", "retry", &id[0]]);
        assert!(status.success(), "{out}");
        assert!(out.contains(&format!("delivery {} is pending again", id[0])), "{out}");
        assert_eq!(deliveries(&db, "webhooks"), ["pending:0"]);
        let (status, out) = cli(&["deliveries", "list", "--status", "pending"]);
        assert!(status.success(), "{out}");
        assert!(out.lines().any(|l| l == "1 of 1"), "{out}");
        let _again = TestApp::start_on(db.clone(), &options);
        wait_until("delivered at the next start", || delivered(&db, "webhooks") == 1);
        let got = receiver.received();
        assert_eq!(received_names(&got), ["bob", "bob", "bob"]);
        assert_eq!(attempts(&got), ["1", "2", "1"]);
        assert!(got.iter().all(|r| r.key == got[0].key));
        assert_eq!(deliveries(&db, "webhooks"), ["delivered:1"]);
    }
}

e2e! {
    /// README: "The events of a batch are started in commit order,
    /// `concurrency` (8) of them at once"; config "`concurrency = 8` # a
    /// batch's events attempted at once per plugin (started in commit
    /// order)". On the default: while webhooks hangs on a first event, ten
    /// are committed; then the first eight of them in commit order are in
    /// flight at once (each hanging to its 1.5 s limit), and the ninth and
    /// tenth start only once one of those ended.
    fn the_default_concurrency_is_eight_started_in_commit_order(backend) {
        let receiver = Receiver::failing_first(9, Answer::Hang);
        let app = start(backend, &receiver, "[deliveries.webhooks]\ntimeout_ms = 1500\nbackoff_ms = 600000");
        app.create_user("gate");
        receiver.wait_for(1);
        // `after` makes its table on first use: once, before its deliveries
        // run at once (concurrent CREATE TABLE IF NOT EXISTS collide on
        // PostgreSQL).
        wait_until("after delivered the gate", || delivered(&app.db, "after") == 1);
        let users: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
        for name in &users {
            app.create_user(name);
        }
        let got = receiver.wait_for(11);
        let first: BTreeSet<String> = received_names(&got[1..9]).into_iter().collect();
        let expected: BTreeSet<String> = users[..8].iter().cloned().collect();
        assert_eq!(first, expected, "the first eight in commit order");
        let spread = got[8].at - got[1].at;
        assert!(spread < std::time::Duration::from_millis(1000), "the eight not at once: {spread:?}");
        let last: BTreeSet<String> = received_names(&got[9..]).into_iter().collect();
        assert_eq!(last, users[8..].iter().cloned().collect::<BTreeSet<String>>());
        let waited = got[9].at - got[1].at;
        assert!(
            waited >= std::time::Duration::from_millis(1300),
            "a ninth in flight {waited:?} after the first of eight"
        );
        wait_until("all eleven settled", || deliveries(&app.db, "webhooks").len() == 11);
        let mut rows = deliveries(&app.db, "webhooks");
        rows.sort();
        let mut expected_rows = vec!["delivered:1".to_owned(); 2];
        expected_rows.extend(vec!["pending:1".to_owned(); 9]);
        assert_eq!(rows, expected_rows);
        assert_eq!(receiver.received().len(), 11);
    }
}

/// PostgreSQL, README: "an event waits for every transaction of the app's
/// database that began writing before it committed (a longer one could
/// still commit an earlier event)"; "a long transaction holds every plugin
/// back for as long as it runs, never longer". While webhooks hangs on a
/// first event, `early` commits; then a writing transaction of the app's
/// database begins (after `early` committed) and stays open; then `late`
/// commits (a transaction that only reads, open across the first two
/// commits, held nothing back). Once webhooks is free it gets `early` (that transaction began
/// after it) but neither webhooks nor `after` gets `late` (it began
/// before) until the transaction ends; then both get it.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn a_transaction_begun_after_an_event_committed_holds_back_only_later_events() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let receiver = Receiver::failing_first(1, Answer::Hang);
    let app = start(
        backend,
        &receiver,
        "[deliveries.webhooks]\nconcurrency = 1\ntimeout_ms = 1500\nbackoff_ms = 600000",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // A transaction that only reads ("began writing" never) holds nothing.
    let mut reading = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&app.db.url)
            .await
            .expect("connecting");
        sqlx::raw_sql("BEGIN; SELECT COUNT(*) FROM users")
            .execute(&mut conn)
            .await
            .expect("a reading transaction");
        conn
    });
    app.create_user("gate");
    receiver.wait_for(1);
    wait_until("after delivered the gate", || {
        delivered(&app.db, "after") == 1
    });
    app.create_user("early");
    wait_until("early delivered to after", || {
        delivered(&app.db, "after") == 2
    });
    runtime.block_on(async {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut reading)
            .await
            .expect("ROLLBACK");
    });
    let mut open = runtime.block_on(open_transaction(&app.db.url));
    app.create_user("late");
    let early = key_of_user(&app.db, "early");
    let late = key_of_user(&app.db, "late");
    let delivered_to = |plugin: &str, key: &str| {
        app.db.count(&format!(
            "SELECT COUNT(*) FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id \
             WHERE d.plugin = '{plugin}' AND e.event_key = '{key}' AND d.status = 'delivered'"
        ))
    };
    wait_until(
        "early delivered to webhooks beside the open transaction",
        || delivered_to("webhooks", &early) == 1,
    );
    // Had `late` been claimed with `early` (one batch), it would be settled
    // with it; `after`, which waits on nothing else, would have had it
    // within milliseconds, and it is seconds later.
    assert_eq!(
        delivered_to("webhooks", &late),
        0,
        "late overtook the open transaction"
    );
    assert_eq!(
        delivered_to("after", &late),
        0,
        "late overtook the open transaction"
    );
    assert_eq!(received_names(&receiver.received()), ["gate", "early"]);
    runtime.block_on(async {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut open)
            .await
            .expect("ROLLBACK");
    });
    wait_until("late delivered to both", || {
        delivered_to("webhooks", &late) == 1 && delivered_to("after", &late) == 1
    });
    assert_eq!(
        received_names(&receiver.received()),
        ["gate", "early", "late"]
    );
    assert_eq!(
        deliveries(&app.db, "webhooks"),
        ["pending:1", "delivered:1", "delivered:1"]
    );
}

/// PostgreSQL, README: "The request pipeline wakes the workers after each
/// commit; other instances' events are found within `poll_ms`"; config
/// "`poll_ms = 1000` # look for other instances' events this often". An
/// instance running webhooks with `poll_ms = 1500` gets the events another
/// instance (without webhooks) commits, each within its poll (plus the
/// time a delivery takes), and its own at once.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn another_instances_events_are_found_within_poll_ms() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let db = Arc::new(TestDb::create(backend));
    let receiver = Receiver::start();
    let config = format!(
        "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\n\
         [deliveries]\nbackoff_ms = 50\npoll_ms = 1500\n",
        receiver.url
    );
    let with = Options::default()
        .config(&config)
        .env("APP_PLUGINS_DIR", webhooks_folder(&db).to_str().unwrap());
    let a = TestApp::start_on(db.clone(), &with);
    let empty = db.dir.path().join("no-plugins");
    std::fs::create_dir_all(&empty).expect("an empty plugin folder");
    let without = Options::default()
        .config("[deliveries]\nbackoff_ms = 50\npoll_ms = 100\n")
        .env("APP_PLUGINS_DIR", empty.to_str().unwrap())
        .env(AFTER_COMMIT_ENV, "1");
    let b = TestApp::start_on(db.clone(), &without);
    assert!(
        !expect(200, b.get("/api/admin/plugins", ADMIN))
            .to_string()
            .contains("\"webhooks\""),
        "b must not run webhooks"
    );
    for i in 0..3 {
        let name = format!("from-b-{i}");
        let start = std::time::Instant::now();
        b.create_user(&name);
        receiver.wait_for(i + 1);
        let took = receiver.received()[i].at - start;
        assert!(
            took <= std::time::Duration::from_millis(1500 + 1000),
            "{name} found after {took:?}, beyond poll_ms = 1500"
        );
    }
    let start = std::time::Instant::now();
    a.create_user("from-a");
    let got = receiver.wait_for(4);
    let took = got[3].at - start;
    assert!(
        took < std::time::Duration::from_millis(1000),
        "a's own commit waited {took:?}, as if not woken"
    );
    assert_eq!(
        received_names(&got),
        ["from-b-0", "from-b-1", "from-b-2", "from-a"]
    );
    wait_until("four delivered", || delivered(&db, "webhooks") == 4);
    assert_eq!(deliveries(&db, "webhooks"), vec!["delivered:1"; 4]);
}

e2e! {
    /// README: "A plugin that no instance has loaded for longer than
    /// `retention_s` loses its cursor (so it no longer holds the log back);
    /// if it comes back, it starts at the head, as a new plugin does";
    /// "Delivered ones are pruned ..., and so are events every plugin's
    /// cursor has passed and that have nothing left to retry"; the list
    /// shows "`pending` (parked, waiting for its retry)". Webhooks' first
    /// event is parked (a 10 min backoff) when webhooks goes away past a
    /// 1 s retention: its cursor goes, the event committed meanwhile is
    /// pruned once `after` has it, but the parked one (something left to
    /// retry) stays, listed pending. Back, due, webhooks gets the parked
    /// one (at least once, same id, attempt 2) and what follows, never the
    /// event of its absence.
    fn a_parked_event_outlives_its_plugins_lost_cursor_and_is_retried_when_it_is_back(backend) {
        let receiver = Receiver::failing_first(1, Answer::Status(503));
        let db = Arc::new(TestDb::create(backend));
        let with = options(
            &db,
            &receiver,
            "retention_s = 1\n[deliveries.webhooks]\nbackoff_ms = 600000\nmax_backoff_ms = 600000",
        );
        let first = TestApp::start_on(db.clone(), &with);
        first.create_user("old");
        wait_until("old parked", || deliveries(&db, "webhooks") == ["pending:1"]);
        let old = key_of_user(&db, "old");
        drop(first);
        let empty = db.dir.path().join("no-plugins");
        std::fs::create_dir_all(&empty).expect("an empty plugin folder");
        let without = Options::default()
            .config("[deliveries]\nbackoff_ms = 50\npoll_ms = 100\nretention_s = 1\n")
            .env("APP_PLUGINS_DIR", empty.to_str().unwrap())
            .env(AFTER_COMMIT_ENV, "1");
        let away = TestApp::start_on(db.clone(), &without);
        away.create_user("missed");
        wait_until("webhooks' cursor forgotten", || {
            db.column("SELECT plugin FROM outbox_cursors ORDER BY plugin") == ["after"]
        });
        wait_until("the log pruned down to the parked event", || {
            db.column("SELECT event_key FROM outbox_events") == [old.as_str()]
        });
        let page = listed(&away, "");
        assert_eq!(page["total"], 1, "{page}");
        let parked = &listed_rows(&page)[0];
        assert_eq!(
            (&parked["plugin"], &parked["status"], &parked["event_id"]),
            (&json!("webhooks"), &json!("pending"), &json!(old)),
            "{page}"
        );
        drop(away);
        // Its retry due now, as ten minutes later.
        db.column("UPDATE outbox_deliveries SET next_attempt_ms = 0 WHERE plugin = 'webhooks' RETURNING id");
        let back = TestApp::start_on(db.clone(), &with);
        wait_until("the parked one retried", || receiver.received().len() == 2);
        back.create_user("new");
        wait_until("new delivered", || receiver.received().len() == 3);
        back.create_user("last");
        wait_until("last delivered", || receiver.received().len() == 4);
        let got = receiver.received();
        assert_eq!(received_names(&got), ["old", "old", "new", "last"]);
        assert_eq!(got[1].key, old);
        assert_eq!(attempts(&got), ["1", "2", "1", "1"]);
    }
}

e2e! {
    /// README: the after-commit hooks run "after the commit, off the
    /// request path", "at least once per event, each time with the same
    /// `delivery.event_id`"; "Ctrl-C (or SIGTERM) stops accepting
    /// connections, lets requests in flight finish and closes the
    /// database". SIGTERM while webhooks' attempt hangs (to a 9 s limit):
    /// the app exits at once, successfully, leaving nothing recorded for
    /// webhooks; the next start sends the event again, same id, attempt 1,
    /// and it is delivered once.
    fn sigterm_during_a_hung_attempt_exits_promptly_and_the_event_is_sent_again(backend) {
        let receiver = Receiver::failing_first(1, Answer::Hang);
        let db = Arc::new(TestDb::create(backend));
        let options = options(&db, &receiver, "[deliveries.webhooks]\ntimeout_ms = 9500");
        let mut app = TestApp::start_on(db.clone(), &options);
        app.create_user("ada");
        receiver.wait_for(1);
        let asked = std::time::Instant::now();
        app.proc.signal("TERM");
        let status = app.proc.wait_exit();
        let took = asked.elapsed();
        assert!(status.success(), "{status:?}: {}", app.proc.output.text());
        assert!(took < std::time::Duration::from_secs(5), "the hung attempt held the exit {took:?}");
        drop(app);
        assert_eq!(deliveries(&db, "webhooks"), Vec::<String>::new());
        let _again = TestApp::start_on(db.clone(), &options);
        wait_until("delivered after the restart", || delivered(&db, "webhooks") == 1);
        let got = receiver.received();
        assert_eq!(received_names(&got), ["ada", "ada"]);
        assert_eq!(got[0].key, got[1].key);
        assert_eq!(attempts(&got), ["1", "1"]);
        assert_eq!(deliveries(&db, "webhooks"), ["delivered:1"]);
        assert_eq!(deliveries(&db, "after"), ["delivered:1"]);
    }
}

e2e! {
    /// README: "The `after_*` hooks are `after_user_created | modified |
    /// deleted`, `after_space_...` and `after_membership_...`, with the
    /// committed entity (`before` and `after` for a modification)"; "The
    /// events are a log in commit order"; `ordered = true` "one event at a
    /// time, in commit order"; "A `PATCH` ... that changes nothing ...
    /// fires no hook"; the list shows "each event a plugin was given". All
    /// nine changes, and a user whose creation makes a space (the `cascade`
    /// test plugin: its hook's change after the user's), reach an ordered
    /// webhooks once each, in commit order, with their entities; a PATCH
    /// that changes nothing sends nothing; `after`, which implements
    /// `after_user_created` alone, is given (and lists) the two creations
    /// of users only.
    fn every_kind_of_change_reaches_webhooks_once_in_commit_order(backend) {
        let receiver = Receiver::start();
        let app = start(backend, &receiver, "[deliveries.webhooks]\nordered = true");
        let ada = app.create_user("ada");
        let user = format!("/api/users/{}", id(&ada));
        expect(200, app.patch(&user, ADMIN, json!({"display_name": "Ada"})));
        expect(200, app.patch(&user, ADMIN, json!({"display_name": "Ada"})));
        let lab = app.create_space("lab", None);
        let space = format!("/api/spaces/{}", id(&lab));
        expect(200, app.patch(&space, ADMIN, json!({"name": "lab2"})));
        let member = format!("{space}/members/{}", id(&ada));
        expect(201, app.put(&member, ADMIN, json!({"role": "reader"})));
        expect(200, app.put(&member, ADMIN, json!({"role": "contributor"})));
        expect(204, app.delete(&member, ADMIN));
        expect(204, app.delete(&space, ADMIN));
        expect(204, app.delete(&user, ADMIN));
        let auto = app.create_user("auto-bo");
        let expected = [
            "user.created", "user.modified", "space.created", "space.modified",
            "membership.created", "membership.modified", "membership.deleted",
            "space.deleted", "user.deleted", "user.created", "space.created",
        ];
        wait_until("eleven delivered", || delivered(&app.db, "webhooks") == 11);
        let got = receiver.received();
        let events: Vec<&str> = got.iter().map(|r| r.json["event"].as_str().unwrap_or("?")).collect();
        assert_eq!(events, expected);
        let keys: Vec<String> = got.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys, delivery_order(&app.db), "commit order");
        let data = |i: usize| got[i].json["data"].clone();
        assert_eq!(data(0)["username"], "ada");
        assert_eq!((&data(1)["before"]["display_name"], &data(1)["after"]["display_name"]), (&json!(null), &json!("Ada")));
        assert_eq!(data(1)["after"]["id"], ada["id"]);
        assert_eq!((&data(3)["before"]["name"], &data(3)["after"]["name"]), (&json!("lab"), &json!("lab2")));
        assert_eq!((&data(4)["role"], &data(4)["user_id"], &data(4)["space_id"]), (&json!("reader"), &ada["id"], &lab["id"]));
        assert_eq!((&data(5)["before"]["role"], &data(5)["after"]["role"]), (&json!("reader"), &json!("contributor")));
        assert_eq!(data(6)["role"], "contributor");
        assert_eq!(data(7)["name"], "lab2");
        assert_eq!(data(8)["display_name"], "Ada");
        assert_eq!(data(9), auto);
        assert_eq!(data(10)["name"], "home of auto-bo");
        assert_eq!(deliveries(&app.db, "webhooks"), vec!["delivered:1"; 11]);
        wait_until("after's two", || delivered(&app.db, "after") == 2);
        let given: Vec<Value> = listed_rows(&listed(&app, "limit=500"))
            .into_iter()
            .filter(|d| d["plugin"] == "after")
            .collect();
        assert_eq!(given.len(), 2, "{given:?}");
        assert!(given.iter().all(|d| d["event"] == "user.created"), "{given:?}");
        assert_eq!(listed(&app, "")["total"], 13);
        assert_eq!(receiver.received().len(), 11);
    }
}

/// The probe component (tests/components/probe) as the component crate
/// `app_plugin_<name>` in `folder` (a name of its own per test: the
/// builds share a target folder), with its `after_user_created` or
/// without: its source with and without the hook, and its folder.
fn late_probe(
    folder: &std::path::Path,
    name: &str,
    with_hook: bool,
) -> (String, String, std::path::PathBuf) {
    let probe = workspace().join("tests/components/probe");
    let source = std::fs::read_to_string(probe.join("src/lib.rs")).unwrap();
    let relative = "\"../../../hookspecs/wit\"";
    assert!(source.contains(relative), "the probe's WIT path moved");
    let wit = format!(
        "{:?}",
        workspace().join("hookspecs/wit").display().to_string()
    );
    let with_after = source.replace(relative, &wit);
    let after_decl = "decl(Hook::AfterUserCreated),";
    assert!(
        with_after.contains(after_decl),
        "the probe's manifest changed"
    );
    let without_after = with_after.replace(after_decl, "");
    let dir = folder.join(format!("app_plugin_{name}"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = std::fs::read_to_string(probe.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"app_plugin_probe\""));
    let manifest = manifest.replace("app_plugin_probe", &format!("app_plugin_{name}"))
        + "\n[package.metadata.app-plugin]\nkind = \"component\"\n";
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(probe.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let first = if with_hook {
        &with_after
    } else {
        &without_after
    };
    std::fs::write(dir.join("src/lib.rs"), first).unwrap();
    (with_after, without_after, dir)
}

/// The real app on SQLite with `folder` as its plugin folder and `config`,
/// given ten minutes to build the component crates there (and each
/// request as long: a reload builds).
fn real_app_building(folder: &std::path::Path, config: &str) -> TestApp {
    let building = std::time::Duration::from_secs(600);
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.to_str().unwrap())
        .config(config);
    let proc = Proc::spawn(options.command(&db));
    let client = Client::waiting(proc.wait_listening_within(building), building);
    TestApp { proc, client, db }
}

/// The hooks the admin report lists for plugin `name`, as text.
fn hooks_of(app: &TestApp, name: &str) -> String {
    plugin_entry(app, name)["hooks"].to_string()
}

/// README: "each plugin implementing an `after_*` hook keeps its own
/// position in it (a cursor): a worker task per plugin delivers the events
/// after its cursor, at least once"; "A reload is the plugin's own startup"
/// ("Not yet" names only hook wrappers and components added while the app
/// runs). The probe component, built without `after_user_created`, is
/// reloaded as a version that implements it: the admin report lists the
/// hook, and a user created after the reload must reach it (its log line,
/// a delivered delivery), not be recorded and skipped for ever.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_given_an_after_hook_by_a_reload_is_delivered_its_events() {
    let folder = tempfile::tempdir().unwrap();
    const NAME: &str = "late";
    let (with_after, _, dir) = late_probe(folder.path(), NAME, false);
    let app = real_app_building(
        folder.path(),
        "[plugins.late]\ntoken = \"probe-secret\"\n\n[deliveries]\nbackoff_ms = 50\npoll_ms = 100\n",
    );
    assert!(
        !hooks_of(&app, NAME).contains("after_user_created"),
        "{}",
        hooks_of(&app, NAME)
    );
    app.create_user("before");

    std::fs::write(dir.join("src/lib.rs"), &with_after).unwrap();
    let reloaded = expect(
        200,
        app.post("/api/admin/plugins/late/reload", ADMIN, json!({})),
    );
    assert_eq!(reloaded["generation"], 2, "{reloaded}");
    assert!(
        hooks_of(&app, NAME).contains("after_user_created"),
        "{}",
        hooks_of(&app, NAME)
    );
    app.create_user("later");
    let start = std::time::Instant::now();
    let said = "user \"later\" delivered: event";
    while !app.proc.output.text().contains(said) {
        assert!(
            start.elapsed() < DEADLINE,
            "no delivery to the reloaded plugin within {DEADLINE:?}: events recorded {}, \
             deliveries {:?}, cursors {:?}",
            app.db.count("SELECT COUNT(*) FROM outbox_events"),
            deliveries(&app.db, "late"),
            app.db.column("SELECT plugin FROM outbox_cursors")
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    wait_until("the delivery recorded", || delivered(&app.db, "late") == 1);
    assert!(
        !app.proc.output.text().contains("user \"before\" delivered"),
        "an event from before the hook was there"
    );
}

/// README: "A plugin that wants only some events ... the hooks left out are
/// never called, and no delivery is made or listed for their events"; the
/// list shows "each event a plugin was given"; "A reload is the plugin's
/// own startup". The probe component with `after_user_created`, beside
/// webhooks, is reloaded as a version without it: a user created after
/// that reaches webhooks, but the probe is not called for it, and no
/// delivery of it is made or listed for the probe.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_whose_reload_drops_its_after_hook_is_given_and_listed_no_more_events() {
    let folder = tempfile::tempdir().unwrap();
    const NAME: &str = "dropped";
    let (_, without_after, dir) = late_probe(folder.path(), NAME, true);
    put_library(folder.path(), "webhooks");
    let receiver = Receiver::start();
    let config = format!(
        "[plugins.dropped]\ntoken = \"probe-secret\"\n\n[plugins.webhooks]\nurl = \"{}\"\n\n\
         [deliveries]\nbackoff_ms = 50\npoll_ms = 100\n",
        receiver.url
    );
    let app = real_app_building(folder.path(), &config);
    assert_eq!(plugin_status(&app, "webhooks"), "loaded");
    assert!(
        hooks_of(&app, NAME).contains("after_user_created"),
        "{}",
        hooks_of(&app, NAME)
    );
    app.create_user("first");
    app.proc
        .output
        .wait_for("the probe's delivery of first", |out| {
            out.contains("user \"first\" delivered: event")
        });
    wait_until("first delivered to both", || {
        delivered(&app.db, NAME) == 1 && delivered(&app.db, "webhooks") == 1
    });

    std::fs::write(dir.join("src/lib.rs"), &without_after).unwrap();
    let reloaded = expect(
        200,
        app.post("/api/admin/plugins/dropped/reload", ADMIN, json!({})),
    );
    assert_eq!(reloaded["generation"], 2, "{reloaded}");
    assert!(
        !hooks_of(&app, NAME).contains("after_user_created"),
        "{}",
        hooks_of(&app, NAME)
    );
    app.create_user("second");
    let second = key_of_user(&app.db, "second");
    wait_until("second delivered to webhooks", || {
        delivered(&app.db, "webhooks") == 2
    });
    // The probe's worker, woken by the same commit, has had its round by
    // the time `third` (committed after it) is through to webhooks.
    app.create_user("third");
    wait_until("third delivered to webhooks", || {
        delivered(&app.db, "webhooks") == 3
    });
    assert!(
        !app.proc.output.text().contains("user \"second\" delivered"),
        "the probe was called without the hook"
    );
    let listed_own: Vec<Value> = listed_rows(&listed(&app, "limit=500"))
        .into_iter()
        .filter(|d| d["plugin"] == NAME)
        .collect();
    assert_eq!(listed_own.len(), 1, "listed for the probe: {listed_own:?}");
    assert_ne!(listed_own[0]["event_id"], second.as_str());
    assert_eq!(deliveries(&app.db, NAME), ["delivered:1"]);
    assert_eq!(
        received_names(&receiver.received()),
        ["first", "second", "third"]
    );
}

e2e! {
    /// README: "a 2xx answer is delivered, anything else (another status,
    /// no answer, a refused connection, a TLS failure) is retried, and the
    /// reason is the delivery's `last_error`"; "the delivery is retried
    /// with backoff, then dead; the operation stays committed". Webhooks
    /// pointed at a port nothing listens on: two attempts, then dead, each
    /// refused; the reason names the plugin, the hook and the refusal; the
    /// user is there.
    fn a_refused_connection_is_retried_then_dead_with_its_reason(backend) {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
            listener.local_addr().expect("its address").port()
        };
        let url = format!("http://127.0.0.1:{port}/hook");
        let db = Arc::new(TestDb::create(backend));
        let config = format!(
            "[plugins.webhooks]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\n\
             [deliveries]\nbackoff_ms = 50\npoll_ms = 100\nmax_attempts = 2\n"
        );
        let options = Options::default()
            .config(&config)
            .env("APP_PLUGINS_DIR", webhooks_folder(&db).to_str().unwrap());
        let app = TestApp::start_on(db, &options);
        let ada = app.create_user("ada");
        wait_until("dead", || count_status(&app.db, "webhooks", "dead") == 1);
        let dead = listed_rows(&listed(&app, "status=dead"));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["attempts"], 2, "{}", dead[0]);
        let why = dead[0]["last_error"].as_str().unwrap_or_default();
        let prefix = format!("plugin `webhooks` failed in hook `after_user_created`: POST {url} failed: ");
        assert!(why.starts_with(&prefix), "{why}");
        assert!(why.contains("client error (Connect)"), "{why}");
        assert!(why.contains("Connection refused"), "{why}");
        assert_eq!(expect(200, app.get(&format!("/api/users/{}", id(&ada)), ADMIN))["username"], "ada");
        let output = app.proc.output.text();
        assert_eq!(output.matches("delivery failed, retrying").count(), 1, "{output}");
        assert_eq!(output.matches("delivery dead").count(), 1, "{output}");
    }

    /// README: "at least once per event, each time with the same
    /// `delivery.event_id`"; "an event is sent twice only after a real
    /// failure (... an attempt that failed ...)"; "Meanwhile the plugin's
    /// later events go on". Forty users created by four writers at once,
    /// a receiver failing every third request: every event ends delivered,
    /// answered 2xx exactly once, its attempts numbered 1, 2, ... in the
    /// order they arrived, and its row counts exactly the requests it took.
    fn under_writers_and_failures_each_event_is_answered_2xx_exactly_once(backend) {
        let receiver = Receiver::scripted(|n| Answer::Status(if n % 3 == 0 { 503 } else { 200 }));
        let app = start(backend, &receiver, "max_attempts = 10");
        app.create_user("first");
        // `after` makes its table on first use: once, before the writers.
        wait_until("first delivered to after", || delivered(&app.db, "after") == 1);
        std::thread::scope(|s| {
            for t in 0..4 {
                let client = app.client.clone();
                s.spawn(move || {
                    for i in 0..10 {
                        client.create_user(&format!("w{t}x{i}"));
                    }
                });
            }
        });
        wait_until("41 delivered to webhooks", || delivered(&app.db, "webhooks") == 41);
        wait_until("41 delivered to after", || delivered(&app.db, "after") == 41);
        let got = receiver.received();
        let mut by_key: std::collections::BTreeMap<String, Vec<&Received>> = Default::default();
        for r in &got {
            by_key.entry(r.key.clone()).or_default().push(r);
        }
        let logged: BTreeSet<String> = app.db.column("SELECT event_key FROM outbox_events").into_iter().collect();
        assert_eq!(by_key.keys().cloned().collect::<BTreeSet<String>>(), logged);
        assert_eq!(logged.len(), 41);
        for (key, requests) in &by_key {
            let ok = requests.iter().filter(|r| r.answer == Answer::Status(200)).count();
            assert_eq!(ok, 1, "{key}: answered 2xx {ok} times");
            assert_eq!(requests.last().map(|r| r.answer), Some(Answer::Status(200)), "{key}");
            let numbers: Vec<String> = requests.iter().map(|r| r.attempt.clone()).collect();
            let expected: Vec<String> = (1..=requests.len()).map(|n| n.to_string()).collect();
            assert_eq!(numbers, expected, "{key}");
            let row = app.db.column(&format!(
                "SELECT d.status || ':' || d.attempts FROM outbox_deliveries d \
                 JOIN outbox_events e ON e.id = d.event_id \
                 WHERE d.plugin = 'webhooks' AND e.event_key = '{key}'"
            ));
            assert_eq!(row, [format!("delivered:{}", requests.len())], "{key}");
        }
        let failed = got.iter().filter(|r| r.answer == Answer::Status(503)).count();
        assert_eq!(got.len(), 41 + failed);
        assert_eq!(db_count_after_seen(&app.db), 41);
    }
}

/// Rows `after` wrote (one per user creation it was given, kept only for
/// an attempt that succeeded).
fn db_count_after_seen(db: &TestDb) -> i64 {
    db.count("SELECT COUNT(*) FROM plugin_after_seen")
}

/// A CA and a certificate for 127.0.0.1 it signed: (server PEM, key PEM).
fn signed_by_an_unknown_ca() -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "outbox claims' unknown CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (server.pem(), key.serialize_pem())
}

e2e! {
    /// README (webhooks, HTTPS): "A receiver whose certificate chains to
    /// neither fails each attempt, with a `last_error` that names the
    /// plugin and the hook (``plugin `webhooks` failed in hook
    /// `after_user_created`: ``) and goes on `POST <url> failed: the
    /// request to <host>:<port> failed: client error (Connect): invalid
    /// peer certificate: UnknownIssuer (the
    /// server's certificate is not signed by a trusted root: ...)`, and
    /// nothing is delivered." The `last_error` of a receiver behind an
    /// unknown CA, as the README spells it; nothing reached the receiver.
    fn an_unknown_issuer_is_the_last_error_the_readme_spells(backend) {
        let (server, key) = signed_by_an_unknown_ca();
        let receiver = Receiver::tls(&server, &key);
        let db = Arc::new(TestDb::create(backend));
        let config = format!(
            "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\n\
             [deliveries]\nbackoff_ms = 50\npoll_ms = 100\nmax_attempts = 1\n",
            receiver.url
        );
        let options = Options::default()
            .config(&config)
            .env("APP_PLUGINS_DIR", webhooks_folder(&db).to_str().unwrap());
        let app = TestApp::start_on(db, &options);
        app.create_user("ada");
        wait_until("dead", || count_status(&app.db, "webhooks", "dead") == 1);
        let dead = listed_rows(&listed(&app, "status=dead"));
        let why = dead[0]["last_error"].as_str().unwrap_or_default();
        let authority = receiver.url.trim_start_matches("https://").trim_end_matches('/');
        let authority = authority.split('/').next().unwrap_or_default();
        let spelt = format!(
            "plugin `webhooks` failed in hook `after_user_created`: POST {} failed: the request \
             to {authority} failed: client error (Connect): invalid peer certificate: \
             UnknownIssuer (the server's certificate is not signed by a trusted root: ",
            receiver.url
        );
        assert!(why.starts_with(&spelt), "{why}");
        assert!(receiver.received().is_empty());
        assert_eq!(deliveries(&app.db, "webhooks"), ["dead:1"]);
    }
}

e2e! {
    /// README (webhooks): "`events = [...]` # optional, default all; the
    /// others are never given to it (nor listed)"; an `ordered = true`
    /// plugin's "later events wait until the failed one is delivered or
    /// dead". Webhooks, ordered, has a user's creation parked (a 503, a
    /// 300 ms backoff) when the app stops; it comes back with `events =
    /// ["space.created"]`: a space created then must reach it (the parked
    /// event, of a kind it no longer takes, is not given to it), and
    /// nothing of the user's creation may stay listed as waiting for it.
    fn a_parked_event_of_a_kind_the_plugin_no_longer_takes_holds_nothing_back(backend) {
        let receiver = Receiver::failing_first(1, Answer::Status(503));
        let db = Arc::new(TestDb::create(backend));
        let config = |events: &str| {
            format!(
                "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n{events}\n\n\
                 [deliveries]\nbackoff_ms = 50\npoll_ms = 100\n\
                 [deliveries.webhooks]\nordered = true\nbackoff_ms = 300\n",
                receiver.url
            )
        };
        let folder = webhooks_folder(&db);
        let options = |events: &str| {
            Options::default()
                .config(&config(events))
                .env("APP_PLUGINS_DIR", folder.to_str().unwrap())
        };
        let first = TestApp::start_on(db.clone(), &options(""));
        first.create_user("ada");
        wait_until("ada parked", || deliveries(&db, "webhooks") == ["pending:1"]);
        let db = kill_9(first);
        let app = TestApp::start_on(db.clone(), &options("events = [\"space.created\"]"));
        let lab = app.create_space("lab", None);
        let start = std::time::Instant::now();
        while !receiver.received().iter().any(|r| r.json["event"] == "space.created") {
            assert!(
                start.elapsed() < DEADLINE,
                "the space never reached webhooks within {DEADLINE:?}: deliveries {:?}, listed {}",
                deliveries(&db, "webhooks"),
                listed(&app, "")
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let got = receiver.received();
        assert_eq!(got.len(), 2, "{:?}", got.iter().map(|r| &r.json).collect::<Vec<_>>());
        assert_eq!(got[1].json["data"], lab);
        wait_until("the space's delivery recorded", || delivered(&db, "webhooks") == 1);
        let pending = listed(&app, "status=pending");
        assert_eq!(pending["total"], 0, "{pending}");
    }
}
