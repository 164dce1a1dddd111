//! The transport and the request pipeline at their edges, with raw sockets:
//! framing that could smuggle a request, bodies that never end, `Expect:
//! 100-continue`, long heads, odd paths and queries, HTTP/1.0, pipelining,
//! request ids, `Authorization` and content-type variants, JSON that tries
//! the parser, and the access log line each exchange leaves. After every
//! abusive exchange the server still serves, and a refused request wrote
//! nothing. SQLite only: the database does not matter here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e_tests::*;

// --- Helpers -----------------------------------------------------------------

/// An app with `[http]` set to `http` (may be empty).
fn app_with(http: &str) -> TestApp {
    TestApp::start_with(
        Backend::Sqlite,
        Options::default().config(&format!("[http]\n{http}\n")),
    )
}

fn app() -> TestApp {
    TestApp::start(Backend::Sqlite)
}

/// The admin's `Authorization` line.
fn admin() -> String {
    format!("Authorization: Bearer {ADMIN_TOKEN}\r\n")
}

/// Reads until the server closes (or [`DEADLINE`] passes): every byte.
fn read_bytes(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection: {e}; so far {all:?}"),
        }
    }
    all
}

/// `request` on a fresh connection, every byte the server sent until it
/// closed.
fn raw(app: &TestApp, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(app);
    stream.write_all(request).unwrap();
    read_bytes(&mut stream)
}

/// The value of header `name` in a response head.
fn head_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The responses in `bytes`, one after the other (bodies by their
/// `content-length`; none where `no_body[i]`, as for a HEAD).
#[track_caller]
fn responses(bytes: &[u8], no_body: &[bool]) -> Vec<Whole> {
    let mut rest = bytes;
    let mut all = Vec::new();
    let mut index = 0;
    while !rest.is_empty() {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(rest)));
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let length = if no_body.get(index).copied().unwrap_or(false) {
            0
        } else {
            head_value(&head, "content-length").map_or(0, |v| v.parse::<usize>().unwrap())
        };
        let body_end = end + 4 + length;
        assert!(body_end <= rest.len(), "a cut response: {head}");
        let body = String::from_utf8(rest[end + 4..body_end].to_vec()).expect("a UTF-8 body");
        all.push(Whole::parse(&format!("{head}\r\n\r\n{body}")));
        rest = &rest[body_end..];
        index += 1;
    }
    all
}

/// The one response in `bytes`.
#[track_caller]
fn one(bytes: &[u8]) -> Whole {
    let mut all = responses(bytes, &[]);
    assert_eq!(all.len(), 1, "{:?}", String::from_utf8_lossy(bytes));
    all.remove(0)
}

/// A raw request on a fresh connection, its one answer.
#[track_caller]
fn exchange(app: &TestApp, request: &str) -> Whole {
    one(&raw(app, request.as_bytes()))
}

