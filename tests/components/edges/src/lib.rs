//! The edges guest (tests/tests/component_claims.rs): a component that does
//! what the test asks, so that each of the host's checks can be met at its
//! edge. Copied under any name (`app_plugin_<name>.wasm`), configured by
//! its `[plugins.<name>]` table:
//!
//! - `migrations`: its migrations, `[{version, name, sqlite, postgres}]`
//!   (default: one making `plugin_<name>_items (id, v)` and
//!   `plugin_<name>_other (id, w)`);
//! - `url`: where `on_user_created` for a user named `inside-*`,
//!   `authenticate` for the token `send-now`, and the route `GET /send`
//!   send a request (each is refused by the host);
//! - `sends`: `[{url, method, headers: [[name, value]], body_bytes}]`, what
//!   `after_user_created` sends, each outcome logged as one line
//!   (`send <i>: answered <status> with <n> bytes` or `send <i>: refused
//!   <status> <code>: <message>`); the hook itself always succeeds;
//! - `describe_send = true`: `describe` tries to send to `url` and logs
//!   the outcome.
//!
//! Its routes (`/plugins/<name>/...`, public): `POST /query` and `POST
//! /execute` run the body's `sql` with its `params` through the host's
//! `query` and `execute` (the host's refusal is the route's error; the
//! body's `sql_bytes` pads the statement with spaces to that length, its
//! `param_bytes` makes the parameters one string of a JSON text that long);
//! `GET /spin` never ends; `GET /hoard/:mib` keeps that many MiB; `GET
//! /config` answers its configuration as the host gives it; `GET /send`
//! sends to `url`.

wit_bindgen::generate!({ path: "../../../hookspecs/wit", world: "sdk-plugin" });

use app::plugin::host::{self, Level};
use app::plugin::outbound;
use app::plugin::types::{Hook, HookDecl, HookError, Manifest, Tier};
use exports::app::plugin::migrations::Migration;
use exports::app::plugin::routes::{Guard, Method, RouteDecl};
use serde_json::{Value, json};

struct Edges;

fn config() -> Value {
    serde_json::from_str(&host::config()).unwrap_or_default()
}

fn fail(status: u16, code: &str, message: &str) -> HookError {
    HookError {
        status,
        code: code.into(),
        message: message.into(),
    }
}

/// One request as the config describes it (a string: a POST to that URL).
fn request(spec: &Value) -> outbound::Request {
    let (url, spec) = match spec {
        Value::String(url) => (url.clone(), json!({})),
        other => (other["url"].as_str().unwrap_or_default().to_owned(), other.clone()),
    };
    let headers = spec["headers"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap_or_default().to_owned(),
                        pair[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let size = spec["body_bytes"].as_u64().unwrap_or(2) as usize;
    outbound::Request {
        method: spec["method"].as_str().unwrap_or("POST").to_owned(),
        url,
        headers,
        body: if size == 2 { b"{}".to_vec() } else { vec![b'x'; size] },
    }
}

/// A line saying how a send ended.
fn outcome(sent: &Result<outbound::Response, HookError>) -> String {
    match sent {
        Ok(answer) => format!("answered {} with {} bytes", answer.status, answer.body.len()),
        Err(e) => format!("refused {} {}: {}", e.status, e.code, e.message),
    }
}

fn send_to_url() -> Result<Value, HookError> {
    outbound::send(&request(&config()["url"]))?;
    Ok(Value::Null)
}

impl exports::app::plugin::guest::Guest for Edges {
    fn describe() -> Manifest {
        if config()["describe_send"] == true {
            let sent = outbound::send(&request(&config()["url"]));
            host::log(Level::Info, &format!("describe send: {}", outcome(&sent)));
        }
        let decl = |hook| HookDecl {
            hook,
            priority: 0,
            tier: Tier::Normal,
            before: Vec::new(),
            after: Vec::new(),
        };
        Manifest {
            hooks: vec![
                decl(Hook::OnPluginsLoaded),
                decl(Hook::Authenticate),
                decl(Hook::OnUserCreated),
                decl(Hook::AfterUserCreated),
            ],
            requires: Vec::new(),
        }
    }

    fn call(hook: Hook, args: String) -> Result<String, HookError> {
        let args: Vec<Value> =
            serde_json::from_str(&args).map_err(|e| fail(500, "edges", &e.to_string()))?;
        let answer = match hook {
            Hook::Authenticate => {
                if args[0] == "send-now" {
                    send_to_url()?;
                }
                Value::Null
            }
            Hook::OnUserCreated => {
                let name = args[0]["username"].as_str().unwrap_or_default();
                if name.starts_with("inside") {
                    send_to_url()?;
                }
                Value::Null
            }
            Hook::AfterUserCreated => {
                let sends = config()["sends"].as_array().cloned().unwrap_or_default();
                for (i, spec) in sends.iter().enumerate() {
                    let sent = outbound::send(&request(spec));
                    host::log(Level::Info, &format!("send {i}: {}", outcome(&sent)));
                }
                Value::Null
            }
            _ => return Err(fail(500, "edges", "not implemented")),
        };
        Ok(answer.to_string())
    }
}

impl exports::app::plugin::routes::Guest for Edges {
    fn start() -> Result<Vec<RouteDecl>, HookError> {
        let route = |method, path: &str| RouteDecl {
            method,
            path: path.into(),
            guard: Guard::Public,
        };
        Ok(vec![
            route(Method::Post, "/query"),
            route(Method::Post, "/execute"),
            route(Method::Get, "/spin"),
            route(Method::Get, "/hoard/:mib"),
            route(Method::Get, "/config"),
            route(Method::Get, "/send"),
        ])
    }

    fn handle(route: u32, request: String) -> Result<String, HookError> {
        let request: Value =
            serde_json::from_str(&request).map_err(|e| fail(500, "edges", &e.to_string()))?;
        let body = &request["body"];
        let mut sql = body["sql"].as_str().unwrap_or_default().to_owned();
        // `sql_bytes`: the statement padded with spaces to that length;
        // `param_bytes`: the parameters, one string, a JSON text that long.
        if let Some(n) = body["sql_bytes"].as_u64() {
            while sql.len() < n as usize {
                sql.push(' ');
            }
        }
        let params = match body["param_bytes"].as_u64() {
            Some(n) => format!("[\"{}\"]", "x".repeat(n as usize - 4)),
            None => body.get("params").cloned().unwrap_or(json!([])).to_string(),
        };
        let sql = sql.as_str();
        let answer = match route {
            0 => {
                let rows: Value = serde_json::from_str(&host::query(sql, &params)?)
                    .map_err(|e| fail(500, "edges", &e.to_string()))?;
                json!({"rows": rows})
            }
            1 => json!({"changed": host::execute(sql, &params)?}),
            2 => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            3 => {
                let mib: usize = request["params"][0][1]
                    .as_str()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Box::leak(vec![1u8; mib << 20].into_boxed_slice());
                json!({"kept_mib": mib})
            }
            4 => config(),
            _ => send_to_url()?,
        };
        Ok(json!({"status": 200, "body": answer, "next": null}).to_string())
    }
}

impl exports::app::plugin::migrations::Guest for Edges {
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
        let sql = |id: &str| {
            format!(
                "CREATE TABLE plugin_{name}_items (id {id} PRIMARY KEY, v TEXT);\n\
                 CREATE TABLE plugin_{name}_other (id {id} PRIMARY KEY, w TEXT)"
            )
        };
        vec![Migration {
            version: 1,
            name: "tables".into(),
            sqlite: sql("INTEGER"),
            postgres: sql("BIGINT"),
        }]
    }
}

export!(Edges);
