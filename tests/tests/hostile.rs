//! The transport against clients that are slow, silent, greedy or odd, with
//! real sockets: every limit of `[http]` closes what it should and the
//! server keeps serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::*;

/// A small app whose limits a test can reach quickly.
fn app(http: &str) -> TestApp {
    TestApp::start_with(
        Backend::Sqlite,
        Options::default().config(&format!("[http]\n{http}\n")),
    )
}

/// The status line's code of a raw response.
fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[test]
fn a_slowloris_client_is_closed_by_the_header_timeout() {
    let app = app("header_timeout_ms = 300");
    let mut stream = connect(&app);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    // One header byte at a time, never the blank line that ends the head.
    let mut closed = false;
    while started.elapsed() < DEADLINE {
        if stream.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match stream.read(&mut [0u8; 512]) {
            Ok(_) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "a header that never ends was not cut off");
    // Everyone else is still served.
    expect(200, app.get("/health", None));
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let app = app("header_timeout_ms = 400\nidle_timeout_ms = 400");
    let mut stream = connect(&app);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_to_close(&mut stream);
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.contains("{\"status\":\"ok\"}"));
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_408() {
    let app = app("body_timeout_ms = 300");
    let mut stream = connect(&app);
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"user"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_to_close(&mut stream);
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(answer.contains("request_timeout"));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
}

#[test]
fn unknown_routes_and_missing_credentials_are_answered_before_the_body() {
    let app = app("");
    for (target, auth, code) in [
        ("/nope", "", 404),
        ("/api/users", "", 401),
        ("/api/users", "Authorization: Bearer nobody\r\n", 401),
    ] {
        let mut stream = connect(&app);
        // A megabyte announced, not one byte of it sent.
        let head =
            format!("POST {target} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 1000000\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let answer = read_to_close(&mut stream);
        assert_eq!(status(&answer), code, "{target}: {answer}");
        // The body is left unread, so the connection ends: the answer says
        // so, and a client does not send its next request into the close.
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        if code == 401 {
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{answer}"
            );
        }
    }
}

#[test]
fn a_declared_length_over_the_limit_is_413_at_once() {
    let app = app("body_limit = 1000");
    let mut stream = connect(&app);
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Length: 1001\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_to_close(&mut stream);
    assert_eq!(status(&answer), 413, "{answer}");
    assert!(answer.contains("\"limit\":1000"));
}

#[test]
fn beyond_the_connection_cap_new_connections_are_refused_and_the_rest_served() {
    let app = app("max_connections = 2");
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&app)).collect();
    // Both held connections are accepted before the next one arrives.
    for stream in &held {
        let mut stream = stream.try_clone().unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).unwrap();
        assert_eq!(status(&String::from_utf8_lossy(&buf[..n])), 200);
    }
    let mut third = connect(&app);
    let answer = read_to_close(&mut third);
    assert_eq!(status(&answer), 503, "{answer}");
    drop(held);
    // Once a slot frees, new clients are served again.
    served_again(&app);
}

/// Waits (bounded) until a new connection gets a 200 from `/health`.
fn served_again(app: &TestApp) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut stream = connect(app);
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = read_to_close(&mut stream);
        if answer.starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(Instant::now() < deadline, "not served again: {answer:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_never_finishes_sending_does_not_hold_the_shutdown() {
    let mut app = app("shutdown_grace_ms = 200");
    let mut stream = connect(&app);
    stream
        .write_all(b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();
    let mut body = connect(&app);
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Length: 100\r\n\r\n{{"
    );
    body.write_all(head.as_bytes()).unwrap();
    // Both connections are in (the second has sent its head).
    expect(200, app.get("/health", None));
    let started = Instant::now();
    app.proc.signal("TERM");
    let status = app.proc.wait_exit();
    assert!(status.success(), "{}", app.proc.output.text());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?} for clients that never finish",
        started.elapsed()
    );
}

/// Resident CPU time of a process, from /proc (utime + stime, in ticks).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn at_the_file_descriptor_limit_the_server_neither_spins_nor_floods_and_recovers() {
    let app = app("");
    let pid = app.proc.child.id();
    let limited = Command::new("prlimit")
        .args([format!("--pid={pid}"), "--nofile=64:64".into()])
        .status()
        .expect("running prlimit");
    assert!(limited.success());
    // More connections than the server has descriptors for.
    let mut held = Vec::new();
    for _ in 0..80 {
        if let Ok(stream) = TcpStream::connect(app.base.trim_start_matches("http://")) {
            held.push(stream);
        }
    }
    app.proc
        .output
        .wait_for("accept failures", |out| out.contains("accept failed"));
    let before = cpu_ticks(pid);
    let lines_before = app.proc.output.text().matches("accept failed").count();
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(pid) - before;
    let lines = app.proc.output.text().matches("accept failed").count() - lines_before;
    // Spinning on accept would burn the whole two seconds (200 ticks).
    assert!(spent < 40, "the accept loop spun: {spent} ticks in 2 s");
    assert!(lines <= 3, "{lines} accept-failure lines in 2 s");
    drop(held);
    served_again(&app);
}