/// The status of a raw response (also a bodiless one from hyper itself).
#[track_caller]
fn status_of(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// A `POST /api/users` body for `name`.
fn user_body(name: &str) -> String {
    format!(r#"{{"username":"{name}","email":"{name}@example.org"}}"#)
}

/// `POST path` with `body`, its length declared, `extra` headers.
fn post(path: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The usernames stored, in id order.
fn usernames(app: &TestApp) -> Vec<String> {
    app.db.column("SELECT username FROM users ORDER BY id")
}

/// A new connection is served: `GET /health` answers 200.
#[track_caller]
fn still_serves(app: &TestApp) {
    let answer = exchange(
        app,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, json!({"status": "ok"}));
}

/// Whether the connection is announced closed.
fn closes(answer: &Whole) -> bool {
    answer
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

/// The access log line (`METHOD PATH STATUS LATENCYms ID`, split) of the
/// request with id `id`, once written.
#[track_caller]
fn access_line(app: &TestApp, id: &str) -> Vec<String> {
    let find = |out: &str| -> Option<Vec<String>> {
        out.lines().find_map(|line| {
            let (_, message) = line.split_once(" INFO app::http: ")?;
            let fields: Vec<String> = message.split(' ').map(str::to_owned).collect();
            (fields.last().map(String::as_str) == Some(id)).then_some(fields)
        })
    };
    app.proc
        .output
        .wait_for(&format!("the access log line of {id}"), |out| {
            find(out).is_some()
        });
    find(&app.proc.output.text()).unwrap()
}

/// Checks an access log line's shape: five fields, the method, the path
/// (without the query), the status, a latency `N.Nms`, the id.
#[track_caller]
fn assert_line(fields: &[String], method: &str, path: &str, status: u16, id: &str) {
    assert_eq!(fields.len(), 5, "{fields:?}");
    assert_eq!(
        (fields[0].as_str(), fields[1].as_str(), fields[2].as_str()),
        (method, path, status.to_string().as_str()),
        "{fields:?}"
    );
    let latency = fields[3]
        .strip_suffix("ms")
        .unwrap_or_else(|| panic!("{fields:?}"));
    let (whole, tenth) = latency
        .split_once('.')
        .unwrap_or_else(|| panic!("{fields:?}"));
    assert!(
        !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()),
        "{fields:?}"
    );
    assert!(
        tenth.len() == 1 && tenth.bytes().all(|b| b.is_ascii_digit()),
        "{fields:?}"
    );
    assert_eq!(fields[4], id, "{fields:?}");
}

// --- Framing: what could smuggle a request -------------------------------------

/// README "The HTTP API": "JSON in, JSON out, over HTTP/1.1"; RFC 9112 6.1
/// (a message with both `Content-Length` and `Transfer-Encoding` is framed
/// by the chunked coding alone, "Regardless, the server MUST close the
/// connection after responding"). Both orders, a `Content-Length` too short
/// and one too long for what is sent: the chunked body is what is read
/// (one user, exactly), the answer says `Connection: close`, and what
/// follows on the connection (a second request) is never answered.
#[test]
fn content_length_and_transfer_encoding_together_are_read_as_chunked_then_closed() {
    let app = app();
    for (n, (order_te_first, declared)) in [(false, 5usize), (true, 5), (false, 400)]
        .into_iter()
        .enumerate()
    {
        let name = format!("chunked{n}");
        let json = user_body(&name);
        let body = format!("{:x}\r\n{json}\r\n0\r\n\r\n", json.len());
        let (first, second) = (
            "Transfer-Encoding: chunked\r\n".to_owned(),
            format!("Content-Length: {declared}\r\n"),
        );
        let framing = if order_te_first {
            format!("{first}{second}")
        } else {
            format!("{second}{first}")
        };
        let smuggled = post("/api/users", &admin(), &user_body(&format!("smuggled{n}")));
        let request = format!(
            "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Content-Type: application/json\r\n\
             {framing}\r\n{body}{smuggled}",
            admin()
        );
        let all = responses(&raw(&app, request.as_bytes()), &[]);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].status, 201, "{all:?}");
        assert_eq!(all[0].body["username"], name.as_str());
        assert!(closes(&all[0]), "{all:?}");
    }
    assert_eq!(usernames(&app), ["chunked0", "chunked1", "chunked2"]);
    still_serves(&app);
}

/// README "The HTTP API" (the pipeline reads "the body" before the
/// handler); RFC 9112 6.3 (a `Content-Length` that is not one valid
/// number, or a transfer coding the server does not know, is "an
/// unrecoverable error": 400 and close). Each is refused with a 4xx, the
/// connection closes, nothing is written, and the server serves on.
#[test]
fn ambiguous_or_broken_framing_is_refused_and_writes_nothing() {
    let app = app();
    let json = user_body("framed");
    let cases = [
        format!("Content-Length: {}\r\nContent-Length: 2\r\n", json.len()),
        "Content-Length: -1\r\n".to_owned(),
        "Content-Length: abc\r\n".to_owned(),
        "Content-Length: 0x10\r\n".to_owned(),
        "Transfer-Encoding: gzip\r\n".to_owned(),
        "Transfer-Encoding: xchunked\r\n".to_owned(),
    ];
    for framing in &cases {
        let request = format!(
            "POST /api/users HTTP/1.1\r\nHost: x\r\n{}{framing}\r\n{json}",
            admin()
        );
        let answer = raw(&app, request.as_bytes());
        let status = status_of(&answer);
        assert!((400..500).contains(&status), "{framing:?}: {status}");
        still_serves(&app);
    }
    // Chunked over HTTP/1.0 (no such coding there): refused too.
    let request = format!(
        "POST /api/users HTTP/1.0\r\n{}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{json}\r\n0\r\n\r\n",
        admin(),
        json.len()
    );
    let status = status_of(&raw(&app, request.as_bytes()));
    assert!((400..500).contains(&status), "chunked over 1.0: {status}");
    assert_eq!(usernames(&app), Vec::<String>::new());
    still_serves(&app);
}

/// RFC 9112 7.1.1 (chunk extensions a server does not understand are
/// ignored) and README "The HTTP API" (400 when the body cannot be read, the
/// error as JSON with its request id): a chunk size with an extension is
/// read; a chunk size whose hex overflows 64 bits is a 400 JSON error,
/// nothing written, the connection closed.
#[test]
fn chunk_extensions_are_ignored_and_an_overflowing_chunk_size_is_400() {
    let app = app();
    let json = user_body("extended");
    let request = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x};name=value;other\r\n{json}\r\n0;last=1\r\n\r\n",
        admin(),
        json.len()
    );
    let answer = exchange(&app, &request);
    assert_eq!(answer.status, 201, "{answer:?}");
    for size in ["FFFFFFFFFFFFFFFFF1", "10000000000000000", "-1", "zz"] {
        let request = format!(
            "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Transfer-Encoding: chunked\r\n\r\n\
             {size}\r\n{json}\r\n0\r\n\r\n",
            admin()
        );
        let answer = exchange(&app, &request);
        assert_eq!(answer.status, 400, "{size}: {answer:?}");
        assert_eq!(answer.body["error"]["code"], "bad_request", "{size}");
        assert_eq!(
            answer.body["error"]["request_id"].as_str(),
            answer.header("x-request-id"),
            "{size}"
        );
        assert!(closes(&answer), "{size}: {answer:?}");
        still_serves(&app);
    }
    assert_eq!(usernames(&app), ["extended"]);
}

/// Sends `chunk` again and again (at most `max` times, `pause` apart) on
/// `stream` until `done` or a write fails; the bytes sent.
fn keep_sending(
    mut stream: TcpStream,
    chunk: &[u8],
    max: usize,
    pause: Duration,
    done: &AtomicBool,
) -> usize {
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    let mut sent = 0;
    for _ in 0..max {
        if done.load(Ordering::SeqCst) || stream.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len();
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    sent
}

/// `[http] body_limit`: "a larger body gets 413". A chunked body that never
/// ends is cut off once past the limit: 413 with the limit, while the
/// client is still sending, the connection closed, nothing written.
#[test]
fn an_endless_chunked_body_is_cut_off_with_413_past_the_limit() {
    let app = app_with("body_limit = 1000");
    let mut stream = connect(&app);
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Transfer-Encoding: chunked\r\n\r\n",
        admin()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let done = AtomicBool::new(false);
    let chunk = format!("64\r\n{}\r\n", " ".repeat(100));
    let writer = stream.try_clone().unwrap();
    let (answer, sent) = std::thread::scope(|s| {
        // At most 64 MiB: far past the limit, never the last chunk.
        let sending =
            s.spawn(|| keep_sending(writer, chunk.as_bytes(), 640_000, Duration::ZERO, &done));
        let answer = read_bytes(&mut stream);
        done.store(true, Ordering::SeqCst);
        (answer, sending.join().unwrap())
    });
    let answer = one(&answer);
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "payload_too_large");
    assert_eq!(answer.body["error"]["limit"], 1000);
    assert!(closes(&answer));
    assert!(sent < 64_000_000, "answered only after {sent} bytes");
    assert_eq!(usernames(&app), Vec::<String>::new());
    still_serves(&app);
}

