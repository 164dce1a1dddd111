//! README's and ARCHITECTURE.md's claims about after-commit deliveries,
//! taken to their edges: exact attempts and states, per-plugin policies,
//! ordered plugins, concurrency, the admin list and retry (HTTP and CLI),
//! retention, and plugins that come and go. Each test runs on SQLite and
//! PostgreSQL; the `webhooks` plugin posts to a local receiver, and the
//! `after` / `every` test plugins (`TEST_AFTER_COMMIT`) are a second party.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::after_commit::AFTER_COMMIT_ENV;
use e2e_tests::receiver::{Answer, Receiver};
use e2e_tests::*;
use serde_json::Value;

const SECRET: &str = "delivery-claims-secret";

/// An empty plugin folder: no webhooks at all.
fn no_plugins_folder(db: &TestDb) -> PathBuf {
    let dir = db.dir.path().join("no-plugins");
    std::fs::create_dir_all(&dir).expect("an empty plugin folder");
    dir
}

/// The `[deliveries]` every test starts from (fast retries and polls), then
/// `extra` (more `[deliveries]` keys, then any table).
fn deliveries_config(extra: &str) -> String {
    format!(
        "[deliveries]\nbackoff_ms = 50\npoll_ms = 100\nlease_ms = 3000\ntimeout_ms = 2500\n{extra}\n"
    )
}

/// Options for test-app with webhooks posting to `receiver` (its own
/// `[plugins.webhooks]` lines `webhooks` added); `extra` as in
/// [`deliveries_config`].
fn webhooks_options(db: &TestDb, receiver: &Receiver, webhooks: &str, extra: &str) -> Options {
    let config = format!(
        "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_ms = 2000\n{webhooks}\n\n{}",
        receiver.url,
        deliveries_config(extra)
    );
    Options::default()
        .config(&config)
        .env("APP_PLUGINS_DIR", webhooks_folder(db).to_str().unwrap())
}

/// Options for test-app without webhooks (an empty plugin folder), with
/// the `after` test plugin.
fn after_only_options(db: &TestDb, extra: &str) -> Options {
    Options::default()
        .config(&deliveries_config(extra))
        .env("APP_PLUGINS_DIR", no_plugins_folder(db).to_str().unwrap())
        .env(AFTER_COMMIT_ENV, "1")
}

/// Starts test-app with webhooks posting to `receiver` on a fresh database.
fn start(backend: Backend, receiver: &Receiver, extra: &str) -> TestApp {
    let db = Arc::new(TestDb::create(backend));
    let options = webhooks_options(&db, receiver, "", extra);
    TestApp::start_on(db, &options)
}

/// [`start`], with the `after` test plugin linked in too.
fn start_with_after(backend: Backend, receiver: &Receiver, extra: &str) -> TestApp {
    let db = Arc::new(TestDb::create(backend));
    let options = webhooks_options(&db, receiver, "", extra).env(AFTER_COMMIT_ENV, "1");
    TestApp::start_on(db, &options)
}

/// The listed delivery of `plugin` for the event `key`.
fn row_of(app: &TestApp, plugin: &str, key: &str) -> Value {
    let all = listed(app, "limit=500");
    let found: Vec<Value> = listed_rows(&all)
        .into_iter()
        .filter(|d| d["plugin"] == plugin && d["event_id"] == key)
        .collect();
    assert_eq!(found.len(), 1, "{plugin}'s delivery of {key} in {all}");
    found[0].clone()
}

/// `/api/admin/plugins`' delivery counts of `plugin`.
fn counts(app: &TestApp, plugin: &str) -> Value {
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == plugin)
        .unwrap_or_else(|| panic!("no {plugin} in {report}"))["deliveries"]
        .clone()
}