/// A raw HTTP/1.1 exchange on a fresh connection.
fn exchange(app: &TestApp, request: &str) -> String {
    let mut stream = connect(app);
    stream.write_all(request.as_bytes()).unwrap();
    read_to_close(&mut stream)
}

#[test]
fn http_conventions() {
    let app = app("");
    let auth = format!("Authorization: bearer {ADMIN_TOKEN}\r\n");
    // HEAD on a GET route: the GET's status and headers, no body.
    let head = exchange(
        &app,
        "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&head), 200, "{head}");
    assert!(!head.contains("\"status\""), "{head}");
    // Malformed targets and OPTIONS *: JSON 4xx, never 500.
    for request in [
        format!("GET /api/users/%FF HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /api/../etc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
    ] {
        let answer = exchange(&app, &request);
        let code = status(&answer);
        assert!((400..500).contains(&code), "{request:?}: {answer}");
        assert!(answer.contains("\"error\""), "{answer}");
    }
    // The scheme is case-insensitive.
    let users = exchange(
        &app,
        &format!("GET /api/users HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    );
    assert_eq!(status(&users), 200, "{users}");
    // Every response carries a request id; a client's own is echoed.
    let echoed = exchange(
        &app,
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: trace-42\r\nConnection: close\r\n\r\n",
    );
    assert!(
        echoed
            .to_ascii_lowercase()
            .contains("x-request-id: trace-42"),
        "{echoed}"
    );
    let fresh = exchange(
        &app,
        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let id_line = fresh
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("x-request-id:"))
        .unwrap_or_else(|| panic!("no request id in {fresh}"));
    let id = id_line.split(':').nth(1).unwrap().trim();
    assert!(
        fresh.contains(&format!("\"request_id\":\"{id}\"")),
        "{fresh}"
    );
}

#[test]
fn http2_with_prior_knowledge_is_served() {
    let app = app("");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .arg(format!("{}/health", app.base))
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("2 200"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("{\"status\":\"ok\"}"));
}

#[test]
fn lists_are_paginated_with_a_next_link() {
    let app = app("");
    for n in 0..5 {
        app.create_user(&format!("u{n}"));
    }
    let page = exchange(
        &app,
        &format!(
            "GET /api/users?limit=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        page.contains("link: </api/users?limit=2&after=2>; rel=\"next\""),
        "{page}"
    );
    let (_, rest) = app.get("/api/users?after=2&limit=10", ADMIN);
    let names: Vec<&str> = rest
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u2", "u3", "u4"]);
    let (_, all) = app.get("/api/users", ADMIN);
    assert_eq!(all.as_array().unwrap().len(), 5);
}

/// A request whose body was read keeps its connection: two creations on one
/// connection, each answered without `Connection: close`; the third request
/// asks for the close, and gets it.
#[test]
fn a_body_read_to_its_end_keeps_the_connection() {
    let app = app("");
    let mut stream = connect(&app);
    for (name, last) in [("kept-a", false), ("kept-b", true)] {
        let body = format!(r#"{{"username":"{name}","email":"{name}@example.org"}}"#);
        let close = if last { "Connection: close\r\n" } else { "" };
        let request = format!(
            "POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\n{close}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        if last {
            let answer = read_to_close(&mut stream);
            assert_eq!(status(&answer), 201, "{answer}");
        } else {
            let answer = read_one(&mut stream).to_ascii_lowercase();
            assert_eq!(status(&answer), 201, "{answer}");
            assert!(!answer.contains("connection: close"), "{answer}");
        }
    }
    let users = expect(200, app.get("/api/users?limit=100", ADMIN));
    let names: Vec<_> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["username"].as_str().filter(|n| n.starts_with("kept-")))
        .collect();
    assert_eq!(names, ["kept-a", "kept-b"]);
}

/// One answer with a `content-length`, read to its end, the connection left
/// open.
fn read_one(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&all).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>())
                })
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("no content-length in {head}"));
            if body.len() >= length {
                return text;
            }
        }
        let n = stream.read(&mut buf).expect("reading an answer");
        assert!(n > 0, "the server closed the connection: {text}");
        all.extend_from_slice(&buf[..n]);
    }
}