/// `[http] body_timeout_ms`: "a body must arrive whole within this, or
/// 408". A chunked body under the limit that trickles on forever (a byte
/// every 50 ms) is 408 once the time is up, nothing written.
#[test]
fn a_chunked_body_that_trickles_forever_is_408() {
    let app = app_with("body_timeout_ms = 600");
    let mut stream = connect(&app);
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Transfer-Encoding: chunked\r\n\r\n",
        admin()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let done = AtomicBool::new(false);
    let writer = stream.try_clone().unwrap();
    let started = Instant::now();
    let answer = std::thread::scope(|s| {
        s.spawn(|| keep_sending(writer, b"1\r\n \r\n", 400, Duration::from_millis(50), &done));
        let answer = read_bytes(&mut stream);
        done.store(true, Ordering::SeqCst);
        answer
    });
    let took = started.elapsed();
    let answer = one(&answer);
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "request_timeout");
    assert!(took >= Duration::from_millis(600), "408 after {took:?}");
    assert!(took < Duration::from_secs(10), "408 only after {took:?}");
    assert_eq!(usernames(&app), Vec::<String>::new());
    still_serves(&app);
}

/// `[http] body_limit = N`: a chunked body of exactly N bytes is read; one
/// byte more is 413 and writes nothing.
#[test]
fn a_chunked_body_of_exactly_the_limit_is_read_and_one_byte_more_is_413() {
    let app = app_with("body_limit = 1000");
    for (name, size, status) in [("exact", 1000, 201), ("over", 1001, 413)] {
        let json = user_body(name);
        let padded = format!("{json}{}", " ".repeat(size - json.len()));
        // In three chunks, so that no single one declares the whole.
        let (a, rest) = padded.split_at(400);
        let (b, c) = rest.split_at(400);
        let request = format!(
            "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n{:x}\r\n{c}\r\n0\r\n\r\n",
            admin(),
            a.len(),
            b.len(),
            c.len()
        );
        let answer = exchange(&app, &request);
        assert_eq!(answer.status, status, "{name}: {answer:?}");
    }
    assert_eq!(usernames(&app), ["exact"]);
}

// --- Answered before the body ------------------------------------------------

/// README "The HTTP API": "an unknown route, a missing credential or an
/// oversized body is answered without reading a byte of the body"; so a
/// client sending `Expect: 100-continue` gets the refusal, never a `100
/// Continue` inviting the body, and the connection ends after it. A request
/// that passes gets its `100 Continue`, then its answer.
#[test]
fn expect_100_continue_is_refused_before_the_body_and_invited_only_when_accepted() {
    let app = app_with("body_limit = 1000");
    app.create_user("one"); // USER's user, for the guard's 403
    let cases: [(&str, &str, String, usize, u16); 6] = [
        ("POST", "/nope", admin(), 10, 404),
        ("PUT", "/api/users", admin(), 10, 405),
        ("POST", "/api/users", String::new(), 10, 401),
        (
            "POST",
            "/api/users",
            "Authorization: Bearer nobody\r\n".into(),
            10,
            401,
        ),
        ("POST", "/api/users", admin(), 1001, 413),
        (
            "POST",
            "/api/admin/deliveries/1/retry",
            format!("Authorization: Bearer {USER_TOKEN}\r\n"),
            10,
            403,
        ),
    ];
    for (method, path, auth, length, status) in cases {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Expect: 100-continue\r\nContent-Length: {length}\r\n\r\n"
        );
        // Not a byte of the body is sent: a server waiting for it would
        // never answer, and read_bytes would fail at its deadline.
        let bytes = raw(&app, request.as_bytes());
        assert!(
            !bytes.starts_with(b"HTTP/1.1 100"),
            "{method} {path}: invited the body: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let answer = one(&bytes);
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        assert!(closes(&answer), "{method} {path}: {answer:?}");
        still_serves(&app);
    }
    // Accepted: 100 Continue first, then the body, then 201.
    let json = user_body("continued");
    let mut stream = connect(&app);
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Expect: 100-continue\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        admin(),
        json.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        assert!(interim.len() < 1000, "{interim:?}");
        let n = stream.read(&mut byte).expect("the interim answer");
        assert_eq!(n, 1, "closed before 100 Continue: {interim:?}");
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{interim:?}"
    );
    stream.write_all(json.as_bytes()).unwrap();
    let answer = one(&read_bytes(&mut stream));
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(usernames(&app), ["one", "continued"]);
}

/// README "The HTTP API": an answer given before the body was read "carries
/// `Connection: close`, since what is left of the body cannot be told from
/// the next request, and the connection ends after it". A refused request
/// whose body is a whole admin request (a smuggling attempt) gets exactly
/// one answer: the body is never run as a request of its own.
#[test]
fn the_body_of_a_refused_request_is_never_run_as_the_next_request() {
    let app = app_with("body_limit = 300");
    app.create_user("one");
    let inner = post(
        "/api/users",
        &format!("{}Content-Type: application/json\r\n", admin()),
        &user_body("smuggled"),
    );
    let cases = [
        ("POST /nope", String::new(), 404),
        ("DELETE /health", String::new(), 405),
        ("POST /api/users", String::new(), 401),
        (
            "POST /api/users",
            "Authorization: Bearer nobody\r\n".to_owned(),
            401,
        ),
        (
            "POST /api/admin/deliveries/1/retry",
            format!("Authorization: Bearer {USER_TOKEN}\r\n"),
            403,
        ),
    ];
    for (line, auth, status) in cases {
        let request = format!(
            "{line} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{inner}",
            inner.len()
        );
        let all = responses(&raw(&app, request.as_bytes()), &[]);
        assert_eq!(all.len(), 1, "{line}: {all:?}");
        assert_eq!(all[0].status, status, "{line}: {all:?}");
        assert!(closes(&all[0]), "{line}");
    }
    // Over the limit, declared: the same.
    let padded = format!("{inner}{}", " ".repeat(300));
    let request = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Content-Length: {}\r\n\r\n{padded}",
        admin(),
        padded.len()
    );
    let all = responses(&raw(&app, request.as_bytes()), &[]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].status, 413);
    assert_eq!(usernames(&app), ["one"]);
    still_serves(&app);
}

// --- Long heads ----------------------------------------------------------------