/// Whether `text` is an RFC 3339 time in UTC with microseconds:
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn is_rfc3339_micros(text: &Value) -> bool {
    let Some(text) = text.as_str() else {
        return false;
    };
    let pattern = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    text.len() == pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(c, p)| {
            if p == b'd' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

e2e! {
    /// README: "it is retried after `backoff_ms`, doubling, with jitter,
    /// up to `max_attempts`, then it is dead until an admin retries it";
    /// "Meanwhile the plugin's later events go on".
    /// Exactly `max_attempts` requests, the same key, `X-Attempt` 1 and 2;
    /// then dead, and not sent again while later events are delivered.
    fn a_delivery_is_dead_after_exactly_max_attempts_and_stays_dead(backend) {
        let receiver = Receiver::failing_first(2, Answer::Status(503));
        let app = start(backend, &receiver, "max_attempts = 2");
        app.create_user("bob");
        wait_until("bob dead", || listed(&app, "status=dead")["total"] == 1);
        let got = receiver.received();
        assert_eq!(received_names(&got), ["bob", "bob"]);
        assert_eq!(got.iter().map(|r| r.attempt.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(got[0].key, got[1].key);
        let dead = &listed_rows(&listed(&app, "status=dead"))[0];
        assert_eq!(dead["attempts"], 2, "{dead}");
        assert_eq!(dead["event_id"], got[0].key.as_str());
        assert!(dead["last_error"].as_str().unwrap().contains("answered 503"), "{dead}");

        // Later events go on; the dead one is not tried again on its own.
        app.create_user("carol");
        wait_until("carol delivered", || delivered(&app.db, "webhooks") == 1);
        app.create_user("dave");
        wait_until("dave delivered", || delivered(&app.db, "webhooks") == 2);
        assert_eq!(received_names(&receiver.received()), ["bob", "bob", "carol", "dave"]);
        assert_eq!(deliveries(&app.db, "webhooks"), ["dead:2", "delivered:1", "delivered:1"]);
        assert_eq!(counts(&app, "webhooks"), json!({"pending": 0, "dead": 1, "delivered": 2}));
    }

    /// README: "`[deliveries.webhooks]` # per plugin: max_attempts,
    /// backoff_ms, max_backoff_ms, timeout_ms, concurrency, ordered".
    /// `[deliveries] max_attempts = 2` with `[deliveries.after]
    /// max_attempts = 3`: `after` (which fails twice, then succeeds) is
    /// delivered on its third attempt; webhooks, on the default, is dead
    /// after two.
    fn a_plugins_own_max_attempts_overrides_the_default_for_it_alone(backend) {
        let receiver = Receiver::scripted(|_| Answer::Status(503));
        let app = start_with_after(backend, &receiver, "max_attempts = 2\n[deliveries.after]\nmax_attempts = 3");
        app.create_user("after-panic-1");
        wait_until("after delivered and webhooks dead", || {
            delivered(&app.db, "after") == 1 && count_status(&app.db, "webhooks", "dead") == 1
        });
        assert_eq!(deliveries(&app.db, "after"), ["delivered:3"]);
        assert_eq!(deliveries(&app.db, "webhooks"), ["dead:2"]);
        assert_eq!(receiver.received().len(), 2);
        let seen = app.db.column("SELECT attempt || ':' || username FROM plugin_after_seen");
        assert_eq!(seen, ["3:after-panic-1"]);
    }

    /// README: "`backoff_ms = 1000` # first retry delay; doubles each
    /// time, with jitter" and "`max_backoff_ms`". With a first delay of
    /// 100 ms capped at 400 ms, the n-th retry waits between half and all
    /// of min(100 x 2^(n-1), 400) ms (plus the worker's own time): never
    /// the 800 or 1600 ms an uncapped doubling would reach.
    fn retries_double_from_backoff_ms_and_stop_doubling_at_max_backoff_ms(backend) {
        let receiver = Receiver::scripted(|_| Answer::Status(503));
        let app = start(
            backend,
            &receiver,
            "max_attempts = 7\n[deliveries.webhooks]\nbackoff_ms = 100\nmax_backoff_ms = 400",
        );
        app.create_user("ada");
        wait_until("dead after seven", || count_status(&app.db, "webhooks", "dead") == 1);
        let got = receiver.received();
        assert_eq!(got.len(), 7, "{:?}", received_names(&got));
        assert_eq!(deliveries(&app.db, "webhooks"), ["dead:7"]);
        let slack = Duration::from_millis(250);
        for (i, pair) in got.windows(2).enumerate() {
            let full = Duration::from_millis((100u64 << i).min(400));
            let waited = pair[1].at - pair[0].at;
            assert!(
                waited >= full / 2 && waited <= full + slack,
                "retry {} waited {waited:?}, not within [{:?}, {:?}]",
                i + 1,
                full / 2,
                full + slack
            );
        }
    }

    /// README: `GET /api/admin/deliveries` lists "`id, event_id, event,
    /// plugin, status, attempts, last_error, next_attempt_at` (`null` when
    /// due now), `recorded_at, done_at`; times in RFC 3339 with
    /// microseconds), with `total`", filtered by `status`; `POST
    /// /api/admin/deliveries/:id/retry`: "a dead delivery is pending again,
    /// due now (409 if it is not dead)". A pending (parked) delivery shows
    /// when it is retried (within its first backoff), a dead or delivered
    /// one when it was done; only a dead one can be retried by hand, which
    /// makes it due now and delivers it with the same event id.
    fn the_list_shows_each_state_exactly_and_only_a_dead_delivery_is_retried(backend) {
        let receiver = Receiver::failing_first(1, Answer::Status(503));
        let app = start_with_after(
            backend,
            &receiver,
            "max_attempts = 1\n[deliveries.after]\nmax_attempts = 5\nbackoff_ms = 60000",
        );
        app.create_user("after-panic-1");
        receiver.wait_for(1);
        app.create_user("calm");
        wait_until("every delivery settled", || {
            listed(&app, "status=pending")["total"] == 1
                && listed(&app, "status=dead")["total"] == 1
                && listed(&app, "status=delivered")["total"] == 2
        });
        let all = listed(&app, "");
        assert_eq!(all["total"], 4, "{all}");
        let (panicky, calm) = (key_of_user(&app.db, "after-panic-1"), key_of_user(&app.db, "calm"));

        let fields: BTreeSet<&str> = [
            "id", "event_id", "event", "plugin", "status", "attempts", "last_error",
            "next_attempt_at", "recorded_at", "done_at",
        ].into_iter().collect();
        for d in listed_rows(&all) {
            let keys: BTreeSet<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, fields, "{d}");
            assert_eq!(d["event"], "user.created");
            assert!(is_rfc3339_micros(&d["recorded_at"]), "{d}");
        }

        // Parked: its retry time, within its first backoff (30 to 60 s).
        let pending = row_of(&app, "after", &panicky);
        assert_eq!((&pending["status"], &pending["attempts"]), (&json!("pending"), &json!(1)), "{pending}");
        assert!(pending["last_error"].as_str().unwrap().contains("after panics on attempt 1"), "{pending}");
        assert_eq!(pending["done_at"], Value::Null, "{pending}");
        let next_ms: i64 = app.db.count(&format!(
            "SELECT next_attempt_ms FROM outbox_deliveries WHERE id = {}", pending["id"]
        ));
        assert_eq!(pending["next_attempt_at"].as_str(), hookspecs::time_of_unix_ms(next_ms).as_deref());
        assert!(is_rfc3339_micros(&pending["next_attempt_at"]), "{pending}");
        let ahead = next_ms - now_ms();
        assert!((25_000..=60_000).contains(&ahead), "retried in {ahead} ms: {pending}");

        // Dead: done, never due.
        let dead = row_of(&app, "webhooks", &panicky);
        assert_eq!((&dead["status"], &dead["attempts"]), (&json!("dead"), &json!(1)), "{dead}");
        assert!(dead["last_error"].as_str().unwrap().contains("answered 503"), "{dead}");
        assert_eq!(dead["next_attempt_at"], Value::Null, "{dead}");
        assert!(is_rfc3339_micros(&dead["done_at"]), "{dead}");
        assert_eq!(dead["recorded_at"], pending["recorded_at"], "one event, one time");

        // Delivered: done, no error.
        for plugin in ["after", "webhooks"] {
            let d = row_of(&app, plugin, &calm);
            assert_eq!((&d["status"], &d["attempts"]), (&json!("delivered"), &json!(1)), "{d}");
            assert_eq!(d["last_error"], Value::Null, "{d}");
            assert_eq!(d["next_attempt_at"], Value::Null, "{d}");
            assert!(is_rfc3339_micros(&d["done_at"]), "{d}");
        }
        assert_eq!(counts(&app, "after"), json!({"pending": 1, "dead": 0, "delivered": 1}));
        assert_eq!(counts(&app, "webhooks"), json!({"pending": 0, "dead": 1, "delivered": 1}));

        // Only the dead one may be retried by hand.
        let retry = |d: &Value| app.post(&format!("/api/admin/deliveries/{}/retry", d["id"]), ADMIN, json!({}));
        let refused = expect_error(409, "conflict", retry(&pending));
        assert!(refused["message"].as_str().unwrap().contains("pending"), "{refused}");
        expect_error(409, "conflict", retry(&row_of(&app, "webhooks", &calm)));
        assert_eq!(row_of(&app, "after", &panicky)["next_attempt_at"], pending["next_attempt_at"]);
        let again = expect(200, retry(&dead));
        assert_eq!(again["id"], dead["id"]);
        assert_eq!(again["status"], "pending", "{again}");
        assert_eq!(again["next_attempt_at"], Value::Null, "due now: {again}");
        assert_eq!(again["done_at"], Value::Null, "{again}");
        wait_until("the retried delivery", || delivered(&app.db, "webhooks") == 2);
        let got = receiver.received();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].key, panicky);
        assert_eq!(counts(&app, "webhooks"), json!({"pending": 0, "dead": 0, "delivered": 2}));
        assert_eq!(deliveries(&app.db, "after"), ["pending:1", "delivered:1"]);
    }

    /// README: "then it is dead until an admin retries it (`POST
    /// /api/admin/deliveries/:id/retry` or `app deliveries retry ID`; `app
    /// deliveries list --status dead` lists them)"; the CLI's retry says "a
    /// running app picks it up at its next poll". The list's lines and
    /// `N of M`, its `--limit`/`--offset`, the retry delivered by the
    /// running app, and a retry of what is not dead refused.
    fn the_cli_lists_and_retries_a_dead_delivery_and_the_running_app_delivers_it(backend) {
        let receiver = Receiver::failing_first(1, Answer::Status(503));
        let app = start(backend, &receiver, "max_attempts = 1");
        app.create_user("bob");
        wait_until("bob dead", || count_status(&app.db, "webhooks", "dead") == 1);
        app.create_user("carol");
        wait_until("carol delivered", || delivered(&app.db, "webhooks") == 1);
        let bob = key_of_user(&app.db, "bob");
        let carol = key_of_user(&app.db, "carol");
        let ids = app.db.column("SELECT id FROM outbox_deliveries WHERE plugin = 'webhooks' ORDER BY id");
        assert_eq!(ids.len(), 2);
        let cli = |args: &[&str]| run_to_exit(&app.db, &Options::default().args(args));

        let (status, out) = cli(&["deliveries", "list", "--status", "dead"]);
        assert!(status.success(), "{out}");
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("attempts=")).collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line = lines[0];
        assert!(line.starts_with(&ids[0]), "{line}");
        for part in ["dead", "user.created", "webhooks", "attempts=1", &format!("event={bob}"), "answered 503"] {
            assert!(line.contains(part), "{part:?} not in {line:?}");
        }
        assert!(out.lines().any(|l| l == "1 of 1"), "{out}");

        let (status, out) = cli(&["deliveries", "list", "--limit", "1", "--offset", "1"]);
        assert!(status.success(), "{out}");
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("attempts=")).collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(lines[0].starts_with(&ids[1]) && lines[0].contains(&format!("event={carol}")), "{out}");
        assert!(out.lines().any(|l| l == "1 of 2"), "{out}");

        let (status, out) = cli(&["deliveries", "retry", &ids[0]]);
        assert!(status.success(), "{out}");
        assert!(out.contains(&format!("delivery {} is pending again", ids[0])), "{out}");
        wait_until("the running app delivering the retry", || delivered(&app.db, "webhooks") == 2);
        let got = receiver.received();
        assert_eq!(received_names(&got), ["bob", "carol", "bob"]);
        assert_eq!(got[2].key, bob);
        assert_eq!(deliveries(&app.db, "webhooks"), ["delivered:1", "delivered:1"]);

        let (status, out) = cli(&["deliveries", "retry", &ids[0]]);
        assert!(!status.success(), "{out}");
        assert!(out.contains(&format!("delivery {} is delivered, not dead", ids[0])), "{out}");
        let (status, out) = cli(&["deliveries", "retry", "999999"]);
        assert!(!status.success(), "{out}");
        let (status, out) = cli(&["deliveries", "list", "--status", "lost"]);
        assert!(!status.success(), "{out}");
        assert!(out.contains("status must be pending, dead or delivered"), "{out}");
        assert_eq!(receiver.received().len(), 3);
    }

    /// README: "A plugin for which order matters more than throughput sets
    /// `ordered = true`: it gets one event at a time, each after the
    /// previous one" and (config) "`ordered = false` # true: one event at
    /// a time, in commit order". With `concurrency = 8` and every attempt
    /// hanging to its 400 ms limit, the four events still go one by one,
    /// in commit order, each after the previous one's limit; each dead
    /// (max_attempts = 1) lets the next go; a later event is delivered.
    fn an_ordered_plugin_gets_one_event_at_a_time_whatever_its_concurrency(backend) {
        let receiver = Receiver::failing_first(4, Answer::Hang);
        let app = start(
            backend,
            &receiver,
            "concurrency = 8\n[deliveries.webhooks]\nordered = true\ntimeout_ms = 400\nmax_attempts = 1",
        );
        for i in 0..4 {
            app.create_user(&format!("u{i}"));
        }
        wait_until("four dead", || count_status(&app.db, "webhooks", "dead") == 4);
        let got = receiver.received();
        assert_eq!(got.len(), 4, "{:?}", received_names(&got));
        let keys: Vec<String> = got.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys, delivery_order(&app.db), "commit order");
        for pair in got.windows(2) {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= Duration::from_millis(350), "two at once ({gap:?} apart): {:?}", received_names(&got));
        }
        app.create_user("later");
        wait_until("the later one delivered", || delivered(&app.db, "webhooks") == 1);
        assert_eq!(received_names(&receiver.received()), ["u0", "u1", "u2", "u3", "later"]);
    }

    /// README: "unless the plugin is `ordered = true` (in
    /// `[deliveries.<plugin>]`): then its later events wait until the
    /// failed one is delivered or dead. Either way, one plugin's failures
    /// never hold back another plugin"; "events still ahead of a plugin's
    /// cursor are not listed yet"; "Delivered ones are pruned after
    /// `retention_s`, and so are events every plugin's cursor has passed
    /// and that have nothing left to retry". With webhooks ordered and its
    /// first event parked, `after` gets all three; webhooks lists one row;
    /// a 1 s retention prunes `after`'s deliveries but none of the three
    /// events webhooks still needs; once due, webhooks gets them in commit
    /// order, then the log is pruned.
    fn an_ordered_plugin_held_back_holds_back_no_other_and_keeps_its_events_past_retention(backend) {
        let receiver = Receiver::failing_first(1, Answer::Status(503));
        let app = start_with_after(
            backend,
            &receiver,
            "retention_s = 1\n[deliveries.webhooks]\nordered = true\nbackoff_ms = 600000",
        );
        app.create_user("u1");
        receiver.wait_for(1);
        app.create_user("u2");
        app.create_user("u3");
        let seen = || app.db.count("SELECT COUNT(*) FROM plugin_after_seen");
        // after's cursor past the last event: its three deliveries recorded.
        wait_until("after got all three", || {
            seen() == 3
                && app.db.count(
                    "SELECT COUNT(*) FROM outbox_cursors WHERE plugin = 'after' \
                     AND event_id = (SELECT MAX(id) FROM outbox_events)",
                ) == 1
        });
        assert_eq!(receiver.received().len(), 1, "webhooks went past its parked event");
        assert_eq!(deliveries(&app.db, "webhooks"), ["pending:1"]);
        let listed_webhooks: Vec<Value> = listed_rows(&listed(&app, "limit=500"))
            .into_iter()
            .filter(|d| d["plugin"] == "webhooks")
            .collect();
        assert_eq!(listed_webhooks.len(), 1, "{listed_webhooks:?}");
        assert_eq!(listed_webhooks[0]["event_id"], key_of_user(&app.db, "u1"));

        // The retention passes: after's deliveries go, the events stay.
        wait_until("after's deliveries pruned", || deliveries(&app.db, "after").is_empty());
        assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox_events"), 3);
        assert_eq!(deliveries(&app.db, "webhooks"), ["pending:1"]);
        assert_eq!(receiver.received().len(), 1);

        // Due now: the parked one, then the two held back, in commit order.
        app.db.column("UPDATE outbox_deliveries SET next_attempt_ms = 0 WHERE plugin = 'webhooks' RETURNING id");
        let got = receiver.wait_for(4);
        assert_eq!(received_names(&got), ["u1", "u1", "u2", "u3"]);
        wait_until("the log pruned", || app.db.count("SELECT COUNT(*) FROM outbox_events") == 0);
        assert_eq!(receiver.received().len(), 4);
        assert_eq!(seen(), 3);
    }

    /// README: "The events of a batch are started in commit order,
    /// `concurrency` (8) of them at once"; config: "`concurrency = 8` # a
    /// batch's events attempted at once per plugin (started in commit
    /// order)". With `[deliveries.webhooks] concurrency = 2` and every
    /// attempt hanging to its 1 s limit: two at once, the next two only
    /// once those ended, in commit order.
    fn a_plugin_has_at_most_its_concurrency_in_flight_started_in_commit_order(backend) {
        let receiver = Receiver::failing_first(5, Answer::Hang);
        let app = start(
            backend,
            &receiver,
            "[deliveries.webhooks]\nconcurrency = 2\ntimeout_ms = 1000\nbackoff_ms = 600000",
        );
        app.create_user("gate");
        receiver.wait_for(1);
        for i in 0..4 {
            app.create_user(&format!("u{i}"));
        }
        let got = receiver.wait_for(5);
        let set = |from: usize| -> BTreeSet<String> { received_names(&got[from..from + 2]).into_iter().collect() };
        assert_eq!(received_names(&got[..1]), ["gate"]);
        assert_eq!(set(1), ["u0", "u1"].map(String::from).into_iter().collect());
        assert_eq!(set(3), ["u2", "u3"].map(String::from).into_iter().collect());
        assert!(got[2].at - got[1].at < Duration::from_millis(500), "the first two not at once");
        for (later, earlier) in [(3, 1), (4, 2)] {
            let gap = got[later].at - got[earlier].at;
            assert!(gap >= Duration::from_millis(800), "a third in flight ({gap:?} after an earlier one)");
        }
        wait_until("all five parked", || deliveries(&app.db, "webhooks").len() == 5);
        assert_eq!(deliveries(&app.db, "webhooks"), ["pending:1"; 5]);
        assert_eq!(receiver.received().len(), 5);
    }

    /// README: each plugin "keeps its own position in it (a cursor)" and
    /// gets the events after it "at least once"; only "a plugin that no
    /// instance has loaded for longer than `retention_s` loses its
    /// cursor". Webhooks removed for one run (well within the retention)
    /// and back: it gets the event committed while it was away, in commit
    /// order, then the new one.
    fn a_plugin_back_within_the_retention_gets_the_events_it_missed(backend) {
        let db = Arc::new(TestDb::create(backend));
        let receiver = Receiver::start();
        let with = webhooks_options(&db, &receiver, "", "concurrency = 1").env(AFTER_COMMIT_ENV, "1");
        let first = TestApp::start_on(db.clone(), &with);
        first.create_user("old");
        wait_until("old delivered to both", || delivered(&db, "webhooks") == 1 && delivered(&db, "after") == 1);
        drop(first);
        let away = TestApp::start_on(db.clone(), &after_only_options(&db, ""));
        away.create_user("missed");
        wait_until("missed delivered to after", || delivered(&db, "after") == 2);
        drop(away);
        let back = TestApp::start_on(db.clone(), &with);
        back.create_user("new");
        wait_until("both delivered to webhooks", || delivered(&db, "webhooks") == 3);
        assert_eq!(received_names(&receiver.received()), ["old", "missed", "new"]);
        assert_eq!(deliveries(&db, "webhooks"), ["delivered:1"; 3]);
    }

    /// README: "A plugin that no instance has loaded for longer than
    /// `retention_s` loses its cursor (so it no longer holds the log back);
    /// if it comes back, it starts at the head, as a new plugin does."
    /// Webhooks away past a 1 s retention (the instance that had it kept
    /// its cursor for two of its passes, a second each): its cursor goes;
    /// back, it never gets the event committed while it was away, only
    /// what follows.
    fn a_plugin_away_past_the_retention_comes_back_at_the_head(backend) {
        let db = Arc::new(TestDb::create(backend));
        let receiver = Receiver::start();
        let with = webhooks_options(&db, &receiver, "", "concurrency = 1\nretention_s = 1")
            .env(AFTER_COMMIT_ENV, "1");
        let first = TestApp::start_on(db.clone(), &with);
        first.create_user("old");
        wait_until("old delivered to both", || delivered(&db, "webhooks") == 1 && delivered(&db, "after") == 1);
        drop(first);
        let away = TestApp::start_on(db.clone(), &after_only_options(&db, "retention_s = 1"));
        away.create_user("missed");
        wait_until("missed delivered to after", || {
            db.count("SELECT COUNT(*) FROM plugin_after_seen WHERE username = 'missed'") == 1
        });
        wait_until("webhooks' cursor forgotten", || {
            db.column("SELECT plugin FROM outbox_cursors ORDER BY plugin") == ["after"]
        });
        drop(away);
        let back = TestApp::start_on(db.clone(), &with);
        back.create_user("new");
        receiver.wait_for(2);
        back.create_user("last");
        receiver.wait_for(3);
        wait_until("last settled", || delivered(&db, "webhooks") >= 2);
        assert_eq!(received_names(&receiver.received()), ["old", "new", "last"]);
    }

    /// README: a plugin that comes back after losing its cursor "starts at
    /// the head, as a new plugin does". A cursor deleted under a running
    /// instance (by hand here; by another instance's pruning in the worst
    /// case) is made again at the head by that instance, which says so once
    /// and delivers what follows, instead of failing every round until it
    /// restarts.
    fn a_cursor_gone_under_a_running_instance_starts_again_at_the_head(backend) {
        let receiver = Receiver::start();
        let app = start(backend, &receiver, "");
        app.create_user("before");
        receiver.wait_for(1);
        wait_until("before settled", || delivered(&app.db, "webhooks") == 1);
        let cursors = "SELECT COUNT(*) FROM outbox_cursors WHERE plugin = 'webhooks'";
        let deleted = app
            .db
            .column("DELETE FROM outbox_cursors WHERE plugin = 'webhooks' RETURNING plugin");
        assert_eq!(deleted, ["webhooks"]);
        wait_until("the cursor made again", || app.db.count(cursors) == 1);
        app.create_user("after");
        receiver.wait_for(2);
        wait_until("after settled", || delivered(&app.db, "webhooks") == 2);
        assert_eq!(received_names(&receiver.received()), ["before", "after"]);
        let log = app.proc.output.text();
        let said = log.matches("its delivery cursor was gone: it starts again at the head").count();
        assert_eq!(said, 1, "{log}");
        assert!(!log.contains("delivery round failed"), "{log}");
    }

    /// The shipped webhooks plugin: "`events = [\"user.created\",
    /// \"membership.created\"]` # optional, default all; the others are
    /// never given to it (nor listed)". With `events = ["user.created"]`
    /// beside a plugin (`every`) that wants every change: webhooks gets and
    /// lists exactly the two user creations, none of the other changes in
    /// between, which `every` gets.
    fn webhooks_gets_and_lists_only_the_events_it_chose(backend) {
        let receiver = Receiver::start();
        let db = Arc::new(TestDb::create(backend));
        let options = webhooks_options(&db, &receiver, "events = [\"user.created\"]", "")
            .env(AFTER_COMMIT_ENV, "every");
        let app = TestApp::start_on(db, &options);
        let ada = id(&app.create_user("ada"));
        app.create_space("lab", None);
        expect(200, app.patch(&format!("/api/users/{ada}"), ADMIN, json!({"display_name": "Ada"})));
        app.create_user("bob");
        let events = app.db.count("SELECT COUNT(*) FROM outbox_events");
        assert!(events >= 4, "{events} events recorded");
        wait_until("every event to every", || delivered(&app.db, "every") == events);
        wait_until("two to webhooks", || delivered(&app.db, "webhooks") == 2);
        let got = receiver.received();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|r| r.json["event"] == "user.created"), "{:?}", got.iter().map(|r| &r.json).collect::<Vec<_>>());
        let listed: Vec<Value> = listed_rows(&listed(&app, "limit=500"))
            .into_iter()
            .filter(|d| d["plugin"] == "webhooks")
            .collect();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed.iter().all(|d| d["event"] == "user.created"), "{listed:?}");
        assert_eq!(counts(&app, "webhooks"), json!({"pending": 0, "dead": 0, "delivered": 2}));
    }

    /// README: `GET /api/admin/deliveries?status=pending|dead|delivered&limit=&offset=`:
    /// "after-commit deliveries, oldest first ... with `total`". Within a
    /// status, `limit` and `offset` page that status's deliveries alone,
    /// oldest first, and `total` counts that status.
    fn the_list_pages_within_a_status_oldest_first_with_its_total(backend) {
        let receiver = Receiver::scripted(|n| Answer::Status(if n % 2 == 0 { 503 } else { 200 }));
        let app = start(backend, &receiver, "max_attempts = 1");
        for i in 0..5 {
            app.create_user(&format!("u{i}"));
            wait_until("settled", || deliveries(&app.db, "webhooks").len() == i + 1);
        }
        let key = |i: usize| key_of_user(&app.db, &format!("u{i}"));
        let page = |query: &str| {
            let page = listed(&app, query);
            let keys: Vec<String> = listed_rows(&page).iter().map(|d| d["event_id"].as_str().unwrap().to_owned()).collect();
            (keys, page["total"].clone())
        };
        assert_eq!(page("status=dead"), (vec![key(0), key(2), key(4)], json!(3)));
        assert_eq!(page("status=dead&limit=2&offset=1"), (vec![key(2), key(4)], json!(3)));
        assert_eq!(page("status=dead&limit=1&offset=2"), (vec![key(4)], json!(3)));
        assert_eq!(page("status=dead&offset=3"), (vec![], json!(3)));
        assert_eq!(page("status=delivered&offset=1"), (vec![key(3)], json!(2)));
        assert_eq!(page("status=pending"), (vec![], json!(0)));
        assert_eq!(page("limit=3&offset=1"), (vec![key(1), key(2), key(3)], json!(5)));
        let all = listed(&app, "");
        let ids: Vec<i64> = listed_rows(&all).iter().map(|d| d["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let statuses: Vec<Value> = listed_rows(&all).iter().map(|d| d["status"].clone()).collect();
        assert_eq!(statuses, ["dead", "delivered", "dead", "delivered", "dead"].map(|s| json!(s)));
    }

    /// README: "then its later events wait until the failed one is
    /// delivered or dead" (an `ordered = true` plugin), and "it is dead
    /// until an admin retries it". A dead event of an ordered plugin,
    /// retried by hand and failing again, holds back the event committed
    /// meanwhile until it is dead again; that one then comes last.
    fn an_ordered_plugins_event_retried_by_hand_holds_back_later_ones_again(backend) {
        let receiver = Receiver::failing_first(2, Answer::Status(503));
        let app = start(
            backend,
            &receiver,
            "[deliveries.webhooks]\nordered = true\nmax_attempts = 2\nbackoff_ms = 300",
        );
        app.create_user("u1");
        wait_until("u1 dead", || count_status(&app.db, "webhooks", "dead") == 1);
        app.create_user("u2");
        wait_until("u2 delivered", || delivered(&app.db, "webhooks") == 1);
        assert_eq!(received_names(&receiver.received()), ["u1", "u1", "u2"]);
        // From now on only u3 is answered 200.
        receiver.set(|n| Answer::Status(if n < 5 { 503 } else { 200 }));
        let dead = row_of(&app, "webhooks", &key_of_user(&app.db, "u1"));
        let retried = expect(200, app.post(&format!("/api/admin/deliveries/{}/retry", dead["id"]), ADMIN, json!({})));
        assert_eq!(retried["status"], "pending");
        app.create_user("u3");
        wait_until("u3 delivered", || delivered(&app.db, "webhooks") == 2);
        let got = received_names(&receiver.received());
        assert_eq!(got.last().map(String::as_str), Some("u3"), "{got:?}");
        assert_eq!(got.iter().filter(|n| *n == "u3").count(), 1, "{got:?}");
        assert!(got[3..got.len() - 1].iter().all(|n| n == "u1") && got.len() >= 5, "{got:?}");
        assert_eq!(count_status(&app.db, "webhooks", "dead"), 1);
        assert_eq!(row_of(&app, "webhooks", &key_of_user(&app.db, "u1"))["status"], "dead");
    }

    /// README: "`[deliveries] batch` is at most 1,000"; config: "`batch =
    /// 200` # events claimed at once per plugin (at most 1000)". 1001 stops
    /// startup naming the key and the limit; 1000 starts and delivers.
    fn a_batch_above_1000_stops_startup_and_1000_delivers(backend) {
        let receiver = Receiver::start();
        let db = Arc::new(TestDb::create(backend));
        let (status, output) = run_to_exit(&db, &webhooks_options(&db, &receiver, "", "batch = 1001"));
        assert!(!status.success(), "{output}");
        assert!(output.contains("[deliveries] batch = 1001 is above its limit of 1000"), "{output}");
        let app = TestApp::start_on(db.clone(), &webhooks_options(&db, &receiver, "", "batch = 1000"));
        app.create_user("ada");
        wait_until("delivered", || delivered(&app.db, "webhooks") == 1);
        assert_eq!(received_names(&receiver.received()), ["ada"]);
    }
}

/// README: "A plugin added later starts at the head of the log: it gets
/// the events recorded from its first start on, not the past."
/// PostgreSQL: an event committed before webhooks' first start, while
/// another writing transaction of the app's database was still open (as
/// any busy instance's are), is the past all the same.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn a_plugin_added_while_a_transaction_is_open_gets_no_past_event() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let db = Arc::new(TestDb::create(backend));
    let before = TestApp::start_on(db.clone(), &after_only_options(&db, ""));
    before.create_user("first");
    wait_until("first delivered to after", || delivered(&db, "after") == 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // A writing transaction of the app's database, open across the start.
    let mut open = runtime.block_on(open_transaction(&db.url));
    before.create_user("old"); // committed (201) before webhooks ever started
    drop(before);
    let receiver = Receiver::start();
    let with = webhooks_options(&db, &receiver, "", "concurrency = 1").env(AFTER_COMMIT_ENV, "1");
    let app = TestApp::start_on(db.clone(), &with);
    app.create_user("new");
    runtime.block_on(async {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut open)
            .await
            .expect("ROLLBACK");
    });
    wait_until("new delivered to webhooks", || {
        receiver
            .received()
            .iter()
            .any(|r| r.json["data"]["username"] == "new")
    });
    app.create_user("last");
    wait_until("last delivered to webhooks", || {
        receiver
            .received()
            .iter()
            .any(|r| r.json["data"]["username"] == "last")
    });
    assert_eq!(received_names(&receiver.received()), ["new", "last"]);
}

