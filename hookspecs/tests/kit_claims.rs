//! The SDK's outgoing HTTP client, as a plugin author relies on it
//! (README "After-commit hooks: talking to the world": "A plugin talking
//! HTTP uses the client the SDK re-exports", and the rustdoc of
//! `hookspecs::client`): what `send`/`send_with` send and answer, at the
//! edges of their caps, what a failure says, what `url` and `http_client`
//! refuse. Against raw HTTP/1.1 servers on 127.0.0.1, no app.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookspecs::client::{self, MAX_BODY, Outgoing};

/// One request a [`Server`] read.
#[derive(Clone, Debug)]
struct Got {
    /// The connection it came on (0, 1, ... in accept order).
    connection: usize,
    /// `METHOD target HTTP/1.1`.
    line: String,
    /// Headers, name lowercased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What a [`Server`] answers one request with: raw bytes, or nothing
/// (the connection is closed).
type Respond = dyn Fn(&Got) -> Option<Vec<u8>> + Send + Sync;

/// A raw HTTP/1.1 server: keeps each connection open for further requests
/// (keep-alive) until the client closes it or an answer is `None`.
struct Server {
    base: String,
    got: Arc<Mutex<Vec<Got>>>,
    connections: Arc<AtomicUsize>,
}

impl Server {
    fn start(respond: impl Fn(&Got) -> Option<Vec<u8>> + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let respond: Arc<Respond> = Arc::new(respond);
        let (record, count) = (got.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let (record, respond) = (record.clone(), respond.clone());
                std::thread::spawn(move || serve(stream, n, &record, &*respond));
            }
        });
        Server {
            base,
            got,
            connections,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, connection: usize, record: &Mutex<Vec<Got>>, respond: &Respond) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let got = Got {
            connection,
            line: line.trim_end().to_owned(),
            headers,
            body,
        };
        record.lock().unwrap().push(got.clone());
        match respond(&got) {
            Some(answer) => {
                if writer.write_all(&answer).is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

/// `status` with `headers` and `body` (Content-Length set).
fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    hookspecs::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// rustdoc of `hookspecs::client` / `client::send`: "one request, its
/// whole answer"; `Answer`: "Its status. Its headers, name and value. Its
/// body." A 5xx is an answer like any other (the plugin decides; README's
/// courier and webhooks check `200..300` themselves), with its headers and
/// its body exactly.
#[test]
fn a_non_2xx_status_is_an_answer_with_its_headers_and_whole_body() {
    let server = Server::start(|_| {
        Some(answer(
            "503 Service Unavailable",
            &[("Retry-After", "7"), ("X-Reason", "busy; try later")],
            b"{\"error\":\"busy\"}",
        ))
    });
    let sent = block_on(client::send(Outgoing::post(
        format!("{}/hook", server.base),
        "{}",
    )))
    .expect("a 503 is an answer, not an error");
    assert_eq!(sent.status, 503);
    assert_eq!(sent.body, b"{\"error\":\"busy\"}");
    let header = |name: &str| {
        sent.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(header("retry-after"), ["7"]);
    assert_eq!(header("x-reason"), ["busy; try later"]);
    assert_eq!(header("content-length"), ["16"]);
    assert_eq!(server.got().len(), 1);
}

/// README ("Native or sandboxed?", outbound HTTP): "A redirect is the
/// answer, never followed"; rustdoc of `hookspecs::client`: "no redirect
/// followed". Natively too: a 307 and a 301 come back as they are, with
/// their `Location`, and the place they point to never hears a request.
#[test]
fn a_redirect_is_the_answer_and_never_followed() {
    let target = Server::start(|_| Some(answer("200 OK", &[], b"followed")));
    let location = format!("{}/elsewhere", target.base);
    let at = location.clone();
    let redirector = Server::start(move |got| {
        let status = if got.line.starts_with("POST") {
            "307 Temporary Redirect"
        } else {
            "301 Moved Permanently"
        };
        Some(answer(status, &[("Location", &at)], b""))
    });
    let url = format!("{}/hook", redirector.base);
    let post = block_on(client::send(Outgoing::post(&url, "{\"a\":1}"))).unwrap();
    assert_eq!(post.status, 307);
    assert!(
        post.headers
            .iter()
            .any(|(n, v)| n == "location" && *v == location),
        "{:?}",
        post.headers
    );
    let get = Outgoing {
        method: "GET".into(),
        url: url.clone(),
        ..Outgoing::default()
    };
    assert_eq!(block_on(client::send(get)).unwrap().status, 301);
    assert_eq!(redirector.got().len(), 2);
    assert!(target.got().is_empty(), "followed: {:?}", target.got());
    assert_eq!(target.connections(), 0);
}

/// rustdoc of `client::send`: "at most [`MAX_BODY`] bytes each way"; its
/// errors: "a body over MAX_BODY (413) or an answer over it (502)". The
/// cap is inclusive both ways: a request body of exactly 1 MiB goes out
/// whole, an answer of exactly 1 MiB is read whole; an answer one byte
/// over it, sent chunked (no `Content-Length` to read the size from), is
/// the 502 `response_too_large` naming the cap and the server.
#[test]
fn bodies_of_exactly_the_cap_pass_each_way_and_a_chunked_answer_over_it_is_refused() {
    let server = Server::start(|got| {
        if got.line.contains("/exact") {
            Some(answer("200 OK", &[], &vec![b'a'; MAX_BODY]))
        } else {
            // Chunked: 1 MiB + 1 byte in chunks of 64 KiB and one byte.
            let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let chunk = 64 * 1024;
            for _ in 0..MAX_BODY / chunk {
                bytes.extend_from_slice(format!("{chunk:x}\r\n").as_bytes());
                bytes.extend(std::iter::repeat_n(b'b', chunk));
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"1\r\nb\r\n0\r\n\r\n");
            Some(bytes)
        }
    });
    let body: Vec<u8> = (0..MAX_BODY).map(|i| (i % 251) as u8).collect();
    let exact = block_on(client::send(Outgoing::post(
        format!("{}/exact", server.base),
        body.clone(),
    )))
    .expect("exactly the cap each way");
    assert_eq!(exact.status, 200);
    assert_eq!(exact.body.len(), MAX_BODY);
    let got = server.got();
    assert_eq!(got[0].header("content-length"), [MAX_BODY.to_string()]);
    assert!(got[0].body == body, "the request body arrived altered");

    let over = block_on(client::send(Outgoing::post(
        format!("{}/over", server.base),
        "{}",
    )))
    .unwrap_err();
    let host = server.base.trim_start_matches("http://");
    assert_eq!(
        (over.status, over.code.as_str()),
        (502, "response_too_large")
    );
    assert_eq!(
        over.message,
        format!("the answer of {host} is over 1048576 bytes (1 MiB), the most read")
    );
}

/// `Outgoing`: "`GET`, `POST`, ..."; "An absolute `http://` or `https://`
/// URL"; "Its headers, name and value, in order". The request goes out as
/// built: its method, its path and query as written, every header (a
/// repeated name included) in the order given, and `Host` the URL's.
#[test]
fn a_request_goes_out_as_built_method_target_and_headers_in_order() {
    let server = Server::start(|_| Some(answer("204 No Content", &[], b"")));
    let request = Outgoing {
        method: "PUT".into(),
        url: format!("{}/a/b%20c?x=1&y=two#frag", server.base),
        headers: vec![
            ("X-One".into(), "1".into()),
            ("X-Two".into(), "2".into()),
            ("x-one".into(), "3".into()),
        ],
        body: b"payload".to_vec(),
    };
    let sent = block_on(client::send(request)).unwrap();
    assert_eq!((sent.status, sent.body.len()), (204, 0));
    let got = server.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].line, "PUT /a/b%20c?x=1&y=two HTTP/1.1");
    assert_eq!(got[0].header("x-one"), ["1", "3"]);
    assert_eq!(got[0].header("x-two"), ["2"]);
    assert_eq!(
        got[0].header("host"),
        [server.base.trim_start_matches("http://")]
    );
    assert_eq!(got[0].body, b"payload");
}

/// rustdoc of `client::send`: errors "a failure to connect or to read
/// (502)"; README: `hookspecs::client::describe` "spells out an error with
/// its causes". A refused connection and a server that closes without an
/// answer are each a 502 `bad_gateway` naming the server and the cause
/// (not only hyper-util's bare "client error (Connect)").
#[test]
fn a_failure_to_connect_or_to_read_is_a_502_naming_the_server_and_the_cause() {
    let port = closed_port();
    let refused = block_on(client::send(Outgoing::post(
        format!("http://127.0.0.1:{port}/hook"),
        "{}",
    )))
    .unwrap_err();
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (502, "bad_gateway")
    );
    let prefix = format!("the request to 127.0.0.1:{port} failed: client error (Connect): ");
    assert!(refused.message.starts_with(&prefix), "{}", refused.message);
    assert!(
        refused
            .message
            .to_lowercase()
            .contains("connection refused"),
        "{}",
        refused.message
    );

    let closing = Server::start(|_| None);
    let closed = block_on(client::send(Outgoing::post(
        format!("{}/hook", closing.base),
        "{}",
    )))
    .unwrap_err();
    let host = closing.base.trim_start_matches("http://");
    assert_eq!((closed.status, closed.code.as_str()), (502, "bad_gateway"));
    assert!(
        closed
            .message
            .starts_with(&format!("the request to {host} failed: ")),
        "{}",
        closed.message
    );
    assert!(
        closed.message.len() > format!("the request to {host} failed: ").len() + 20,
        "a cause: {}",
        closed.message
    );
    assert_eq!(closing.got().len(), 1);
}

/// rustdoc of `client::send`: a failure to connect is a 502 "naming the
/// host and port, never the path, the query or a `user:password@`" (the
/// message ends up in a delivery's `last_error`, the admin API and the
/// log).
#[test]
fn an_error_never_writes_out_the_password_of_a_url() {
    let port = closed_port();
    let url = format!("http://hook-user:pa55-s3cret@127.0.0.1:{port}/hook?token=t0k3n");
    let refused = block_on(client::send(Outgoing::post(&url, "{}"))).unwrap_err();
    assert_eq!(refused.status, 502, "{}", refused.message);
    assert!(
        refused.message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        refused.message
    );
    assert!(
        !refused.message.contains("pa55-s3cret"),
        "the password in: {}",
        refused.message
    );
    assert!(!refused.message.contains("t0k3n"), "{}", refused.message);
}

/// rustdoc of `client::url`: "an `http://` or `https://` URL ... 400
/// `bad_request`, saying why, for anything else". The scheme in any case
/// is a scheme; anything else is refused naming the URL as given.
#[test]
fn url_takes_http_and_https_in_any_case_and_refuses_the_rest_naming_it() {
    for good in [
        "http://127.0.0.1:9/hook",
        "https://hooks.example.org/events?x=1",
        "HTTPS://Hooks.Example.org/e",
    ] {
        let uri = client::url(good).unwrap_or_else(|e| panic!("{good}: {}", e.message));
        assert!(matches!(uri.scheme_str(), Some("http" | "https")), "{good}");
    }
    for bad in [
        "ftp://127.0.0.1/hook",
        "mailto:ops@example.org",
        "/relative/path",
        "127.0.0.1:9/hook",
        "http://exa mple.org/",
        "",
    ] {
        let refused = client::url(bad).expect_err(bad);
        assert_eq!(
            (refused.status, refused.code.as_str()),
            (400, "bad_request"),
            "{bad}"
        );
        assert!(
            refused.message.starts_with(&format!("URL {bad:?}: ")),
            "{bad}: {}",
            refused.message
        );
    }
}

/// rustdoc of `client::send`: "A malformed request (400)". A method or a
/// header that cannot go on the wire is refused naming it, before any
/// connection is made.
#[test]
fn a_bad_method_or_header_is_a_400_naming_it_and_nothing_is_sent() {
    let server = Server::start(|_| Some(answer("200 OK", &[], b"")));
    let url = format!("{}/hook", server.base);
    let cases = [
        (
            Outgoing {
                method: "GE T".into(),
                url: url.clone(),
                ..Outgoing::default()
            },
            "\"GE T\" is not an HTTP method".to_owned(),
        ),
        (
            Outgoing::post(&url, "{}").header("X-Sig", "a\r\nInjected: yes"),
            "the value of header X-Sig is not valid".to_owned(),
        ),
        (
            Outgoing::post(&url, "{}").header("Bad Name", "v"),
            "\"Bad Name\" is not a header name".to_owned(),
        ),
        (
            Outgoing::post(&url, vec![b'x'; MAX_BODY + 1]),
            format!(
                "the request's body is {} bytes, over the limit of {MAX_BODY} bytes (1 MiB)",
                MAX_BODY + 1
            ),
        ),
    ];
    for (request, why) in cases {
        let refused = block_on(client::send(request)).unwrap_err();
        assert!(matches!(refused.status, 400 | 413), "{}", refused.message);
        assert_eq!(refused.message, why);
    }
    assert_eq!(server.connections(), 0, "{:?}", server.got());
}

/// rustdoc of `http_client`: "Build it once (at startup, in the plugin's
/// constructor) and keep it: it pools connections". Three requests one
/// after the other through one client go over one connection.
#[test]
fn one_client_sends_its_requests_over_one_pooled_connection() {
    let server = Server::start(|_| Some(answer("200 OK", &[], b"ok")));
    let http = client::http_client(None).unwrap();
    block_on(async {
        for n in 0..3 {
            let request = Outgoing::post(format!("{}/hook/{n}", server.base), "{}");
            let sent = client::send_with(&http, request).await.unwrap();
            assert_eq!((sent.status, sent.body.as_slice()), (200, &b"ok"[..]));
        }
    });
    let got = server.got();
    let lines: Vec<&str> = got.iter().map(|g| g.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "POST /hook/0 HTTP/1.1",
            "POST /hook/1 HTTP/1.1",
            "POST /hook/2 HTTP/1.1"
        ]
    );
    assert!(got.iter().all(|g| g.connection == 0), "{got:?}");
    assert_eq!(server.connections(), 1);
}