/// README `[http]`: "what protects the server from slow, silent or greedy
/// clients". A 100 KB request target is refused (414), 200 header lines are
/// refused (431), a single 100 KB header value is within bounds; none is a
/// 500 or a hang, and the server serves on.
#[test]
fn long_targets_and_many_headers_are_refused_without_harm() {
    let app = app();
    let long_query = format!(
        "GET /api/users?{} HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        "a".repeat(100_000),
        admin()
    );
    assert_eq!(status_of(&raw(&app, long_query.as_bytes())), 414);
    still_serves(&app);
    let many: String = (0..200).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    let request = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    assert_eq!(status_of(&raw(&app, request.as_bytes())), 431);
    still_serves(&app);
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(100_000)
    );
    let answer = exchange(&app, &request);
    assert_eq!(answer.status, 200, "{answer:?}");
    // A long path under the limits: 404 JSON, its own line in the log.
    let path = format!("/{}", "c".repeat(4000));
    let answer = exchange(
        &app,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: long-path\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(answer.status, 404);
    assert_line(
        &access_line(&app, "long-path"),
        "GET",
        &path,
        404,
        "long-path",
    );
    still_serves(&app);
}

/// README "The HTTP API": a request the HTTP layer cannot read (broken
/// framing, a target or head too long, bytes that are not HTTP) is refused
/// by it before the app sees it: a bare 400, 414 or 431 with no body and no
/// request id, the connection closed, nothing written; the server goes on.
#[test]
fn the_transports_own_refusals_are_bare_and_close_the_connection() {
    let app = app();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            b"POST /api/users HTTP/1.1\r\nHost: x\r\nX-Request-Id: two-lengths\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                .to_vec(),
            400,
        ),
        (
            b"POST /api/users HTTP/1.1\r\nHost: x\r\nX-Request-Id: bad-length\r\nContent-Length: abc\r\n\r\n{}"
                .to_vec(),
            400,
        ),
        (
            format!(
                "GET /health?{} HTTP/1.1\r\nHost: x\r\nX-Request-Id: long-target\r\n\r\n",
                "a".repeat(100_000)
            )
            .into_bytes(),
            414,
        ),
        (
            format!(
                "GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: many-headers\r\n{}\r\n",
                (0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            )
            .into_bytes(),
            431,
        ),
        (
            b"GET /api/users/\xff HTTP/1.1\r\nHost: x\r\nX-Request-Id: bad-byte\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (request, status) in cases {
        // `raw` reads to the close: the refusal closes the connection.
        let bytes = raw(&app, &request);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert_eq!(status_of(&bytes), status, "{text}");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert_eq!(head_value(head, "x-request-id"), None, "{text}");
        assert_eq!(body, "", "{text}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
    still_serves(&app);
}

/// README "Who may do what": errors are always `{"error": {code, message,
/// request_id}}`, "503 when ... the connection cap is reached"; README "The
/// HTTP API": "Every response carries an `X-Request-Id`": the cap's 503
/// too, in its header and in its body.
#[test]
fn the_connection_caps_503_carries_a_request_id() {
    let app = app_with("max_connections = 1");
    let mut held = connect(&app);
    held.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = held.read(&mut buf).unwrap();
    assert_eq!(status_of(&buf[..n]), 200);
    let answer = one(&raw(&app, b""));
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"));
    let id = answer
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id: {answer:?}"));
    assert_eq!(answer.body["error"]["request_id"], id, "{answer:?}");
}

// --- Paths and queries -----------------------------------------------------------

/// README "The HTTP API" (404 "unknown id or route", never 500; the routes
/// are the table's); ARCHITECTURE "The request pipeline" (the path
/// percent-decoded before it reaches a handler). Encoded unreserved bytes
/// are the bytes themselves; `%00` or a byte that is not UTF-8 in an id is
/// 404; `..` and `.` segments are never resolved to another route; a
/// plugin's parameter gets the decoded text, `..` included, as a value.
#[test]
fn percent_encoded_bytes_and_dot_segments_in_the_path() {
    let app = app();
    let ada = id(&app.create_user("ada"));
    assert_eq!(ada, 1);
    let get = |path: &str| {
        exchange(
            &app,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
                admin()
            ),
        )
    };
    for path in ["/api/users/%31", "/api/%75sers/1"] {
        let answer = get(path);
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.body["username"], "ada", "{path}");
    }
    for path in [
        "/api/users/%00",
        "/api/users/1%00",
        "/api/users/%C3",
        "/api/users/1.0",
        "/api/users/1e0",
        "/api/users/1/../1",
        "/api/users/./1",
        "/api/users//1",
        "/api/spaces/../users/1",
        "/health%00",
        "/plugins/recorder/../recorder/events",
    ] {
        let answer = get(path);
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert_eq!(answer.body["error"]["code"], "not_found", "{path}");
    }
    let echo = |word: &str| {
        exchange(
            &app,
            &post(
                &format!("/plugins/recorder/echo/{word}"),
                "Connection: close\r\n",
                "{}",
            ),
        )
    };
    for (word, decoded) in [("%C3%A9t%C3%A9", "été"), ("..", ".."), ("%2E%2E", "..")] {
        let answer = echo(word);
        assert_eq!(answer.status, 200, "{word}: {answer:?}");
        assert_eq!(answer.body["word"], decoded, "{word}");
    }
    // Not UTF-8 once decoded: no such path.
    let answer = echo("%FF");
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(usernames(&app), ["ada"]);
    still_serves(&app);
}

/// RFC 3986 2.2 (a percent-encoded reserved character is data, not a
/// delimiter) and README "The HTTP API" (the routes of the table, 404 for
/// any other): `%2F` inside an id is part of that segment, never a
/// separator: `/api/spaces/1%2Fmembers` is not the member list of space 1,
/// `DELETE /api/spaces/1%2Fmembers%2F2` removes no membership.
#[test]
fn an_encoded_slash_is_part_of_its_segment_not_a_separator() {
    let app = app();
    app.create_user("one");
    let bob = id(&app.create_user("bob"));
    let space = id(&app.create_space("s", None));
    expect(
        201,
        app.put(
            &format!("/api/spaces/{space}/members/{bob}"),
            ADMIN,
            json!({"role": "reader"}),
        ),
    );
    let members = || app.db.count("SELECT COUNT(*) FROM memberships");
    let before = members();
    let answer = exchange(
        &app,
        &format!(
            "GET /api/spaces/{space}%2Fmembers HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
            admin()
        ),
    );
    assert_eq!(answer.status, 404, "the member list: {answer:?}");
    let answer = exchange(
        &app,
        &format!(
            "DELETE /api/spaces/{space}%2Fmembers%2F{bob} HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
            admin()
        ),
    );
    assert_eq!(answer.status, 404, "a membership removed: {answer:?}");
    assert_eq!(members(), before);
    let answer = exchange(
        &app,
        &post(
            "/plugins/recorder/echo/a%2Fb",
            "Connection: close\r\n",
            "{}",
        ),
    );
    // Nor is it in a plugin's parameter: no route has a `/` in a segment.
    assert_eq!(answer.status, 404, "{answer:?}");
}