/// README: "On PostgreSQL, several instances share the log: the instance
/// that takes a plugin's cursor ... delivers for that plugin (so even with
/// several instances, the events in flight for a plugin are at most one
/// batch's `concurrency`)". Two instances, `concurrency = 2`, every
/// attempt hanging to its 1 s limit: never three attempts in flight.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn two_instances_never_have_more_than_one_batchs_concurrency_in_flight() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let receiver = Receiver::failing_first(6, Answer::Hang);
    let db = Arc::new(TestDb::create(backend));
    let options = webhooks_options(
        &db,
        &receiver,
        "",
        "[deliveries.webhooks]\nconcurrency = 2\ntimeout_ms = 1000\nbackoff_ms = 600000",
    );
    let apps: Vec<TestApp> = (0..2)
        .map(|_| TestApp::start_on(db.clone(), &options))
        .collect();
    for i in 0..6 {
        apps[i % 2].create_user(&format!("u{i}"));
    }
    let got = receiver.wait_for(6);
    wait_until("all six parked", || deliveries(&db, "webhooks").len() == 6);
    assert_eq!(deliveries(&db, "webhooks"), ["pending:1"; 6]);
    let got = if receiver.received().len() > got.len() {
        receiver.received()
    } else {
        got
    };
    assert_eq!(got.len(), 6, "{:?}", received_names(&got));
    // Each attempt hangs 1 s from its start: those arriving within 800 ms
    // before one were still in flight when it started.
    for (i, r) in got.iter().enumerate() {
        let in_flight = got[..i]
            .iter()
            .filter(|e| r.at - e.at < Duration::from_millis(800))
            .count();
        assert!(
            in_flight < 2,
            "{} started with {in_flight} others in flight",
            received_names(&got[i..=i])[0]
        );
    }
    let mut seen: Vec<String> = received_names(&got);
    seen.sort();
    assert_eq!(seen, (0..6).map(|i| format!("u{i}")).collect::<Vec<_>>());
}

