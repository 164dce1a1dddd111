//! The shipped plugins (README "The shipped plugins" and each plugin's own
//! doc comment under `plugins/*`) taken to their edges: the real `app`
//! binary with exactly the shipped plugins, checked through their routes
//! and their own tables (`plugin_<name>_*`), on SQLite and PostgreSQL.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::*;
use hookspecs::hmac::{Hmac, Mac};
use hookspecs::sha2::{Digest, Sha256};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The real app with the shipped plugins only, and `config` (TOML, may be
/// empty) as its config file.
fn shipped(config: &str) -> Options {
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
    if config.is_empty() {
        options
    } else {
        options.config(config)
    }
}

fn start(backend: Backend) -> TestApp {
    TestApp::start_with(backend, shipped(""))
}

fn start_with(backend: Backend, config: &str) -> TestApp {
    TestApp::start_with(backend, shipped(config))
}

/// Creates a space as `token`; its id.
fn space_as(
    app: &TestApp,
    token: Option<&str>,
    name: &str,
    access: &str,
    parent: Option<i64>,
    role: &str,
) -> i64 {
    let body = json!({"name": name, "access": access, "parent_id": parent, "default_role": role});
    id(&expect(201, app.post("/api/spaces", token, body)))
}

/// Creates a space as the admin; its id.
fn space(app: &TestApp, name: &str, access: &str, parent: Option<i64>, role: &str) -> i64 {
    space_as(app, ADMIN, name, access, parent, role)
}

/// `PUT /api/spaces/:space/members/:user` as the admin: the status.
fn put(app: &TestApp, space: i64, user: i64, role: &str) -> u16 {
    let path = format!("/api/spaces/{space}/members/{user}");
    let (status, body) = app.put(&path, ADMIN, json!({"role": role}));
    assert!(
        status == 200 || status == 201,
        "PUT {path}: {status} {body}"
    );
    status
}

/// Every membership, as `space:user:role`, by space then user.
fn memberships(app: &TestApp) -> Vec<String> {
    app.db.column(
        "SELECT space_id || ':' || user_id || ':' || role FROM memberships \
         ORDER BY space_id, user_id",
    )
}

/// `space:user:role` of the arguments, in the order of [`memberships`]
/// when given sorted by space then user.
fn rows(items: &[(i64, i64, &str)]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort_by_key(|(s, u, _)| (*s, *u));
    items
        .iter()
        .map(|(s, u, r)| format!("{s}:{u}:{r}"))
        .collect()
}

/// The audit log's rows, oldest first, as `kind entity by actor`.
fn audit(app: &TestApp) -> Vec<String> {
    app.db.column(
        "SELECT kind || ' ' || entity || ' by ' || COALESCE(actor, '-') \
         FROM plugin_audit_log_entries ORDER BY id",
    )
}

/// The audit rows from index `from` on, sorted (for the changes of one
/// operation, whose order the docs leave open).
fn audit_since(app: &TestApp, from: usize) -> Vec<String> {
    let mut rows: Vec<String> = audit(app).into_iter().skip(from).collect();
    rows.sort();
    rows
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items
}

/// Mints a key for `user` as the admin: the key.
fn key_for(app: &TestApp, user: i64) -> String {
    let minted = expect(
        201,
        app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": user})),
    );
    minted["key"].as_str().unwrap().to_owned()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `2026-01-02T03:04:05.123456Z`: RFC 3339, UTC, with microseconds.
fn is_rfc3339_micros(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z'
        && text
            .chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 26].contains(&i) || c.is_ascii_digit())
}

/// A chain of `depth` confidential spaces, each inside the one before
/// (default role `reader`): their ids, top first.
fn chain(app: &TestApp, depth: usize) -> Vec<i64> {
    let mut ids: Vec<i64> = Vec::with_capacity(depth);
    for level in 0..depth {
        let parent = ids.last().copied();
        ids.push(space(
            app,
            &format!("level {level}"),
            "confidential",
            parent,
            "reader",
        ));
    }
    ids
}

// ---------------------------------------------------------------------------
// A webhook receiver of our own, at the byte level: it records the request
// line and every header, and can also close the connection without an
// answer (the harness's receiver answers or hangs).
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Status(u16),
    /// Closes the connection once the request was read, answering nothing.
    Close,
    /// Answers nothing and keeps the connection open (up to 30 s).
    Hang,
}