/// README "The HTTP API": lists are "paginated by id: `?limit=N` (default
/// 50, at most 500) and `?after=<last id seen>`; a full page carries
/// `Link: </api/users?limit=N&after=ID>; rel="next"`". The query's own
/// edges: a repeated parameter counts once (the last) and the page and its
/// Link agree on it; percent-encoded digits are digits; `+` is a space
/// (not a number); names are case-sensitive (`LIMIT` is ignored); `;` is no
/// separator; empty pairs are skipped; what else the query holds never
/// reaches the Link.
#[test]
fn pagination_queries_with_repeats_encodings_and_separators() {
    let app = app();
    for name in ["a", "b", "c", "d"] {
        app.create_user(name);
    }
    let page = |query: &str| {
        exchange(
            &app,
            &format!(
                "GET /api/users?{query} HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
                admin()
            ),
        )
    };
    let ids = |answer: &Whole| -> Vec<i64> {
        answer
            .body
            .as_array()
            .unwrap_or_else(|| panic!("{answer:?}"))
            .iter()
            .map(|u| u["id"].as_i64().unwrap())
            .collect()
    };
    for (query, expected, link) in [
        ("limit=3&limit=1", vec![1], Some("limit=1&after=1")),
        ("limit=1&limit=3", vec![1, 2, 3], Some("limit=3&after=3")),
        (
            "after=3&after=1&limit=2",
            vec![2, 3],
            Some("limit=2&after=3"),
        ),
        ("limit=%32", vec![1, 2], Some("limit=2&after=2")),
        ("limit=%2B2", vec![1, 2], Some("limit=2&after=2")),
        ("limit=02&after=%31", vec![2, 3], Some("limit=2&after=3")),
        ("LIMIT=1&After=3", vec![1, 2, 3, 4], None),
        ("limit=2&&&after=1&", vec![2, 3], Some("limit=2&after=3")),
        (
            "x=%3E%22&limit=2&token=secret-in-query",
            vec![1, 2],
            Some("limit=2&after=2"),
        ),
    ] {
        let answer = page(query);
        assert_eq!(answer.status, 200, "{query}: {answer:?}");
        assert_eq!(ids(&answer), expected, "{query}");
        let expected_link = link.map(|l| format!("</api/users?{l}>; rel=\"next\""));
        assert_eq!(answer.header("link"), expected_link.as_deref(), "{query}");
    }
    for (query, field) in [
        ("limit=+2", "limit"),
        ("limit=2;after=1", "limit"),
        ("limit=99999999999999999999", "limit"),
        ("limit=1e2", "limit"),
        ("limit=%FF", "limit"),
        ("after=%00", "after"),
        ("after=0x1", "after"),
        ("limit=2&limit=0", "limit"),
    ] {
        let answer = page(query);
        assert_eq!(answer.status, 422, "{query}: {answer:?}");
        assert_eq!(answer.body["error"]["field"], field, "{query}");
    }
    assert_eq!(usernames(&app), ["a", "b", "c", "d"]);
}

// --- Connections -------------------------------------------------------------------