/// README: "A plugin that no instance has loaded for longer than
/// `retention_s` loses its cursor (so it no longer holds the log back)".
/// PostgreSQL, two instances: A has webhooks loaded the whole time (a
/// retention of 2 s: it passes every 2 s and keeps its plugins' cursors for
/// three passes, 6 s), B does not (a retention of 1 s). Webhooks is loaded,
/// so it keeps its cursor: every event A commits, second after second
/// (each cycle waits for B to prune the last one's deliveries, older than
/// its 1 s), for well past A's first promise (its marks keep it), reaches
/// the receiver.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn a_plugin_loaded_on_a_running_instance_keeps_its_cursor_whatever_another_instances_retention() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let db = Arc::new(TestDb::create(backend));
    let receiver = Receiver::start();
    let a = TestApp::start_on(
        db.clone(),
        &webhooks_options(&db, &receiver, "", "retention_s = 2"),
    );
    let _b = TestApp::start_on(db.clone(), &after_only_options(&db, "retention_s = 1"));
    let began = std::time::Instant::now();
    let mut cycles = 0;
    while cycles < 6 || began.elapsed() < Duration::from_secs(15) {
        assert!(cycles < 60, "bounded");
        let i = cycles;
        cycles += 1;
        let name = format!("u{i}");
        a.create_user(&name);
        let posted = || {
            receiver
                .received()
                .iter()
                .any(|r| r.json["data"]["username"] == name.as_str())
        };
        let start = std::time::Instant::now();
        while !posted() {
            if start.elapsed() > DEADLINE {
                let warns: Vec<String> = a
                    .proc
                    .output
                    .text()
                    .lines()
                    .filter(|l| l.contains(" WARN "))
                    .take(3)
                    .map(str::to_owned)
                    .collect();
                panic!(
                    "{name} never posted by webhooks; cursors {:?}; A's warnings: {warns:#?}",
                    db.column("SELECT plugin FROM outbox_cursors ORDER BY plugin")
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let key = key_of_user(&db, &name);
        wait_until(&format!("{name} settled for both plugins"), || {
            db.count(&format!(
                "SELECT COUNT(*) FROM outbox_cursors WHERE event_id >= \
                 (SELECT id FROM outbox_events WHERE event_key = '{key}')"
            )) == 2
        });
        wait_until(&format!("{name}'s deliveries pruned by B"), || {
            db.count(&format!(
                "SELECT COUNT(*) FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id \
                 WHERE e.event_key = '{key}'"
            )) == 0
        });
    }
    assert_eq!(
        received_names(&receiver.received()),
        (0..cycles).map(|i| format!("u{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        db.column("SELECT plugin FROM outbox_cursors ORDER BY plugin"),
        ["after", "webhooks"]
    );
}

/// README: "Ctrl-C (or SIGTERM) stops accepting connections, lets requests
/// in flight finish and closes the database"; ARCHITECTURE.md: worker.rs
/// "starts and stops the delivery tasks, ... gives leases back". PostgreSQL,
/// two instances, a 60 s lease: the one delivering is stopped with SIGTERM
/// while its attempt hangs; the other carries on at once, not after the
/// lease, sending the event cut short again with the same key.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn an_instance_stopped_with_sigterm_gives_its_lease_back_at_once() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let receiver = Receiver::failing_first(1, Answer::Hang);
    let db = Arc::new(TestDb::create(backend));
    let config = format!(
        "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_ms = 30000\n\n\
         [deliveries]\nbackoff_ms = 50\npoll_ms = 100\nlease_ms = 60000\ntimeout_ms = 30000\n",
        receiver.url
    );
    let options = Options::default()
        .config(&config)
        .env("APP_PLUGINS_DIR", webhooks_folder(&db).to_str().unwrap());
    let mut apps: Vec<TestApp> = (0..2)
        .map(|_| TestApp::start_on(db.clone(), &options))
        .collect();
    apps[0].create_user("ada");
    let first = receiver.wait_for(1);
    let owner = db
        .column("SELECT lease_owner FROM outbox_cursors WHERE plugin = 'webhooks' AND lease_owner IS NOT NULL")
        .into_iter()
        .next()
        .expect("the instance delivering holds the lease");
    let victim = apps
        .iter()
        .position(|a| instance_of(a) == owner)
        .expect("a known instance");
    let mut stopped = apps.remove(victim);
    stopped.proc.signal("TERM");
    let status = stopped.proc.wait_exit();
    assert!(
        status.success(),
        "{status:?}: {}",
        stopped.proc.output.text()
    );
    wait_until("the other instance delivering", || {
        delivered(&db, "webhooks") == 1
    });
    let got = receiver.received();
    assert_eq!(got.len(), 2, "{:?}", received_names(&got));
    assert_eq!(got[1].key, first[0].key);
    assert_eq!(deliveries(&db, "webhooks"), ["delivered:1"]);
}
