//! The process: graceful shutdown on SIGTERM/SIGINT, and several instances
//! starting at once on one PostgreSQL database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::plugins::SLOW_MARKER;
use e2e_tests::*;

/// Waits (bounded) until `path` exists.
fn wait_for_file(path: &std::path::Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < DEADLINE,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

e2e! {
    fn sigterm_finishes_requests_in_flight_and_exits_0(backend) {
        let mut app = TestApp::start(backend);
        let client = app.client.clone();
        let path = format!("/plugins/recorder/slow?dir={}", app.dir().display());
        let slow = std::thread::spawn(move || client.get(&path, None));
        // The handler is running (it wrote its marker, then sleeps ~500 ms).
        wait_for_file(&app.path(SLOW_MARKER));
        app.proc.signal("TERM");
        let answer = slow.join().expect("the slow request's thread");
        assert_eq!(answer, (200, json!({"slow": "done"})), "the request in flight completed");
        let status = app.proc.wait_exit();
        assert_eq!(status.code(), Some(0), "{}", app.proc.output.text());
        app.proc.output.wait_for("the slow request's log line", |out| out.contains("GET /plugins/recorder/slow 200"));
    }

    fn sigint_stops_an_idle_server_with_status_0(backend) {
        let mut app = TestApp::start(backend);
        app.create_user("ada");
        app.proc.signal("INT");
        let status = app.proc.wait_exit();
        assert_eq!(status.code(), Some(0), "{}", app.proc.output.text());
        // What was committed is there after the stop.
        assert_eq!(app.db.column("SELECT username FROM users"), ["ada"]);
    }

    fn a_write_whose_client_went_away_still_ends_and_frees_the_next(backend) {
        use std::io::Write;
        let app = TestApp::start(backend);
        // The recorder plugin creates its table with the first user; made
        // now, so that two writers never race to create it on PostgreSQL.
        app.create_user("first");
        let addr = app.client.base.trim_start_matches("http://").to_owned();
        let mut socket = std::net::TcpStream::connect(&addr).expect("connecting");
        let path = format!("/plugins/recorder/slow-write?dir={}", app.dir().display());
        write!(
            socket,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .unwrap();
        // The operation wrote its user and is sleeping: the client leaves.
        wait_for_file(&app.path(SLOW_MARKER));
        drop(socket);
        // The next write gets its turn (on SQLite, after the abandoned one),
        // and the abandoned one runs to its commit instead of being left
        // open, holding the database's write lock, or rolled back halfway.
        expect(201, app.post("/api/users", ADMIN, json!({"username": "next", "email": "next@example.com"})));
        let start = Instant::now();
        while app.db.count("SELECT count(*) FROM users WHERE username = 'slow-writer'") == 0 {
            assert!(start.elapsed() < DEADLINE, "the abandoned write never committed");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut users = app.db.column("SELECT username FROM users");
        users.sort();
        assert_eq!(users, ["first", "next", "slow-writer"]);
    }

    fn sigterm_right_after_listening_still_stops_gracefully(backend) {
        // The signal handlers are installed before "listening on" is logged:
        // installed lazily, a signal this early killed the process instead.
        let db = TestDb::create(backend);
        let mut proc = Proc::spawn(Options::default().command(&db));
        proc.wait_listening();
        proc.signal("TERM");
        let status = proc.wait_exit();
        assert_eq!(status.code(), Some(0), "{}", proc.output.text());
        proc.output.wait_for("the last log line", |out| out.contains("stopped"));
    }

    fn restart_keeps_the_data(backend) {
        let db = Arc::new(TestDb::create(backend));
        let first = TestApp::start_on(db.clone(), &Options::default());
        let ada = first.create_user("ada");
        drop(first);
        let second = TestApp::start_on(db, &Options::default());
        assert_eq!(expect(200, second.get(&format!("/api/users/{}", id(&ada)), ADMIN)), ada);
    }
}

mod three_instances_on_one_database {
    use super::*;

    /// Three instances started at once against one fresh PostgreSQL
    /// database all come up: the migrations do not race.
    #[test]
    #[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
    fn postgres() {
        let backend = Backend::postgres().expect("TEST_DATABASE_URL");
        let db = Arc::new(TestDb::create(backend));
        let procs: Vec<Proc> = (0..3)
            .map(|_| Proc::spawn(Options::default().command(&db)))
            .collect();
        let apps: Vec<TestApp> = procs
            .into_iter()
            .map(|proc| TestApp::wait_up(proc, db.clone()))
            .collect();
        let ada = apps[0].create_user("ada");
        let space = apps[1].create_space("shared", None);
        for app in &apps {
            expect(200, app.get("/health", None));
            assert_eq!(expect(200, app.get("/api/users", ADMIN)), json!([ada]));
            assert_eq!(expect(200, app.get("/api/spaces", ADMIN)), json!([space]));
        }
        let applied = db.count("SELECT COUNT(*) FROM _sqlx_migrations");
        let distinct = db.count("SELECT COUNT(DISTINCT version) FROM _sqlx_migrations");
        assert!(
            applied > 0 && applied == distinct,
            "{applied} rows, {distinct} versions"
        );
    }
}