/// README "The HTTP API" ("over HTTP/1.1 or HTTP/2"); RFC 9112 9.3 (an
/// HTTP/1.0 connection persists only with `Connection: keep-alive`).
/// HTTP/1.0 without it: one answer, then the connection closes (the
/// second request is never answered); with it: both answered, in order, on
/// one connection; an HTTP/1.0 POST with a length writes its row.
#[test]
fn http_1_0_with_and_without_keep_alive() {
    let app = app();
    let bytes = raw(
        &app,
        b"GET /health HTTP/1.0\r\n\r\nGET /nope HTTP/1.0\r\n\r\n",
    );
    let all = responses(&bytes, &[]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(bytes.starts_with(b"HTTP/1.0 200"), "{all:?}");
    let bytes = raw(
        &app,
        b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /nope HTTP/1.0\r\n\r\n",
    );
    let all = responses(&bytes, &[]);
    assert_eq!(
        all.iter().map(|a| a.status).collect::<Vec<_>>(),
        [200, 404],
        "{all:?}"
    );
    assert_eq!(
        all[0]
            .header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("keep-alive")
    );
    let answer = exchange(
        &app,
        &format!(
            "POST /api/users HTTP/1.0\r\n{}Content-Length: {}\r\n\r\n{}",
            admin(),
            user_body("old").len(),
            user_body("old")
        ),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(usernames(&app), ["old"]);
}

/// README "The HTTP API" (every response carries an `X-Request-Id`);
/// RFC 9112 9.3.2 (pipelined requests are answered in the order received).
/// Five requests written at once on one connection, writes and errors among
/// them: five answers in order, each with an id of its own, its access log
/// line carrying that id, the writes in their order.
#[test]
fn pipelined_requests_are_answered_in_order_with_distinct_ids() {
    let app = app();
    let json = "Content-Type: application/json\r\n";
    let requests = [
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        post(
            "/api/users",
            &format!("{}{json}", admin()),
            &user_body("first"),
        ),
        "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: piped-404\r\n\r\n".to_owned(),
        format!("HEAD /api/users HTTP/1.1\r\nHost: x\r\n{}\r\n", admin()),
        post(
            "/api/users",
            &format!("{}{json}", admin()),
            &user_body("second"),
        ),
        post("/api/users", &format!("{}{json}", admin()), "{broken"),
        format!(
            "GET /api/users HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
            admin()
        ),
    ];
    let bytes = raw(&app, requests.concat().as_bytes());
    let all = responses(&bytes, &[false, false, false, true]);
    assert_eq!(
        all.iter().map(|a| a.status).collect::<Vec<_>>(),
        [200, 201, 404, 200, 201, 400, 200],
        "{all:?}"
    );
    assert_eq!(all[1].body["username"], "first");
    assert_eq!(all[4].body["username"], "second");
    assert_eq!(all[6].body.as_array().map(Vec::len), Some(2));
    let ids: Vec<&str> = all
        .iter()
        .map(|a| a.header("x-request-id").expect("an id"))
        .collect();
    assert_eq!(ids[2], "piped-404");
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    let expected = [
        ("GET", "/health", 200),
        ("POST", "/api/users", 201),
        ("GET", "/nope", 404),
        ("HEAD", "/api/users", 200),
        ("POST", "/api/users", 201),
        ("POST", "/api/users", 400),
        ("GET", "/api/users", 200),
    ];
    for (id, (method, path, status)) in ids.iter().zip(expected) {
        assert_line(&access_line(&app, id), method, path, status, id);
    }
    assert_eq!(usernames(&app), ["first", "second"]);
}

// --- HEAD and OPTIONS ------------------------------------------------------------------

/// README "The HTTP API": "`HEAD` is answered on every `GET` route,
/// `OPTIONS` lists a path's methods", plugin routes alike ("One route table
/// holds core and plugin routes alike", ARCHITECTURE). The exact `Allow`
/// of plugin routes; HEAD has the GET's length and no body; HEAD of a
/// POST-only route is 405 with its `Allow`; OPTIONS needs no credential on
/// a signed-in route; unknown routes are 404 for both.
#[test]
fn head_and_options_on_plugin_and_unknown_routes() {
    let app = app();
    app.create_user("ada"); // an event for the recorder's list
    let ask = |method: &str, path: &str| -> (Vec<u8>, Whole) {
        let bytes = raw(
            &app,
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let whole = responses(&bytes, &[method == "HEAD"]).remove(0);
        (bytes, whole)
    };
    let (_, get) = ask("GET", "/plugins/recorder/events");
    let (bytes, head) = ask("HEAD", "/plugins/recorder/events");
    assert_eq!(head.status, 200);
    assert!(
        bytes.ends_with(b"\r\n\r\n"),
        "HEAD has a body: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(
        head.header("content-length"),
        Some(get.text.len().to_string().as_str())
    );
    for (path, allow) in [
        ("/plugins/recorder/events", "GET, HEAD, OPTIONS"),
        ("/plugins/recorder/echo/x", "POST, OPTIONS"),
        ("/plugins/recorder/users", "POST, OPTIONS"),
        ("/plugins/gate/secrets/1", "GET, HEAD, OPTIONS"),
        ("/api/admin/plugins", "GET, HEAD, OPTIONS"),
        ("/api/spaces/1/members/2", "PUT, DELETE, OPTIONS"),
    ] {
        let (_, answer) = ask("OPTIONS", path);
        assert_eq!(answer.status, 204, "{path}: {answer:?}");
        assert_eq!(answer.header("allow"), Some(allow), "{path}");
        assert_eq!(answer.text, "", "{path}");
    }
    let (bytes, answer) = ask("HEAD", "/plugins/recorder/echo/x");
    assert_eq!(answer.status, 405, "{answer:?}");
    assert_eq!(answer.header("allow"), Some("POST, OPTIONS"));
    assert!(bytes.ends_with(b"\r\n\r\n"), "HEAD 405 has a body");
    let (bytes, answer) = ask("HEAD", "/plugins/gate/secrets/1");
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    assert!(bytes.ends_with(b"\r\n\r\n"), "HEAD 401 has a body");
    for method in ["HEAD", "OPTIONS"] {
        for path in ["/nope", "/plugins/nobody/x", "/plugins/recorder/nothing"] {
            let (_, answer) = ask(method, path);
            assert_eq!(answer.status, 404, "{method} {path}: {answer:?}");
            assert_eq!(answer.header("allow"), None, "{method} {path}");
        }
    }
    // Methods beyond the table: 405 with the path's Allow, never 500.
    for method in ["TRACE", "CONNECT", "PROPFIND", "get"] {
        let (_, answer) = ask(method, "/health");
        assert_eq!(answer.status, 405, "{method}: {answer:?}");
        assert_eq!(
            answer.header("allow"),
            Some("GET, HEAD, OPTIONS"),
            "{method}"
        );
    }
    assert_eq!(usernames(&app), ["ada"]);
}

// --- Request ids and the access log ---------------------------------------------------

/// README "The HTTP API": "Every response carries an `X-Request-Id` (the
/// client's own, if it sent a short printable one)". Two ids sent: the
/// first is the request's; an id with non-ASCII bytes is replaced by a
/// fresh one; the access line carries the id answered.
#[test]
fn the_request_id_answered_is_the_one_logged() {
    let app = app();
    let cases: [(&[u8], Option<&str>); 3] = [
        (
            b"X-Request-Id: first-id\r\nX-Request-Id: second-id\r\n",
            Some("first-id"),
        ),
        (b"X-Request-Id: caf\xc3\xa9\r\n", None),
        (
            b"x-request-id: lower-case-name\r\n",
            Some("lower-case-name"),
        ),
    ];
    for (header, echoed) in cases {
        let mut request = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
        request.extend_from_slice(header);
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        let answer = one(&raw(&app, &request));
        assert_eq!(answer.status, 200);
        let id = answer.header("x-request-id").expect("an id").to_owned();
        match echoed {
            Some(echoed) => assert_eq!(id, echoed),
            None => assert!(
                id.bytes().all(|b| b.is_ascii_graphic()) && !id.starts_with("caf"),
                "{id:?}"
            ),
        }
        assert_line(&access_line(&app, &id), "GET", "/health", 200, &id);
    }
}

/// README "The HTTP API": "a 500 says only that something failed, with
/// that id, and the log line with the same id has the details"; ARCHITECTURE
/// "The request pipeline" (the same). A route handler that panics: the 500
/// body has the client's id and nothing of the panic, and the log line
/// with that id names what failed and why (the panic's message).
#[test]
fn a_panicking_handlers_500_has_its_details_in_the_log_line_with_its_id() {
    let app = app();
    let answer = exchange(
        &app,
        "GET /plugins/recorder/panic HTTP/1.1\r\nHost: x\r\nX-Request-Id: my-panic-1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(answer.header("x-request-id"), Some("my-panic-1"));
    let line = logged_500(&app, &answer.body["error"]);
    assert!(
        !answer.text.contains("recorder's route panics"),
        "{answer:?}"
    );
    assert_line(
        &access_line(&app, "my-panic-1"),
        "GET",
        "/plugins/recorder/panic",
        500,
        "my-panic-1",
    );
    assert!(
        line.contains("the recorder's route panics"),
        "the line with the id lacks the panic's message: {line}"
    );
}

/// README "Configuration": "one line per request with status and latency
/// (target `app::http` ...)"; ARCHITECTURE "The request pipeline" (the
/// method, the path and the id). Every kind of answer leaves exactly one
/// line, `METHOD PATH STATUS N.Nms ID`, the path without its query, and no
/// credential appears anywhere in the app's output: not the admin token,
/// not a refused token, not a secret in the query.
#[test]
fn every_answer_leaves_one_access_line_of_the_same_shape_and_no_secret() {
    let app = app_with("body_limit = 200");
    app.create_user("one");
    let bad_token = "refused-token-4f1c";
    let close = "Connection: close\r\n";
    let with = |headers: &str| format!("{}{headers}{close}", admin());
    let cases: Vec<(String, &str, &str, u16)> = vec![
        (
            format!(
                "GET /health?token=secret-in-query-9d2 HTTP/1.1\r\nHost: x\r\nX-Request-Id: log-200\r\n{close}\r\n"
            ),
            "GET",
            "/health",
            200,
        ),
        (
            post(
                "/api/users",
                &with("X-Request-Id: log-201\r\n"),
                &user_body("logged"),
            ),
            "POST",
            "/api/users",
            201,
        ),
        (
            format!(
                "OPTIONS /api/users HTTP/1.1\r\nHost: x\r\nX-Request-Id: log-204\r\n{close}\r\n"
            ),
            "OPTIONS",
            "/api/users",
            204,
        ),
        (
            post("/api/users", &with("X-Request-Id: log-400\r\n"), "{nope"),
            "POST",
            "/api/users",
            400,
        ),
        (
            format!(
                "GET /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bad_token}\r\nX-Request-Id: log-401\r\n{close}\r\n"
            ),
            "GET",
            "/api/users",
            401,
        ),
        (
            format!(
                "GET /api/admin/plugins HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {USER_TOKEN}\r\nX-Request-Id: log-403\r\n{close}\r\n"
            ),
            "GET",
            "/api/admin/plugins",
            403,
        ),
        (
            format!(
                "GET /api/users/999 HTTP/1.1\r\nHost: x\r\n{}\r\n",
                with("X-Request-Id: log-404\r\n")
            ),
            "GET",
            "/api/users/999",
            404,
        ),
        (
            format!("DELETE /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: log-405\r\n{close}\r\n"),
            "DELETE",
            "/health",
            405,
        ),
        (
            format!(
                "POST /api/users HTTP/1.1\r\nHost: x\r\n{}Content-Length: 201\r\n\r\n",
                with("X-Request-Id: log-413\r\n")
            ),
            "POST",
            "/api/users",
            413,
        ),
        (
            post("/api/users", &with("X-Request-Id: log-422\r\n"), "{}"),
            "POST",
            "/api/users",
            422,
        ),
        (
            format!(
                "HEAD /api/users?limit=1 HTTP/1.1\r\nHost: x\r\n{}\r\n",
                with("X-Request-Id: log-head\r\n")
            ),
            "HEAD",
            "/api/users",
            200,
        ),
    ];
    for (request, method, path, status) in &cases {
        let bytes = raw(&app, request.as_bytes());
        assert_eq!(status_of(&bytes), *status, "{request:?}");
        let id = head_value(&String::from_utf8_lossy(&bytes), "x-request-id")
            .expect("an id")
            .to_owned();
        assert_line(&access_line(&app, &id), method, path, *status, &id);
    }
    still_serves(&app);
    let out = app.proc.output.text();
    for id in [
        "log-200", "log-201", "log-204", "log-400", "log-401", "log-403", "log-404", "log-405",
        "log-413", "log-422", "log-head",
    ] {
        let lines = out
            .lines()
            .filter(|l| l.contains(" INFO app::http: ") && l.ends_with(&format!(" {id}")))
            .count();
        assert_eq!(lines, 1, "{id}: {lines} lines");
    }
    for secret in [ADMIN_TOKEN, bad_token, USER_TOKEN, "secret-in-query-9d2"] {
        assert!(!out.contains(secret), "the log shows {secret:?}:\n{out}");
    }
    assert_eq!(usernames(&app), ["one", "logged"]);
}

// --- Authorization -------------------------------------------------------------------------

/// README "The HTTP API": "Everything under `/api/` needs `Authorization:
/// Bearer <token>` (the scheme in any case)". Around that: spaces around
/// the token are not part of it; a tab is no separator (RFC 9110 11.4: one
/// or more SP); a token with non-ASCII bytes or a list of two credentials
/// is no credential (401 on `/api/`, anonymous on a public route); a 100 KB
/// token is a plain 401; none of them is a 500 or writes a row.
#[test]
fn authorization_header_variants() {
    let app = app();
    let users = |authorization: &[u8]| -> u16 {
        let mut request = b"GET /api/users HTTP/1.1\r\nHost: x\r\n".to_vec();
        request.extend_from_slice(authorization);
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        status_of(&raw(&app, &request))
    };
    let token = ADMIN_TOKEN.as_bytes();
    let line = |parts: &[&[u8]]| -> Vec<u8> {
        let mut line = b"Authorization:".to_vec();
        for part in parts {
            line.extend_from_slice(part);
        }
        line.extend_from_slice(b"\r\n");
        line
    };
    for accepted in [
        line(&[b" Bearer ", token]),
        line(&[b"    Bearer    ", token, b"   "]),
        [b"authorization: Bearer ".as_slice(), token, b"\r\n"].concat(),
    ] {
        assert_eq!(
            users(&accepted),
            200,
            "{:?}",
            String::from_utf8_lossy(&accepted)
        );
    }
    let long = "x".repeat(100_000);
    for refused in [
        line(&[b" Bearer\t", token]),
        line(&[b" Bearer ", token, "\u{e9}".as_bytes()]),
        line(&[b" Bearer t\xc3\xb6ken"]),
        line(&[b" Bearer ", token, b", Bearer other"]),
        line(&[b" Bearer ", token, b" extra"]),
        line(&[b" Bearer ", long.as_bytes()]),
    ] {
        assert_eq!(
            users(&refused),
            401,
            "{:?}",
            String::from_utf8_lossy(&refused)
        );
    }
    // On a public route, an unreadable credential is no credential.
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\xc3\xb6ken\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(&raw(&app, request)), 200);
    // A NUL in the header: refused by the transport, never a 500.
    let mut request = b"GET /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ".to_vec();
    request.extend_from_slice(token);
    request.extend_from_slice(b"\x00\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&raw(&app, &request)), 400);
    // An identity that is refused writes nothing.
    let request = post(
        "/api/users",
        "Authorization: Bearer\te2e-admin-token\r\nConnection: close\r\n",
        &user_body("tabbed"),
    );
    assert_eq!(exchange(&app, &request).status, 401);
    assert_eq!(usernames(&app), Vec::<String>::new());
    still_serves(&app);
}

/// README "The HTTP API": "Everything under `/api/` needs `Authorization:
/// Bearer <token>`" (one credential); RFC 9110 5.3 (a field that is not a
/// list, such as `Authorization`, is not sent twice). Two `Authorization`
/// lines are ambiguous: which one a proxy checked and which one the app
/// uses may differ, so neither is taken: no credential.
#[test]
fn two_authorization_headers_are_refused() {
    let app = app();
    for pair in [
        format!("Authorization: Bearer {ADMIN_TOKEN}\r\nAuthorization: Bearer other\r\n"),
        format!("Authorization: Bearer other\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"),
    ] {
        let request = post(
            "/api/users",
            &format!("{pair}Connection: close\r\n"),
            &user_body("twice"),
        );
        let status = status_of(&raw(&app, request.as_bytes()));
        assert!(matches!(status, 400 | 401), "{pair:?}: {status}");
    }
    assert_eq!(usernames(&app), Vec::<String>::new());
}

// --- Bodies: content types and JSON --------------------------------------------------------

/// README "The HTTP API": "JSON in, JSON out"; "400 if it is not JSON";
/// README "Who may do what": "400 malformed JSON ... 422 missing field,
/// wrong type or invalid value (with `field`)"; README: text fields have
/// "no NUL character". The body is JSON whatever the `Content-Type` says
/// (none, form, UTF-16 declared): only UTF-8 JSON is read; a BOM, UTF-16,
/// form data, lone surrogates, invalid UTF-8, trailing data, numbers out of
/// range and nesting past the parser's limit are 400; a float, a string or
/// an integer beyond i64 where an id goes is 422 naming the field;
/// duplicate keys keep the last; an escaped surrogate pair is its
/// character. Exactly the accepted rows are written, and the server lives.
#[test]
fn content_types_and_json_edge_cases() {
    let app = app();
    let send = |body: &[u8], content_type: &str, path: &str| -> Whole {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{}{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n",
            admin(),
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        one(&raw(&app, &request))
    };
    let json_type = "Content-Type: application/json\r\n";
    // Accepted: no content type at all, or any.
    let answer = send(user_body("untyped").as_bytes(), "", "/api/users");
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer = send(
        user_body("texty").as_bytes(),
        "Content-Type: text/plain\r\n",
        "/api/users",
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    let utf16: Vec<u8> = user_body("wide")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let bom = [b"\xef\xbb\xbf".as_slice(), user_body("bom").as_bytes()].concat();
    let nested_arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_objects = format!("{}1{}", r#"{"a":"#.repeat(5_000), "}".repeat(5_000));
    let bad_requests: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a BOM", bom, json_type),
        (
            "UTF-16",
            utf16,
            "Content-Type: application/json; charset=utf-16\r\n",
        ),
        (
            "form data",
            b"username=form&email=form%40example.org".to_vec(),
            "Content-Type: application/x-www-form-urlencoded\r\n",
        ),
        ("deep arrays", nested_arrays.into_bytes(), json_type),
        ("deep objects", nested_objects.into_bytes(), json_type),
        (
            "a lone surrogate",
            br#"{"username":"sur\ud800","email":"sur@example.org"}"#.to_vec(),
            json_type,
        ),
        (
            "a lone low surrogate",
            br#"{"username":"sur\udc00x","email":"sur@example.org"}"#.to_vec(),
            json_type,
        ),
        (
            "invalid UTF-8",
            b"{\"username\":\"inv\xff\",\"email\":\"inv@example.org\"}".to_vec(),
            json_type,
        ),
        (
            "trailing data",
            format!("{} x", user_body("trail")).into_bytes(),
            json_type,
        ),
        (
            "two documents",
            format!("{}{{}}", user_body("two")).into_bytes(),
            json_type,
        ),
    ];
    for (what, body, content_type) in bad_requests {
        let answer = send(&body, content_type, "/api/users");
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        assert_eq!(answer.body["error"]["code"], "bad_request", "{what}");
        still_serves(&app);
    }
    let answer = send(
        br#"{"name":"inf","access":"open","parent_id":1e400}"#,
        json_type,
        "/api/spaces",
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    for parent in ["1.0", "-0", "18446744073709551616", "\"1\"", "true"] {
        let body = format!(r#"{{"name":"f","access":"open","parent_id":{parent}}}"#);
        let answer = send(body.as_bytes(), json_type, "/api/spaces");
        assert_eq!(answer.status, 422, "{parent}: {answer:?}");
        assert_eq!(answer.body["error"]["field"], "parent_id", "{parent}");
    }
    let answer = send(
        br#"{"username":"nul\u0000","email":"nul@example.org"}"#,
        json_type,
        "/api/users",
    );
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.body["error"]["field"], "username");
    let answer = send(
        br#"{"username":"dupa","username":"dupb","email":"dup@example.org"}"#,
        json_type,
        "/api/users",
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.body["username"], "dupb");
    let answer = send(
        br#"{"username":"smile\ud83d\ude00","email":"smile@example.org"}"#,
        json_type,
        "/api/users",
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.body["username"], "smile\u{1F600}");
    for body in ["null", "[]", "\"str\"", "  \r\n "] {
        let answer = send(body.as_bytes(), json_type, "/api/users");
        assert_eq!(answer.status, 422, "{body:?}: {answer:?}");
        assert_eq!(answer.body["error"]["field"], "body", "{body:?}");
    }
    assert_eq!(
        usernames(&app),
        ["untyped", "texty", "dupb", "smile\u{1F600}"]
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM spaces"), 0);
    still_serves(&app);
}
