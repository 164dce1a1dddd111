//! The probe: `on_user_created` behaves as the new user's name says
//! (`veto-*`, `spin-*`, `sleep-*`, `panic-*`, `oom-*`, `deep-*`, `exit-*`,
//! `flood-*`, `hoard-<MiB>-*`, `pin-*`; anything else passes) and logs how many
//! creations its instance has seen and its actor, `authenticate` accepts the token set
//! in its configuration (and spins for a token `spin-*`), `describe` sleeps
//! for an hour if its configuration says `describe = "sleep"`, and
//! `on_user_modified` and `after_user_created` log what they were given
//! (the latter with its actor).

wit_bindgen::generate!({ path: "../../../hookspecs/wit", world: "plugin" });

use app::plugin::host::{self, Level};
use app::plugin::types::{Hook, HookDecl, HookError, Manifest, Tier};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

/// The creations this instance has seen: an instance reused counts on,
/// a fresh one starts again at 1.
static CREATED: AtomicU32 = AtomicU32::new(0);

/// `actor()` for a log line.
fn actor() -> String {
    host::actor().unwrap_or_else(|| "none".into())
}

struct Probe;

impl exports::app::plugin::guest::Guest for Probe {
    fn describe() -> Manifest {
        if config()["describe"] == "sleep" {
            std::thread::sleep(std::time::Duration::from_secs(3600));
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
                decl(Hook::Authenticate),
                decl(Hook::OnUserCreated),
                decl(Hook::OnUserModified),
                decl(Hook::AfterUserCreated),
            ],
            requires: Vec::new(),
        }
    }

    fn call(hook: Hook, args: String) -> Result<String, HookError> {
        let args: Vec<Value> =
            serde_json::from_str(&args).map_err(|e| refuse(500, &e.to_string()))?;
        let answer = match hook {
            Hook::Authenticate => authenticate(args[0].as_str().unwrap_or_default()),
            Hook::OnUserCreated => {
                on_user_created(&args[0])?
            }
            Hook::OnUserModified => {
                let (before, after) = (&args[0], &args[1]);
                let line = format!(
                    "user {} modified: display name {} -> {}",
                    before["username"], before["display_name"], after["display_name"]
                );
                host::log(Level::Info, &line);
                Value::Null
            }
            Hook::AfterUserCreated => {
                let (user, delivery) = (&args[0], &args[1]);
                let line = format!(
                    "user {} delivered: event {} attempt {} (actor {})",
                    user["username"],
                    delivery["event_id"],
                    delivery["attempt"],
                    actor()
                );
                host::log(Level::Info, &line);
                Value::Null
            }
            _ => return Err(refuse(500, "not implemented")),
        };
        Ok(answer.to_string())
    }
}

fn refuse(status: u16, message: &str) -> HookError {
    HookError {
        status,
        code: "probe_refused".into(),
        message: message.into(),
    }
}

/// Its `[plugins.probe]` table.
fn config() -> Value {
    serde_json::from_str(&host::config()).unwrap_or_default()
}

fn authenticate(token: &str) -> Value {
    if token.starts_with("spin-") {
        host::log(Level::Info, &format!("authenticating {token}: spinning"));
        spin();
    }
    if config()["token"].as_str() == Some(token) {
        json!({"user_id": null, "name": "probe-robot", "admin": false, "via": "probe"})
    } else {
        Value::Null
    }
}

fn on_user_created(user: &Value) -> Result<Value, HookError> {
    let username = user["username"].as_str().unwrap_or_default();
    host::log(Level::Info, &format!("user {username} created"));
    let created = CREATED.fetch_add(1, Ordering::Relaxed) + 1;
    host::log(
        Level::Info,
        &format!(
            "{username}: creation {created} of this instance, actor {}",
            actor()
        ),
    );
    let fault = username.split('-').next().unwrap_or_default();
    match fault {
        "veto" => return Err(refuse(422, &format!("the probe refuses {username}"))),
        "spin" => spin(),
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(30)),
        "panic" => panic!("the probe panics for {username}"),
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
            }
        }
        "deep" => {
            std::hint::black_box(recurse(u64::MAX));
        }
        "exit" => std::process::exit(3),
        // Memory kept by the instance: `hoard-<MiB>-*`.
        "hoard" => {
            let mib: usize = username.split('-').nth(1).and_then(|n| n.parse().ok()).unwrap_or(1);
            Box::leak(vec![1u8; mib << 20].into_boxed_slice());
        }
        "pin" => pin(user)?,
        // Lines forging lines of their own, more and longer than a call
        // may log.
        "flood" => {
            for i in 0..1000 {
                let line = format!("flood {i}\nFAKE line {}", "x".repeat(10_000));
                host::log(Level::Info, &line);
            }
        }
        _ => {}
    }
    Ok(Value::Null)
}

/// A row in its own table `plugin_<name>_seen` (made by the test, which
/// may hold it locked), then the user's display name changed:
/// `on_user_modified` in the same operation. (Interface 1.1's host calls:
/// the probe built for 1.0.0 leaves this out.)
fn pin(user: &Value) -> Result<(), HookError> {
    let table = format!("plugin_{}_seen", host::plugin_name());
    let insert = format!("INSERT INTO {table} (username) VALUES ($1)");
    host::execute(&insert, &json!([user["username"]]).to_string())?;
    let patch = json!([user["id"], {"display_name": "pinned"}]);
    host::call_service(host::Service::UpdateUser, None, &patch.to_string())?;
    Ok(())
}

fn spin() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 64]);
    if n == 0 {
        frame[0]
    } else {
        recurse(n - 1).wrapping_add(frame[1])
    }
}

export!(Probe);