#[derive(Clone, Debug)]
struct Got {
    /// The request line: `POST /path?query HTTP/1.1`.
    line: String,
    /// Headers, names lower-cased, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    json: Value,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Decide = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

struct RawReceiver {
    /// `http://127.0.0.1:PORT`.
    base: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl RawReceiver {
    /// Answers each request as `decide` says of its JSON body.
    fn start(decide: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> RawReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let decide: Decide = Arc::new(decide);
        let record = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (record, decide) = (record.clone(), decide.clone());
                std::thread::spawn(move || connection(stream, &record, &decide));
            }
        });
        RawReceiver { base, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (bounded) until `n` requests arrived.
    fn wait_for(&self, n: usize) -> Vec<Got> {
        let start = Instant::now();
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "waited {DEADLINE:?} for {n} requests, got {}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Serves one connection: request after request, until it closes.
fn connection(mut stream: TcpStream, record: &Mutex<Vec<Got>>, decide: &Decide) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    // Bounded: each request consumes bytes, and each read waits at most 30 s.
    for _ in 0..1000 {
        let head_end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.lines();
        let line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let reply = decide(&json);
        record.lock().unwrap_or_else(|e| e.into_inner()).push(Got {
            line,
            headers,
            body,
            json,
        });
        match reply {
            Reply::Close => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            Reply::Hang => {
                while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
                return;
            }
            Reply::Status(status) => {
                let answer = match status {
                    204 => format!("HTTP/1.1 {status} No Content\r\n\r\n"),
                    302 => format!(
                        "HTTP/1.1 {status} Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\n\
                         content-length: 2\r\n\r\n{{}}"
                    ),
                    _ => format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 2\r\n\r\n{{}}"),
                };
                if stream.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// hello_world
// ---------------------------------------------------------------------------

/// README, "The shipped plugins": `hello_world` "logs a greeting at startup
/// (`[plugins.hello_world] greeting = "..."`) and `created user <name>` for
/// each new user"; its doc comment: "logs a greeting when loaded". Without a
/// table the greeting is its default ("Hello, world!"), logged once; each new
/// user is logged once, and a refused creation (a duplicate) is not.
#[test]
fn hello_world_logs_its_default_greeting_once_and_each_new_user_once() {
    let app = start(Backend::Sqlite);
    app.create_user("ada");
    app.create_user("bob");
    let dup = json!({"username": "ada", "email": "other@example.org"});
    expect_error(409, "conflict", app.post("/api/users", ADMIN, dup));
    let log = app.proc.output.text();
    // The plugin's lines: `INFO app_plugin_hello_world: <text> plugin="hello_world"`.
    let count = |what: &str| {
        let line = format!("app_plugin_hello_world: {what} plugin=\"hello_world\"");
        log.lines().filter(|l| l.ends_with(&line)).count()
    };
    assert_eq!(count("Hello, world!"), 1, "{log}");
    assert_eq!(count("created user ada"), 1, "{log}");
    assert_eq!(count("created user bob"), 1, "{log}");
    assert_eq!(log.matches("created user").count(), 2, "{log}");
}

/// README: "`GET /plugins/hello_world/user` answers who you are"; the
/// identity (`user_id`, `name`, `admin`, `via`) of the admin and of a key's
/// user, whose name follows a rename (the key acts as its user: "acting as
/// their user"). README, "The HTTP API": "405 wrong method (with `allowed`
/// and `Allow`)", "`HEAD` is answered on every `GET` route".
#[test]
fn hello_world_user_route_answers_exactly_who_the_caller_is() {
    let app = start(Backend::Sqlite);
    let ada = id(&app.create_user("ada"));
    let key = key_for(&app, ada);
    assert_eq!(
        expect(200, app.get("/plugins/hello_world/user", ADMIN)),
        json!({"user_id": null, "name": "admin", "admin": true, "via": "app"})
    );
    assert_eq!(
        expect(200, app.get("/plugins/hello_world/user", Some(&key))),
        json!({"user_id": ada, "name": "ada", "admin": false, "via": "api_keys"})
    );
    let rename = json!({"username": "ada2"});
    expect(
        200,
        app.patch(&format!("/api/users/{ada}"), Some(&key), rename),
    );
    assert_eq!(
        expect(200, app.get("/plugins/hello_world/user", Some(&key)))["name"],
        "ada2"
    );
    let head = app
        .try_whole("HEAD", "/plugins/hello_world/user", Some(&key), None)
        .unwrap();
    assert_eq!((head.status, head.text.as_str()), (200, ""));
    let post = app
        .try_whole("POST", "/plugins/hello_world/user", Some(&key), Some("{}"))
        .unwrap();
    assert_eq!(post.status, 405, "{}", post.text);
    assert_eq!(
        post.body["error"]["code"], "method_not_allowed",
        "{}",
        post.text
    );
    let allow = post.header("allow").unwrap_or_default().to_owned();
    assert!(allow.contains("GET") && !allow.contains("POST"), "{allow}");
    expect_error(
        401,
        "unauthorized",
        app.get("/plugins/hello_world/user", Some("nobody")),
    );
}

/// README, "Write a plugin": "An unknown key or a wrong type fails that
/// plugin with the key named; the app starts without it (unless it is
/// `required`)" (hello_world is the README's example of a typed
/// configuration). Its route is then not served.
#[test]
fn hello_world_with_a_misspelt_or_mistyped_key_fails_naming_it_and_the_rest_runs() {
    for (table, named) in [
        ("greting = \"hi\"", "`greting`"),
        ("greeting = 5", "`greeting`"),
    ] {
        let config = format!("[plugins.hello_world]\n{table}\n");
        let app = start_with(Backend::Sqlite, &config);
        let status = plugin_status(&app, "hello_world");
        assert!(
            status.starts_with("failed") && status.contains(named),
            "{table}: {status}"
        );
        assert_eq!(plugin_status(&app, "audit_log"), "loaded");
        expect_error(
            404,
            "not_found",
            app.get("/plugins/hello_world/user", ADMIN),
        );
        app.create_user("ada");
        assert!(!app.proc.output.text().contains("created user ada"));
    }
}

/// README, "Write a plugin": typed settings fail a plugin on an unknown
/// key; a plugin exported without `config` reads its table itself
/// (`ctx.plugin_config`, `startup.config()`), so the app checks nothing of
/// it: audit_log and autoinvite, which read none, load with keys in theirs.
#[test]
fn a_plugin_without_typed_settings_is_given_its_table_unchecked() {
    let config =
        "[plugins.audit_log]\nretention_days = 30\n\n[plugins.autoinvite]\nenabled = false\n";
    let app = start_with(Backend::Sqlite, config);
    assert_eq!(plugin_status(&app, "audit_log"), "loaded");
    assert_eq!(plugin_status(&app, "autoinvite"), "loaded");
}

// ---------------------------------------------------------------------------
// api_keys
// ---------------------------------------------------------------------------

e2e! {
    /// README: "the key is shown once (only its hash is stored)"; api_keys'
    /// doc: "only its SHA-256 is stored", "`POST /plugins/api_keys/keys`
    /// mints a key for the acting user (an admin names the user)"; README:
    /// "A signed-in user mints more keys for themselves with `POST
    /// /plugins/api_keys/keys` and no body". Each mint is exactly one row
    /// (`id` as answered, `user_id`, the key's SHA-256, `created_at`), and
    /// each key acts as its own user.
    fn api_keys_each_mint_is_one_exact_row_and_each_key_is_its_user(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let bob = id(&app.create_user("bob"));
        let first = expect(201, app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": ada})));
        let key = first["key"].as_str().unwrap().to_owned();
        assert_eq!(first["user_id"], ada);
        assert_eq!(first.as_object().unwrap().len(), 3, "id, user_id, key: {first}");
        // No body at all: for herself.
        let (status, second) = app.raw("POST", "/plugins/api_keys/keys", Some(&key), None);
        assert_eq!(status, 201, "{second}");
        assert_eq!(second["user_id"], ada);
        let third = expect(201, app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": bob})));
        let minted = [&first, &second, &third];
        let keys: Vec<String> = minted.iter().map(|m| m["key"].as_str().unwrap().to_owned()).collect();
        for k in &keys {
            assert!(
                k.len() == 51 && k.starts_with("ak_") && k[3..].chars().all(|c| c.is_ascii_hexdigit()),
                "{k}"
            );
        }
        assert!(keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2]);

        let stored = app.db.column(
            "SELECT id || ' ' || user_id || ' ' || hash FROM plugin_api_keys_keys ORDER BY id",
        );
        let expected: Vec<String> = minted
            .iter()
            .zip(&keys)
            .map(|(m, k)| format!("{} {} {}", id(m), m["user_id"], sha256_hex(k)))
            .collect();
        assert_eq!(stored, expected);
        for at in app.db.column("SELECT created_at FROM plugin_api_keys_keys") {
            assert!(is_rfc3339_micros(&at), "{at}");
        }
        for k in &keys {
            assert_eq!(app.db.count(&format!(
                "SELECT COUNT(*) FROM plugin_api_keys_keys WHERE hash = '{k}'"
            )), 0, "a key stored as is");
        }
        let who = |k: &str| expect(200, app.get("/plugins/hello_world/user", Some(k)))["user_id"].clone();
        assert_eq!([who(&keys[0]), who(&keys[1]), who(&keys[2])], [json!(ada), json!(ada), json!(bob)]);
    }

    /// api_keys' doc: "(an admin names the user: `{"user_id": N}`)";
    /// README: "400 malformed JSON", "422 missing field, wrong type or
    /// invalid value (with `field`)", "404 unknown id", "405 wrong method
    /// (with `allowed` and `Allow`)". A refused mint writes no row; the
    /// plugin has no route to list or revoke keys (only `POST /keys`).
    fn api_keys_bad_mints_write_nothing(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let gone = id(&app.create_user("gone"));
        expect(204, app.delete(&format!("/api/users/{gone}"), ADMIN));
        let path = "/plugins/api_keys/keys";
        let (status, body) = app.raw("POST", path, ADMIN, Some("{\"user_id\": "));
        assert_eq!((status, body["error"]["code"].clone()), (400, json!("bad_request")), "{body}");
        for (body, field) in [
            (json!({"user_id": "1"}), "user_id"),
            (json!({"user_id": 1.5}), "user_id"),
            (json!({"user_id": null}), "user_id"),
            (json!([ada]), "body"),
        ] {
            let error = expect_error(422, "invalid", app.post(path, ADMIN, body.clone()));
            assert_eq!(error["field"], field, "{body}: {error}");
        }
        let error = expect_error(422, "invalid", app.post(path, ADMIN, json!({"user_id": ada, "admin": true})));
        assert!(error["field"].is_string(), "{error}");
        for missing in [gone, 0, -1, 999_999] {
            expect_error(404, "not_found", app.post(path, ADMIN, json!({"user_id": missing})));
        }
        expect_error(401, "unauthorized", app.post(path, None, json!({"user_id": ada})));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM plugin_api_keys_keys"), 0);

        let get = app.try_whole("GET", path, ADMIN, None).unwrap();
        assert_eq!(get.status, 405, "{}", get.text);
        let mut allow: Vec<String> = get
            .header("allow")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        allow.sort();
        assert_eq!(allow, ["OPTIONS", "POST"], "{:?}", get.headers);
        expect_error(404, "not_found", app.delete("/plugins/api_keys/keys/1", ADMIN));
    }

    /// api_keys' doc: "The plugin's `authenticate` recognises keys on every
    /// endpoint"; README: "401 no recognised credential (with
    /// `WWW-Authenticate: Bearer`)". Anything but a key exactly as minted
    /// is no credential: a prefix, a longer or shorter key, the key in
    /// upper case, the stored hash itself.
    fn api_keys_only_the_exact_key_is_recognised(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let key = key_for(&app, ada);
        let hash = app.db.column("SELECT hash FROM plugin_api_keys_keys").remove(0);
        let near_misses = [
            "ak_".to_owned(),
            format!("{key}0"),
            key[..key.len() - 1].to_owned(),
            format!("ak_{}", key[3..].to_ascii_uppercase()),
            key.replacen("ak_", "AK_", 1),
            key[3..].to_owned(),
            hash.clone(),
            format!("ak_{hash}"),
        ];
        for token in &near_misses {
            let answer = app.try_whole("GET", "/api/users", Some(token), None).unwrap();
            assert_eq!(answer.status, 401, "{token}: {}", answer.text);
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        }
        expect(200, app.get("/api/users", Some(&key)));
        expect(200, app.get(&format!("/api/users/{ada}"), Some(&key)));
    }

    /// README: "api_keys | ... a user's keys are deleted with the user";
    /// "change or delete a user | the user themselves"; "A credential whose
    /// user no longer exists is 401". A user deleting herself with her own
    /// key: 204, her keys (all of them) gone in the same operation, another
    /// user's kept and working.
    fn a_user_deleting_herself_with_her_key_takes_exactly_her_keys(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let bob = id(&app.create_user("bob"));
        let (ada1, ada2, bob1) = (key_for(&app, ada), key_for(&app, ada), key_for(&app, bob));
        expect(204, app.delete(&format!("/api/users/{ada}"), Some(&ada1)));
        assert_eq!(
            app.db.column("SELECT user_id || ' ' || hash FROM plugin_api_keys_keys"),
            [format!("{bob} {}", sha256_hex(&bob1))]
        );
        for stale in [&ada1, &ada2] {
            expect_error(401, "unauthorized", app.get("/api/users", Some(stale)));
        }
        expect(200, app.get("/api/users", Some(&bob1)));
        let deleted = audit(&app);
        assert_eq!(deleted.last().unwrap(), &format!("user_deleted user {ada} by ada"));
    }
}

// ---------------------------------------------------------------------------
// audit_log
// ---------------------------------------------------------------------------

e2e! {
    /// README: audit_log "records every change (kind, entity, who, when) in
    /// its own table, in the operation's transaction"; its doc: "Records
    /// every entity change (kind, entity, acting user, time)". One entry per
    /// change, the hooks' changes included, each naming who caused it (a
    /// key's user by name), `at` in RFC 3339; a membership `PUT` that
    /// changes nothing is no change and records nothing.
    fn audit_log_has_one_entry_per_real_change_naming_who_caused_it(backend) {
        let app = start(backend);
        let open = space(&app, "open", "open", None, "reader");
        let ada = id(&app.create_user("ada"));
        let all = audit(&app);
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(all[0], format!("space_created space {open} by admin"));
        assert_eq!(
            audit_since(&app, 1),
            [
                format!("membership_created space {open} user {ada} by admin"),
                format!("user_created user {ada} by admin"),
            ]
        );
        for at in app.db.column("SELECT at FROM plugin_audit_log_entries") {
            assert!(is_rfc3339_micros(&at), "{at}");
        }
        let before = audit(&app).len();
        assert_eq!(put(&app, open, ada, "reader"), 200);
        assert_eq!(audit(&app).len(), before, "a PUT that changed nothing: {:?}", audit(&app));
        assert_eq!(put(&app, open, ada, "contributor"), 200);
        assert_eq!(
            audit_since(&app, before),
            [format!("membership_modified space {open} user {ada} by admin")]
        );
        // A key's user, by name; the creator's membership is hers too.
        let key = key_for(&app, ada);
        let before = audit(&app).len();
        let own = space_as(&app, Some(&key), "ada's", "confidential", None, "reader");
        assert_eq!(
            audit_since(&app, before),
            [
                format!("membership_created space {own} user {ada} by ada"),
                format!("space_created space {own} by ada"),
            ]
        );
        let before = audit(&app).len();
        expect(204, app.delete(&format!("/api/spaces/{open}/members/{ada}"), Some(&key)));
        assert_eq!(
            audit_since(&app, before),
            [format!("membership_deleted space {open} user {ada} by ada")]
        );
        // Through the route: the same rows, newest first, with every field.
        let page = expect(200, app.get("/plugins/audit_log/entries", ADMIN));
        let entries = page["entries"].as_array().unwrap();
        assert_eq!(entries.len(), audit(&app).len());
        let newest = &entries[0];
        assert_eq!(
            (newest["kind"].clone(), newest["entity"].clone(), newest["actor"].clone()),
            (json!("membership_deleted"), json!(format!("space {open} user {ada}")), json!("ada"))
        );
        let mut fields: Vec<&String> = newest.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["actor", "at", "entity", "id", "kind"]);
        assert_eq!((page["limit"].clone(), page["offset"].clone()), (json!(50), json!(0)));
    }

    /// `on_user_modified` / `on_space_modified` fire "after a change"
    /// (README, hook table), and audit_log "records every change". A PATCH
    /// that changes nothing (an empty one, or the values already there) is
    /// no change: no entry, no `user.modified` / `space.modified` event.
    fn a_patch_that_changes_nothing_records_nothing(backend) {
        let receiver = e2e_tests::receiver::Receiver::start();
        let config = format!("[plugins.webhooks]\nurl = \"{}\"\n", receiver.url);
        let app = start_with(backend, &config);
        let ada = id(&app.create_user("ada"));
        let s = space(&app, "s", "confidential", None, "reader");
        let (entries, events) = (audit(&app).len(), app.db.count("SELECT COUNT(*) FROM outbox_events"));
        let user = format!("/api/users/{ada}");
        expect(200, app.patch(&user, ADMIN, json!({})));
        expect(200, app.patch(&user, ADMIN, json!({"username": "ada", "display_name": null})));
        let path = format!("/api/spaces/{s}");
        expect(200, app.patch(&path, ADMIN, json!({})));
        expect(200, app.patch(&path, ADMIN, json!({"name": "s", "access": "confidential"})));
        assert_eq!(audit(&app).len(), entries, "{:?}", audit(&app));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox_events"), events);
    }

    /// README: "delete (with its sub-spaces and memberships, each firing its
    /// hook)" and audit_log "records every change": deleting a tree records
    /// each membership and each space exactly once, child_removal's
    /// cascade adding no duplicate.
    fn deleting_a_tree_records_each_removal_exactly_once(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let bob = id(&app.create_user("bob"));
        let root = space(&app, "root", "confidential", None, "reader");
        let mid = space(&app, "mid", "confidential", Some(root), "reader");
        let leaf = space(&app, "leaf", "on_request", Some(mid), "reader");
        put(&app, leaf, ada, "contributor"); // and mid, root (parent_access)
        put(&app, root, bob, "space_manager");
        assert_eq!(
            memberships(&app),
            rows(&[(root, ada, "reader"), (root, bob, "space_manager"), (mid, ada, "reader"), (leaf, ada, "contributor")])
        );
        let before = audit(&app).len();
        expect(204, app.delete(&format!("/api/spaces/{root}"), ADMIN));
        assert_eq!(
            audit_since(&app, before),
            sorted(&[
                format!("membership_deleted space {leaf} user {ada} by admin"),
                format!("membership_deleted space {mid} user {ada} by admin"),
                format!("membership_deleted space {root} user {ada} by admin"),
                format!("membership_deleted space {root} user {bob} by admin"),
                format!("space_deleted space {leaf} by admin"),
                format!("space_deleted space {mid} by admin"),
                format!("space_deleted space {root} by admin"),
            ])
        );
        assert!(memberships(&app).is_empty());
        assert_eq!(app.db.count("SELECT COUNT(*) FROM spaces"), 0);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 2);
    }
}

/// README: "audit_log's entries, newest first, page with `?limit=N`
/// (default 50, at most 500) and `?offset=M`"; "`GET
/// /plugins/audit_log/entries?limit=&offset=`, admin only"; "405 wrong
/// method". A limit of 0 is an empty page, an offset past the end (even the
/// largest) too; any other method is 405.
#[test]
fn audit_log_entries_route_at_its_edges() {
    let app = start(Backend::Sqlite);
    app.create_user("ada");
    let page = expect(200, app.get("/plugins/audit_log/entries?limit=0", ADMIN));
    assert_eq!(page, json!({"entries": [], "limit": 0, "offset": 0}));
    let far = format!("/plugins/audit_log/entries?offset={}", i64::MAX);
    let page = expect(200, app.get(&far, ADMIN));
    assert_eq!(page["entries"], json!([]), "{page}");
    let one = expect(
        200,
        app.get("/plugins/audit_log/entries?limit=1&offset=0", ADMIN),
    );
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    for method in ["POST", "DELETE", "PUT"] {
        let answer = app
            .try_whole(method, "/plugins/audit_log/entries", ADMIN, Some("{}"))
            .unwrap();
        assert_eq!(answer.status, 405, "{method}: {}", answer.text);
        assert_eq!(
            app.db
                .count("SELECT COUNT(*) FROM plugin_audit_log_entries"),
            1
        );
    }
    expect_error(
        404,
        "not_found",
        app.get("/plugins/audit_log/entries/1", ADMIN),
    );
}

// ---------------------------------------------------------------------------
// autoinvite (with parent_access)
// ---------------------------------------------------------------------------

e2e! {
    /// README: autoinvite: "a new user joins every `open` space ... with the
    /// space's `default_role`"; parent_access: "a member of a space becomes
    /// a member of every ancestor space too (with the ancestor's default
    /// role)". An open space at any depth counts; on-request and
    /// confidential ones do not; the ancestors of the open ones follow.
    fn a_new_user_joins_open_spaces_at_any_depth_and_their_ancestors(backend) {
        let app = start(backend);
        let secret = space(&app, "secret", "confidential", None, "contributor");
        let nested = space(&app, "nested open", "open", Some(secret), "content_manager");
        let deeper = space(&app, "deeper open", "open", Some(nested), "reader");
        let asking = space(&app, "asking", "on_request", None, "reader");
        let _hidden = space(&app, "hidden", "confidential", Some(asking), "reader");
        let top = space(&app, "top open", "open", None, "space_manager");
        assert!(memberships(&app).is_empty(), "no user yet: {:?}", memberships(&app));
        let before = audit(&app).len();
        let ada = id(&app.create_user("ada"));
        assert_eq!(
            memberships(&app),
            rows(&[
                (secret, ada, "contributor"),
                (nested, ada, "content_manager"),
                (deeper, ada, "reader"),
                (top, ada, "space_manager"),
            ])
        );
        assert_eq!(
            audit_since(&app, before),
            sorted(&[
                format!("membership_created space {secret} user {ada} by admin"),
                format!("membership_created space {nested} user {ada} by admin"),
                format!("membership_created space {deeper} user {ada} by admin"),
                format!("membership_created space {top} user {ada} by admin"),
                format!("user_created user {ada} by admin"),
            ])
        );
        // A space opened later by a PATCH is not new: nobody is added then;
        // the next new user joins it, since it is open now.
        expect(200, app.patch(&format!("/api/spaces/{asking}"), ADMIN, json!({"access": "open"})));
        assert_eq!(memberships(&app).len(), 4);
        let bob = id(&app.create_user("bob"));
        let bobs: Vec<String> = memberships(&app).into_iter().filter(|m| m.split(':').nth(1) == Some(&bob.to_string())).collect();
        assert_eq!(
            bobs,
            rows(&[
                (secret, bob, "contributor"),
                (nested, bob, "content_manager"),
                (deeper, bob, "reader"),
                (asking, bob, "reader"),
                (top, bob, "space_manager"),
            ])
        );
    }

    /// README: autoinvite: "a new `open` space gets every user, with the
    /// space's `default_role`"; parent_access: every ancestor too, with the
    /// ancestor's default role. A new open sub-space of a confidential space
    /// brings every user into that confidential space.
    fn a_new_open_sub_space_takes_every_user_into_its_ancestors(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let bob = id(&app.create_user("bob"));
        let root = space(&app, "root", "confidential", None, "reader");
        let mid = space(&app, "mid", "on_request", Some(root), "contributor");
        put(&app, root, bob, "space_manager");
        assert_eq!(memberships(&app), rows(&[(root, bob, "space_manager")]));
        let before = audit(&app).len();
        let open = space(&app, "open", "open", Some(mid), "content_manager");
        assert_eq!(
            memberships(&app),
            rows(&[
                (root, ada, "reader"),
                (root, bob, "space_manager"),
                (mid, ada, "contributor"),
                (mid, bob, "contributor"),
                (open, ada, "content_manager"),
                (open, bob, "content_manager"),
            ])
        );
        assert_eq!(
            audit_since(&app, before),
            sorted(&[
                format!("membership_created space {mid} user {ada} by admin"),
                format!("membership_created space {mid} user {bob} by admin"),
                format!("membership_created space {open} user {ada} by admin"),
                format!("membership_created space {open} user {bob} by admin"),
                format!("membership_created space {root} user {ada} by admin"),
                format!("space_created space {open} by admin"),
            ])
        );
    }

    /// README: "create a space | anyone signed in, who becomes its
    /// `space_manager`"; autoinvite: "a new `open` space gets every user,
    /// with the space's `default_role`". Its creator ends `space_manager`,
    /// everyone else on the default role, each user one row; more users
    /// than a default page (50) all join.
    fn an_open_space_made_by_a_user_gives_her_space_manager_and_all_others_the_default(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let others: Vec<i64> = (0..55).map(|n| id(&app.create_user(&format!("u{n}")))).collect();
        let key = key_for(&app, ada);
        let before = audit(&app).len();
        let open = space_as(&app, Some(&key), "ada's open", "open", None, "contributor");
        let mut expected = vec![(open, ada, "space_manager")];
        expected.extend(others.iter().map(|u| (open, *u, "contributor")));
        assert_eq!(memberships(&app), rows(&expected));
        let added = audit_since(&app, before);
        let count = |prefix: &str| added.iter().filter(|e| e.starts_with(prefix)).count();
        assert_eq!(count("membership_created"), 56, "{added:?}");
        assert_eq!(count("space_created"), 1, "{added:?}");
        assert!(added.iter().all(|e| e.ends_with(" by ada")), "{added:?}");
        assert_eq!(added.len(), 56 + 1 + count("membership_modified"), "{added:?}");
        assert!(count("membership_modified") <= 1, "{added:?}");
    }

    /// README: "So adding someone to an open space they were just invited
    /// to answers `200` (the role changed or stayed), not `201`". The body
    /// is the membership as it now is; only a real role change is a change
    /// (`membership_modified`, once).
    fn putting_an_invited_user_answers_200_with_the_membership_as_it_is(backend) {
        let app = start(backend);
        let open = space(&app, "open", "open", None, "reader");
        let ada = id(&app.create_user("ada"));
        let path = format!("/api/spaces/{open}/members/{ada}");
        let before = audit(&app).len();
        let same = expect(200, app.put(&path, ADMIN, json!({"role": "reader"})));
        assert_eq!((same["space_id"].clone(), same["user_id"].clone(), same["role"].clone()), (json!(open), json!(ada), json!("reader")));
        let changed = expect(200, app.put(&path, ADMIN, json!({"role": "space_manager"})));
        assert_eq!(changed["role"], "space_manager");
        assert_eq!(changed["created_at"], same["created_at"], "the same membership");
        let again = expect(200, app.put(&path, ADMIN, json!({"role": "space_manager"})));
        assert_eq!(again["role"], "space_manager");
        assert_eq!(memberships(&app), rows(&[(open, ada, "space_manager")]));
        assert_eq!(
            audit_since(&app, before),
            [format!("membership_modified space {open} user {ada} by admin")]
        );
    }
}

// ---------------------------------------------------------------------------
// parent_access
// ---------------------------------------------------------------------------

e2e! {
    /// parent_access's doc: "a user who becomes a member of a space also
    /// becomes a member of every ancestor space they are not in yet"; it
    /// acts on a new membership only: a role change below (up or down)
    /// touches no ancestor, whose roles stay as they were.
    fn a_role_change_below_leaves_every_ancestor_as_it_was(backend) {
        let app = start(backend);
        let root = space(&app, "root", "confidential", None, "reader");
        let mid = space(&app, "mid", "confidential", Some(root), "contributor");
        let leaf = space(&app, "leaf", "confidential", Some(mid), "reader");
        let ada = id(&app.create_user("ada"));
        assert_eq!(put(&app, leaf, ada, "reader"), 201);
        put(&app, mid, ada, "content_manager");
        let before = audit(&app).len();
        assert_eq!(put(&app, leaf, ada, "space_manager"), 200);
        assert_eq!(put(&app, leaf, ada, "reader"), 200);
        assert_eq!(
            memberships(&app),
            rows(&[(root, ada, "reader"), (mid, ada, "content_manager"), (leaf, ada, "reader")])
        );
        assert_eq!(
            audit_since(&app, before),
            [
                format!("membership_modified space {leaf} user {ada} by admin"),
                format!("membership_modified space {leaf} user {ada} by admin"),
            ]
        );
    }

    /// parent_access's doc: "Each membership it adds fires this hook again
    /// for the next ancestor; it stops at the top". In a tree ten deep,
    /// joining the lowest space makes one membership per level, each with
    /// its own default role, and one audit entry each.
    fn joining_the_bottom_of_a_ten_deep_tree_joins_every_level_once(backend) {
        let app = start(backend);
        let roles = ["reader", "contributor", "content_manager", "space_manager"];
        let mut ids: Vec<i64> = Vec::new();
        for level in 0..10 {
            let parent = ids.last().copied();
            ids.push(space(&app, &format!("l{level}"), "confidential", parent, roles[level % 4]));
        }
        let ada = id(&app.create_user("ada"));
        let before = audit(&app).len();
        assert_eq!(put(&app, ids[9], ada, "reader"), 201);
        let mut expected: Vec<(i64, i64, &str)> = ids[..9].iter().enumerate().map(|(l, s)| (*s, ada, roles[l % 4])).collect();
        expected.push((ids[9], ada, "reader"));
        assert_eq!(memberships(&app), rows(&expected));
        let added = audit_since(&app, before);
        assert_eq!(added.len(), 10, "{added:?}");
        assert!(added.iter().all(|e| e.starts_with("membership_created")), "{added:?}");
    }

    /// parent_access: "a member of a space becomes a member of every ancestor
    /// space too" (README), stated without a depth limit. In a tree 80 deep
    /// (the engine's hook nesting limit is 64), joining the lowest space must
    /// still make the user a member of all 80, not fail.
    fn joining_the_bottom_of_a_tree_deeper_than_the_hook_limit_joins_every_level(backend) {
        let app = start(backend);
        let ids = chain(&app, 80);
        let ada = id(&app.create_user("ada"));
        let path = format!("/api/spaces/{}/members/{ada}", ids[79]);
        let (status, body) = app.put(&path, ADMIN, json!({"role": "reader"}));
        assert_eq!(status, 201, "{body}");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 80);
    }

    /// parent_access: "a member of a space becomes a member of every ancestor
    /// space too (with the ancestor's default role)". A space moved under a
    /// new parent (`PATCH parent_id`) gets new ancestors; its members must
    /// then be members of them as well, or the invariant the plugin keeps
    /// is broken by a move.
    fn the_members_of_a_moved_space_join_its_new_ancestors(backend) {
        let app = start(backend);
        let root = space(&app, "new home", "confidential", None, "contributor");
        let moved = space(&app, "moved", "confidential", None, "reader");
        let ada = id(&app.create_user("ada"));
        put(&app, moved, ada, "reader");
        expect(200, app.patch(&format!("/api/spaces/{moved}"), ADMIN, json!({"parent_id": root})));
        assert_eq!(
            memberships(&app),
            rows(&[(root, ada, "contributor"), (moved, ada, "reader")])
        );
    }
}

// ---------------------------------------------------------------------------
// child_removal
// ---------------------------------------------------------------------------

e2e! {
    /// child_removal: "a user removed from a space is removed from its
    /// sub-spaces too" (README); removed from a middle space, the user keeps
    /// the spaces above it and its siblings' subtrees, and other users keep
    /// theirs. One `membership_deleted` per removal.
    fn removal_from_a_middle_space_spares_ancestors_siblings_and_others(backend) {
        let app = start(backend);
        let root = space(&app, "root", "confidential", None, "reader");
        let a = space(&app, "a", "confidential", Some(root), "reader");
        let a1 = space(&app, "a1", "confidential", Some(a), "reader");
        let a2 = space(&app, "a2", "confidential", Some(a1), "reader");
        let b = space(&app, "b", "confidential", Some(root), "reader");
        let b1 = space(&app, "b1", "confidential", Some(b), "reader");
        let ada = id(&app.create_user("ada"));
        let bob = id(&app.create_user("bob"));
        for user in [ada, bob] {
            put(&app, a2, user, "reader");
            put(&app, b1, user, "reader");
        }
        assert_eq!(memberships(&app).len(), 12);
        let before = audit(&app).len();
        expect(204, app.delete(&format!("/api/spaces/{a}/members/{ada}"), ADMIN));
        assert_eq!(
            memberships(&app),
            rows(&[
                (root, ada, "reader"), (b, ada, "reader"), (b1, ada, "reader"),
                (root, bob, "reader"), (a, bob, "reader"), (a1, bob, "reader"),
                (a2, bob, "reader"), (b, bob, "reader"), (b1, bob, "reader"),
            ])
        );
        assert_eq!(
            audit_since(&app, before),
            sorted(&[
                format!("membership_deleted space {a} user {ada} by admin"),
                format!("membership_deleted space {a1} user {ada} by admin"),
                format!("membership_deleted space {a2} user {ada} by admin"),
            ])
        );
        // Removed again: 404, nothing fires.
        let again = expect_error(404, "not_found", app.delete(&format!("/api/spaces/{a}/members/{ada}"), ADMIN));
        assert!(again["message"].is_string());
        assert_eq!(audit(&app).len(), before + 3);
    }

    /// README: "`DELETE /api/users/:id` | 204; removes their memberships
    /// first (each fires its hook)", with child_removal removing sub-space
    /// memberships as it goes: each membership is removed, and recorded,
    /// exactly once, then the user.
    fn deleting_a_user_in_a_tree_removes_each_membership_once(backend) {
        let app = start(backend);
        let root = space(&app, "root", "confidential", None, "reader");
        let mid = space(&app, "mid", "confidential", Some(root), "reader");
        let leaf = space(&app, "leaf", "confidential", Some(mid), "reader");
        let other = space(&app, "other", "open", None, "reader");
        let ada = id(&app.create_user("ada"));
        put(&app, leaf, ada, "reader");
        assert_eq!(memberships(&app).len(), 4);
        let before = audit(&app).len();
        expect(204, app.delete(&format!("/api/users/{ada}"), ADMIN));
        assert!(memberships(&app).is_empty());
        assert_eq!(
            audit_since(&app, before),
            sorted(&[
                format!("membership_deleted space {leaf} user {ada} by admin"),
                format!("membership_deleted space {mid} user {ada} by admin"),
                format!("membership_deleted space {other} user {ada} by admin"),
                format!("membership_deleted space {root} user {ada} by admin"),
                format!("user_deleted user {ada} by admin"),
            ])
        );
        assert_eq!(audit(&app).last().unwrap(), &format!("user_deleted user {ada} by admin"));
    }

    /// child_removal's doc: "a user removed from a space is removed from all
    /// its descendant spaces". A descendant below a sub-space the user is
    /// not in (a space of hers moved there) is a descendant all the same.
    fn removal_reaches_a_descendant_below_a_sub_space_the_user_is_not_in(backend) {
        let app = start(backend);
        let top = space(&app, "top", "confidential", None, "reader");
        let middle = space(&app, "middle", "confidential", Some(top), "reader");
        let hers = space(&app, "hers", "confidential", None, "reader");
        let ada = id(&app.create_user("ada"));
        put(&app, top, ada, "reader");
        put(&app, hers, ada, "reader");
        expect(200, app.patch(&format!("/api/spaces/{hers}"), ADMIN, json!({"parent_id": middle})));
        let mut got = memberships(&app);
        got.retain(|m| m.starts_with(&format!("{middle}:")));
        let in_middle = !got.is_empty();
        expect(204, app.delete(&format!("/api/spaces/{top}/members/{ada}"), ADMIN));
        assert_eq!(memberships(&app), Vec::<String>::new(), "in middle before: {in_middle}");
    }

    /// child_removal: "a user removed from a space is removed from its
    /// sub-spaces too" (README), stated without a depth limit; and `DELETE
    /// /api/users/:id` "removes their memberships first". In a tree 80 deep
    /// (deeper than the engine's hook nesting limit, 64), deleting a member
    /// of every level must work.
    fn deleting_a_member_of_every_level_of_a_tree_deeper_than_the_hook_limit_works(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let ids = chain(&app, 80);
        // Top down: each join finds the parent joined already.
        for s in &ids {
            put(&app, *s, ada, "reader");
        }
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 80);
        let (status, body) = app.delete(&format!("/api/users/{ada}"), ADMIN);
        assert_eq!(status, 204, "deleting her: {body}");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 0);
    }
}

/// The same tree as above, without the user's deletion: removal from the
/// top alone (child_removal's own claim), on SQLite.
#[test]
fn removal_from_the_top_of_an_80_deep_tree_removes_all_80() {
    let app = start(Backend::Sqlite);
    let ada = id(&app.create_user("ada"));
    let ids = chain(&app, 80);
    for s in &ids {
        put(&app, *s, ada, "reader");
    }
    let (status, body) = app.delete(&format!("/api/spaces/{}/members/{ada}", ids[0]), ADMIN);
    assert_eq!(status, 204, "{body}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 0);
}

// ---------------------------------------------------------------------------
// webhooks, with the other shipped plugins
// ---------------------------------------------------------------------------

const SECRET: &str = "shipped-claims-secret";

/// The shipped plugins, webhooks posting to `url`; `deliveries` is added to
/// `[deliveries]`, `webhooks` to `[plugins.webhooks]`.
fn with_webhooks(url: &str, webhooks: &str, deliveries: &str) -> Options {
    shipped(&format!(
        "[plugins.webhooks]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{webhooks}\n\n\
         [deliveries]\nbackoff_ms = 50\npoll_ms = 100\ntimeout_ms = 5000\n{deliveries}\n"
    ))
}

e2e! {
    /// README: webhooks "posts every committed change"; "Each request is
    /// `POST url` with `{"id", "event": "user.created", "data": {...}}`
    /// (`Delivery::body`: fields in that order, the entity's in its
    /// type's), `Idempotency-Key: <id>` ..., `X-Signature` ... and
    /// `X-Attempt`". The changes autoinvite and parent_access make inside a
    /// user's creation are changes too: each is posted once, with its own
    /// id, to the URL exactly as configured (path and query), as JSON.
    fn webhooks_posts_each_change_of_an_operation_once_to_the_exact_url(backend) {
        let receiver = RawReceiver::start(|_| Reply::Status(200));
        let url = format!("{}/in/events?source=app&x=1", receiver.base);
        let app = TestApp::start_with(backend, with_webhooks(&url, "", ""));
        let root = space(&app, "root", "confidential", None, "contributor");
        let open = space(&app, "open", "open", Some(root), "reader");
        receiver.wait_for(2);
        let ada = id(&app.create_user("ada"));
        let got = receiver.wait_for(5);
        wait_until("the deliveries recorded", || delivered(&app.db, "webhooks") == 5);
        assert_eq!(receiver.got().len(), 5, "each event once");
        for g in &got {
            assert_eq!(g.line, "POST /in/events?source=app&x=1 HTTP/1.1");
            assert_eq!(g.header("content-type"), Some("application/json"));
            assert_eq!(g.header("x-attempt"), Some("1"));
            assert_eq!(g.header("idempotency-key"), g.json["id"].as_str());
            assert_eq!(g.header("x-signature"), Some(format!("sha256={}", hmac_hex(SECRET, &g.body)).as_str()));
            assert_eq!(g.header("content-length"), Some(g.body.len().to_string().as_str()));
        }
        let mut keys: Vec<String> = got.iter().map(|g| g.json["id"].as_str().unwrap().to_owned()).collect();
        keys.sort();
        let mut recorded = app.db.column("SELECT event_key FROM outbox_events");
        recorded.sort();
        assert_eq!(keys, recorded);
        keys.dedup();
        assert_eq!(keys.len(), 5);

        let mut events: Vec<String> = got[2..]
            .iter()
            .map(|g| {
                let data = &g.json["data"];
                format!("{} {} {}", g.json["event"].as_str().unwrap(), data["space_id"], data["role"])
            })
            .collect();
        events.sort();
        assert_eq!(
            events,
            sorted(&[
                format!("membership.created {open} \"reader\""),
                format!("membership.created {root} \"contributor\""),
                "user.created null null".to_owned(),
            ])
        );
        // Field order, as sent: the document's, then the entity's.
        for g in &got {
            let text = String::from_utf8(g.body.clone()).unwrap();
            let id = g.json["id"].as_str().unwrap();
            let event = g.json["event"].as_str().unwrap();
            let start = format!("{{\"id\":\"{id}\",\"event\":\"{event}\",\"data\":{{");
            assert!(text.starts_with(&start), "{text}");
            let data = &text[start.len() - 1..];
            let order: &[&str] = match event {
                "user.created" => &["\"id\":", "\"username\":", "\"email\":", "\"display_name\":", "\"created_at\":"],
                "space.created" => &["\"id\":", "\"name\":", "\"parent_id\":", "\"access\":", "\"default_role\":", "\"created_at\":"],
                "membership.created" => &["\"space_id\":", "\"user_id\":", "\"role\":", "\"created_at\":"],
                other => panic!("unexpected event {other}: {text}"),
            };
            let at: Vec<usize> = order.iter().map(|f| data.find(f).unwrap_or_else(|| panic!("{f} in {text}"))).collect();
            assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        }
        let user = got.iter().find(|g| g.json["event"] == "user.created").unwrap();
        assert_eq!(user.json["data"]["id"], ada);
        assert_eq!(user.json["data"]["email"], "ada@example.org");
    }

    /// README: "a 2xx answer is delivered, anything else (another status, no
    /// answer, a refused connection, a TLS failure) is retried, and the
    /// reason is the delivery's `last_error`"; the plugin's doc: "any other
    /// status, a refused connection, a TLS failure or a timeout is a failed
    /// attempt". With one attempt allowed, each such event is dead with its
    /// reason: a 500, a redirect (not followed), no answer within
    /// `timeout_ms`, a connection closed without an answer; a 204 is
    /// delivered.
    fn webhooks_each_failure_is_recorded_with_its_reason(backend) {
        let receiver = RawReceiver::start(|body| {
            match body["data"]["username"].as_str().unwrap_or_default() {
                "status500" => Reply::Status(500),
                "redirect" => Reply::Status(302),
                "hangs" => Reply::Hang,
                "closes" => Reply::Close,
                "nocontent" => Reply::Status(204),
                _ => Reply::Status(200),
            }
        });
        let url = format!("{}/hook", receiver.base);
        let app = TestApp::start_with(
            backend,
            with_webhooks(&url, "timeout_ms = 300\nevents = [\"user.created\"]", "max_attempts = 1"),
        );
        for name in ["status500", "redirect", "hangs", "closes", "nocontent"] {
            app.create_user(name);
        }
        wait_until("every delivery settled", || {
            app.db.count("SELECT COUNT(*) FROM outbox_deliveries WHERE status IN ('dead', 'delivered')") == 5
        });
        let got = receiver.got();
        assert_eq!(got.len(), 5, "one attempt each");
        let name_of = |key: &str| {
            got.iter()
                .find(|g| g.json["id"] == key)
                .map(|g| g.json["data"]["username"].as_str().unwrap().to_owned())
                .unwrap_or_else(|| format!("no request for {key}"))
        };
        let listed = expect(200, app.get("/api/admin/deliveries", ADMIN));
        let mut outcome: Vec<(String, String, String)> = listed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    name_of(d["event_id"].as_str().unwrap()),
                    d["status"].as_str().unwrap().to_owned(),
                    d["last_error"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect();
        outcome.sort();
        let find = |name: &str| outcome.iter().find(|o| o.0 == name).cloned().unwrap();
        assert_eq!(find("nocontent"), ("nocontent".into(), "delivered".into(), "-".into()));
        // The reason, after the name of the plugin and hook that failed.
        let failed = "plugin `webhooks` failed in hook `after_user_created`: ";
        assert_eq!(find("status500"), ("status500".into(), "dead".into(), format!("{failed}POST {url} answered 500")));
        assert_eq!(find("redirect"), ("redirect".into(), "dead".into(), format!("{failed}POST {url} answered 302")));
        assert_eq!(find("hangs"), ("hangs".into(), "dead".into(), format!("{failed}no answer from {url} within 300ms")));
        let closes = find("closes");
        assert_eq!(closes.1, "dead");
        assert!(closes.2.starts_with(&format!("{failed}POST {url} failed: ")), "{closes:?}");
        assert_eq!(listed["total"], 5);
    }
}

e2e! {
    /// README: webhooks "posts every committed change"; "`ordered = true`:
    /// one event at a time, in commit order"; "`DELETE /api/users/:id` |
    /// 204; removes their memberships first (each fires its hook)";
    /// audit_log "records every change". Deleting a user in a tree (with
    /// child_removal cascading) posts one event per change, exactly the
    /// changes audit_log recorded, the user's deletion last, with the user
    /// as it was.
    fn webhooks_posts_a_cascade_once_per_change_in_commit_order(backend) {
        let receiver = RawReceiver::start(|_| Reply::Status(200));
        let url = format!("{}/hook", receiver.base);
        let app = TestApp::start_with(
            backend,
            with_webhooks(&url, "", "\n[deliveries.webhooks]\nordered = true"),
        );
        let root = space(&app, "root", "confidential", None, "reader");
        let mid = space(&app, "mid", "confidential", Some(root), "reader");
        let leaf = space(&app, "leaf", "confidential", Some(mid), "reader");
        let other = space(&app, "other", "open", None, "reader");
        let ada = app.create_user("ada");
        let ada_id = id(&ada);
        put(&app, leaf, ada_id, "contributor");
        let before = audit(&app).len();
        assert_eq!(before, 4 + 2 + 3, "{:?}", audit(&app));
        receiver.wait_for(before);
        expect(204, app.delete(&format!("/api/users/{ada_id}"), ADMIN));
        let got = receiver.wait_for(before + 5);
        wait_until("every event delivered", || delivered(&app.db, "webhooks") == 9 + 5);
        let got = &got[before..];
        assert_eq!(receiver.got().len(), before + 5, "each event once");
        let posted: Vec<String> = got
            .iter()
            .map(|g| {
                let data = &g.json["data"];
                match g.json["event"].as_str().unwrap() {
                    "membership.deleted" => format!(
                        "membership_deleted space {} user {} by admin",
                        data["space_id"], data["user_id"]
                    ),
                    "user.deleted" => format!("user_deleted user {} by admin", data["id"]),
                    other => panic!("unexpected {other}"),
                }
            })
            .collect();
        assert_eq!(sorted(&posted), audit_since(&app, before));
        assert_eq!(posted.last().unwrap(), &format!("user_deleted user {ada_id} by admin"));
        assert_eq!(got[4].json["data"], ada, "the user as she was");
        for m in [root, mid, leaf, other] {
            assert!(posted.contains(&format!("membership_deleted space {m} user {ada_id} by admin")));
        }
    }
}

/// README: "A bad setting (a `url` that is not `http://host/...` or
/// `https://host/...`, an unknown event, ...) fails the plugin at load with
/// the setting named (a WARN line, and `failed: ...` in the report)";
/// "Write a plugin": "An unknown key or a wrong type fails that plugin with
/// the key named; the app starts without it". Each refused, the other
/// shipped plugins run and nothing is delivered.
#[test]
fn webhooks_an_unknown_event_key_or_type_fails_it_naming_the_setting() {
    let receiver = RawReceiver::start(|_| Reply::Status(200));
    let url = format!("{}/hook", receiver.base);
    let cases = [
        (
            "events = [\"user.created\", \"user.gone\"]",
            "unknown event \"user.gone\" in `events` of [plugins.webhooks]",
        ),
        ("retries = 3", "`retries`: unknown field `retries`"),
        ("timeout_ms = \"fast\"", "`timeout_ms`"),
        ("events = \"user.created\"", "`events`"),
        ("url2 = \"x\"", "`url2`: unknown field `url2`"),
    ];
    for (setting, named) in cases {
        let app = TestApp::start_with(Backend::Sqlite, with_webhooks(&url, setting, ""));
        let status = plugin_status(&app, "webhooks");
        assert!(
            status.starts_with("failed") && status.contains(named),
            "{setting}: {status}"
        );
        let log = app.proc.output.text();
        assert!(
            log.lines()
                .any(|l| l.contains(" WARN ") && l.contains(named)),
            "{setting}: no WARN line naming it in:\n{log}"
        );
        assert_eq!(plugin_status(&app, "audit_log"), "loaded");
        app.create_user("ada");
        assert_eq!(
            app.db
                .count("SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = 'webhooks'"),
            0
        );
    }
    assert!(receiver.got().is_empty());
}

/// README: "`url` ... http:// or https://"; a URL without a host, with a
/// port but no host, or with a space in its host is a bad setting that
/// fails the plugin at load naming `url`.
#[test]
fn webhooks_a_url_without_a_usable_host_fails_it_naming_url() {
    for url in [
        "http://",
        "http:///hook",
        "https://:8080/hook",
        "http://exa mple.org/x",
        "HTTP//x",
    ] {
        let config = format!("[plugins.webhooks]\nurl = \"{url}\"\n");
        let app = start_with(Backend::Sqlite, &config);
        let status = plugin_status(&app, "webhooks");
        assert!(
            status.starts_with("failed") && status.contains("`url`"),
            "{url}: {status}"
        );
    }
}