/// rustdoc of `client::send` (native): "without a time limit of its own:
/// wrap it in `tokio::time::timeout`". Wrapped, a server that never
/// answers ends the call at the limit (not sooner, not much later), and
/// the request had been sent.
#[test]
fn a_send_wrapped_in_a_timeout_ends_at_its_limit_against_a_silent_server() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Mutex::new(rx);
    let server = Server::start(move |_| {
        // Holds the answer until the test ends (bounded).
        let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(20));
        None
    });
    let limit = Duration::from_millis(400);
    let started = Instant::now();
    let outcome = block_on(async {
        let request = Outgoing::post(format!("{}/hook", server.base), "{}");
        hookspecs::tokio::time::timeout(limit, client::send(request)).await
    });
    let took = started.elapsed();
    assert!(outcome.is_err(), "answered: {outcome:?}");
    assert!(
        took >= limit && took < limit + Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(server.got().len(), 1);
    drop(tx);
}

/// rustdoc of `http_client`: "every certificate in `ca_file` (PEM, one or
/// more `BEGIN CERTIFICATE` blocks)"; errors: "`ca_file` cannot be read,
/// holds no PEM certificate, or holds one that cannot serve as a trust
/// anchor"; `CaFileError` displays as "CA file <path>: <why>". An empty
/// file and one holding only a private key hold no certificate; a
/// certificate block whose bytes are not a certificate is refused naming
/// which one; a folder cannot be read.
#[test]
fn a_ca_file_without_a_usable_certificate_is_refused_naming_the_file_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let empty = write("empty.pem", "");
    let key_only = write(
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBnWkR6BHsOlqyLr4zGlnNcoJbXbWQcnHrGe4XyNI4Ep\n-----END PRIVATE KEY-----\n",
    );
    // Valid base64, but the bytes ("hello world") are no certificate.
    let not_der = write(
        "not-der.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let cases = [
        (&empty, "holds no PEM certificate"),
        (&key_only, "holds no PEM certificate"),
        (&not_der, "certificate 1 is unusable"),
    ];
    for (path, why) in cases {
        let refused = client::http_client(Some(path)).err().unwrap();
        assert_eq!(&refused.path, path);
        assert!(
            refused.why.starts_with(why),
            "{}: {}",
            path.display(),
            refused
        );
        assert!(
            refused
                .to_string()
                .starts_with(&format!("CA file {}: {why}", path.display())),
            "{refused}"
        );
    }
    let folder = client::http_client(Some(dir.path())).err().unwrap();
    assert!(folder.why.starts_with("cannot be read"), "{folder}");
}
