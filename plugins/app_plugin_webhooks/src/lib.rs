//! Webhooks: every committed entity event, POSTed as JSON to one URL,
//! after the commit, through the outbox (retried with backoff, then dead;
//! see `[deliveries]`).
//!
//! ```toml
//! [plugins.webhooks]
//! url = "https://hooks.example.org/events"  # http:// or https://; without it, idle
//! secret = "..."                            # signs each body
//! events = ["user.created", "membership.created"]   # optional, default all; the others are never given to it (nor listed)
//! timeout_ms = 5000                         # per request
//! ca_file = "/etc/app/receiver-ca.pem"      # optional: a private CA for https://
//! ```
//!
//! The body is `{"id", "event", "data"}`; headers `Idempotency-Key: <id>`
//! (the same on every attempt) and `X-Signature: sha256=<hex HMAC-SHA256 of
//! the body with the secret>`. A 2xx answer is delivered; any other status,
//! a refused connection, a TLS failure or a timeout is a failed attempt,
//! whose reason is the delivery's `last_error`.
//!
//! **Without `url`** the plugin is loaded and idle: it delivers nothing,
//! no delivery is recorded for it, and the load report (`app plugins list`,
//! `GET /api/admin/plugins`) and one INFO line at startup say
//! ``loaded, idle: set `url` in [plugins.webhooks] to deliver events``.
//!
//! **HTTPS** (rustls, see [`hookspecs::client`]): the receiver's certificate
//! must chain to one of the platform's root certificates, or to one in
//! `ca_file` (PEM; relative to the app's working directory), for
//! receivers behind a private CA. A certificate from an unknown issuer
//! fails the attempt with `invalid peer certificate: UnknownIssuer`.
//!
//! A bad setting (a `url` that is not `http://` or `https://`, an unknown
//! event, a `ca_file` that cannot be read or holds no certificate) fails
//! the plugin at load with a message naming the setting; with
//! `[plugins] required = ["webhooks"]` it stops startup.
//!
//! **Built both ways**: natively it sends through its own client
//! ([`hookspecs::client::send_with`]) within `timeout_ms`; as a component
//! (wasm32-wasip2) through the host ([`hookspecs::client::send`]), to the
//! receiver's host granted in `[plugins.webhooks.sandbox] hosts`, within
//! the sandbox's `time_limit_ms`, and a `ca_file` is refused at load (the
//! host trusts the platform's roots only).

use std::path::PathBuf;

use hookspecs::PluginExport;
use hookspecs::client::{Answer, Outgoing};
use hookspecs::hmac::{Hmac, Mac};
use hookspecs::hooks_core::anyhow::{anyhow, bail};
use hookspecs::prelude::*;
use hookspecs::sha2::Sha256;

/// `[plugins.webhooks]`.
#[derive(serde::Deserialize)]
#[serde(crate = "hookspecs::serde", default, deny_unknown_fields)]
pub struct Config {
    /// Where events are POSTed (`http://` or `https://`); empty: idle.
    pub url: String,
    /// The HMAC key of `X-Signature`.
    pub secret: String,
    /// Only these events (`user.created`, ...); `None`: all.
    pub events: Option<Vec<String>>,
    /// How long one request may take.
    pub timeout_ms: u64,
    /// PEM certificates trusted for `https://` besides the platform's.
    pub ca_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: String::new(),
            secret: String::new(),
            events: None,
            timeout_ms: 5_000,
            ca_file: None,
        }
    }
}

/// The idle state's words in the load report and the log.
pub const IDLE: &str = "set `url` in [plugins.webhooks] to deliver events";

/// What `export_plugin!` registers: idle without a `url`, the sender with
/// a good configuration.
///
/// # Errors
///
/// A bad setting, named.
pub fn export(config: Config) -> Result<PluginExport, String> {
    if config.url.is_empty() {
        return Ok(PluginExport::idle(IDLE));
    }
    let events = config.events.clone();
    let wanted = move |hook: &str| match (Change::event_of(hook), &events) {
        (Some(event), Some(events)) => events.iter().any(|e| e == event),
        _ => true,
    };
    // Events it does not want are never given to it, rather than answered
    // `Ok` and listed as delivered: `after_change` stands for every
    // `after_*` hook, and only the wanted ones are kept.
    Webhooks::new(config).map(|sender| PluginExport::new(sender).only_hooks(wanted))
}

/// The configured sender.
pub struct Webhooks {
    config: Config,
    /// The HMAC keyed with `secret` once: each signature starts from a
    /// copy, not from the key's two blocks hashed again.
    mac: Hmac<Sha256>,
    /// Natively, its own client (trusting `ca_file`); a component sends
    /// through the host's.
    #[cfg(not(target_family = "wasm"))]
    client: hookspecs::client::HttpClient,
}

impl Webhooks {
    /// A sender for `config` (with a `url`).
    ///
    /// # Errors
    ///
    /// A bad setting, named; in a component, any `ca_file`.
    pub fn new(config: Config) -> Result<Self, String> {
        target(&config)?;
        #[cfg(target_family = "wasm")]
        if config.ca_file.is_some() {
            return Err(
                "`ca_file` in [plugins.webhooks] cannot be used by a component: it \
                        sends through the host, which trusts the platform's root certificates \
                        only; load webhooks as a native plugin for a private CA"
                    .into(),
            );
        }
        Ok(Webhooks {
            mac: keyed(&config.secret),
            #[cfg(not(target_family = "wasm"))]
            client: hookspecs::client::http_client(config.ca_file.as_deref())
                .map_err(|e| format!("`ca_file` in [plugins.webhooks]: {e}"))?,
            config,
        })
    }

    /// Sends one event; `Ok` only on a 2xx answer.
    async fn send(&self, delivery: &Delivery) -> HookResult<()> {
        let body = serde_json::to_vec(&delivery.body())?;
        let signed = signed(self.mac.clone(), &body);
        let request = Outgoing::post(&self.config.url, body)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &delivery.event_id)
            .header("X-Signature", signed)
            .header("X-Attempt", delivery.attempt.to_string());
        let url = &self.config.url;
        let answer = self.exchange(request).await?;
        if !(200..300).contains(&answer.status) {
            bail!("POST {url} answered {}", answer.status);
        }
        Ok(())
    }

    /// The answer to `request`, within `timeout_ms`, through its own client.
    #[cfg(not(target_family = "wasm"))]
    async fn exchange(&self, request: Outgoing) -> HookResult<Answer> {
        let url = &self.config.url;
        let limit = std::time::Duration::from_millis(self.config.timeout_ms.max(1));
        let sent = hookspecs::client::send_with(&self.client, request);
        tokio::time::timeout(limit, sent)
            .await
            .map_err(|_| anyhow!("no answer from {url} within {limit:?}"))?
            .map_err(|e| anyhow!("POST {url} failed: {}", e.message))
    }

    /// The answer to `request`, through the host: within the call's time
    /// limit (`[plugins.webhooks.sandbox] time_limit_ms`), to a granted host.
    #[cfg(target_family = "wasm")]
    async fn exchange(&self, request: Outgoing) -> HookResult<Answer> {
        let url = &self.config.url;
        hookspecs::client::send(request)
            .await
            .map_err(|e| anyhow!("POST {url} failed: {}", e.message))
    }
}

/// The URL to POST to and the events, checked without the network.
fn target(config: &Config) -> Result<(), String> {
    // Checked here, without hyper (not in a component); the request
    // itself is checked again by `client::send`.
    let authority = ["http://", "https://"]
        .iter()
        .find_map(|scheme| config.url.strip_prefix(scheme))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    let host_ok = authority
        .is_some_and(|a| !a.is_empty() && !a.starts_with(':') && !a.contains(char::is_whitespace));
    if !host_ok {
        return Err(format!(
            "`url` {:?} in [plugins.webhooks] must be http://host[:port]/path or \
             https://host[:port]/path",
            config.url
        ));
    }
    // The URL is written in every failed delivery's `last_error` and in
    // the log: no password in it (`secret` signs the requests instead).
    if authority.is_some_and(|a| a.contains('@')) {
        return Err(
            "`url` in [plugins.webhooks] must not carry a user or password \
                    (`user:password@`): it is written in errors and logs; the receiver \
                    checks `X-Signature`, signed with `secret`"
                .into(),
        );
    }
    if let Some(unknown) = config
        .events
        .iter()
        .flatten()
        .find(|e| !Change::NAMES.contains(&e.as_str()))
    {
        return Err(format!(
            "unknown event {unknown:?} in `events` of [plugins.webhooks]; known: {}",
            Change::NAMES.join(", ")
        ));
    }
    Ok(())
}

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    signed(keyed(secret), body)
}

/// The HMAC-SHA256 of `secret`, before any message.
fn keyed(secret: &str) -> Hmac<Sha256> {
    Hmac::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size")
}

/// [`signature`] of `body` with `mac`, [`keyed`] with the secret.
fn signed(mut mac: Hmac<Sha256>, body: &[u8]) -> String {
    mac.update(body);
    let mut signed = String::from("sha256=");
    hookspecs::push_hex(&mut signed, &mac.finalize().into_bytes());
    signed
}

#[hookimpl]
impl AppHooks for Webhooks {
    async fn after_change(&self, delivery: &Delivery, _: &HookContext) -> HookResult<()> {
        self.send(delivery).await
    }
}

hookspecs::export_plugin!(export, config = Config);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231, test case 2: key "Jefe".
        let body = b"what do ya want for nothing?";
        assert_eq!(
            signature("Jefe", body),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_kept_key_signs_each_body_as_the_secret_does() {
        let mac = keyed("s3cret");
        for body in [&b"{}"[..], b"", &[b'x'; 200]] {
            assert_eq!(signed(mac.clone(), body), signature("s3cret", body));
        }
        assert_ne!(signed(mac, b"{}"), signature("other", b"{}"));
    }

    #[test]
    fn a_bad_url_or_event_is_refused_naming_the_setting() {
        let with = |url: &str, events: Option<Vec<String>>| {
            target(&Config {
                url: url.into(),
                events,
                ..Config::default()
            })
        };
        let scheme = with("ftp://example.org/x", None).unwrap_err();
        assert!(
            scheme.contains("`url` \"ftp://example.org/x\" in [plugins.webhooks]"),
            "{scheme}"
        );
        assert!(with("/just/a/path", None).is_err());
        let event = with("http://127.0.0.1:9/x", Some(vec!["user.gone".into()])).unwrap_err();
        assert!(event.contains("\"user.gone\" in `events`"), "{event}");
        assert!(with("http://127.0.0.1:9/x", Some(vec!["user.created".into()])).is_ok());
        assert!(with("https://example.org/x", None).is_ok());
        let password = with("https://hook:s3cret@example.org/x", None).unwrap_err();
        assert!(
            password.contains("must not carry a user or password"),
            "{password}"
        );
        assert!(!password.contains("s3cret"), "{password}");
        // An `@` past the host is the path's or the query's.
        assert!(with("https://example.org/x?by=a@b", None).is_ok());
    }

    #[test]
    fn without_a_url_it_is_idle_and_an_unreadable_ca_file_is_refused() {
        let idle = export(Config::default()).ok().unwrap();
        assert_eq!(idle.idle.as_deref(), Some(IDLE));
        assert!(idle.plugin.impls().is_empty());
        let error = export(Config {
            url: "https://example.org/x".into(),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Config::default()
        })
        .err()
        .unwrap();
        assert!(
            error.starts_with(
                "`ca_file` in [plugins.webhooks]: CA file /nonexistent/ca.pem: cannot be read"
            ),
            "{error}"
        );
    }

    /// An after-commit hook tested with the kit: the operation commits,
    /// `kit.deliver()` hands its events to the hook as the app's worker
    /// would, and the receiver got each once, signed, keyed by the event.
    #[test]
    fn committed_events_are_posted_once_each_with_their_id_as_key() {
        use app_testkit::e2e::receiver::Receiver;
        use app_testkit::{HookTest, admin, new_user, run};

        let receiver = Receiver::start();
        run(async {
            let kit = HookTest::new()
                .await
                .config("webhooks", json!({"url": receiver.url, "secret": "s3cret"}))
                .register("webhooks", crate::app_plugin_register)
                .await;
            let ada = kit
                .run(admin(), |ctx| async move {
                    ctx.services().create_user(&ctx, new_user("ada")).await
                })
                .await
                .unwrap();
            // Nothing is posted before delivery, and a rolled-back
            // operation leaves nothing to deliver.
            assert!(receiver.received().is_empty());
            let vetoed = kit
                .run(admin(), |ctx| async move {
                    ctx.services().create_user(&ctx, new_user("bob")).await?;
                    Err::<(), _>(ApiError::invalid("x", "rolled back on purpose"))
                })
                .await;
            assert!(vetoed.is_err());

            let delivered = kit.deliver().await;
            assert_eq!(delivered.len(), 1, "{delivered:?}");
            assert_eq!(
                (delivered[0].plugin.as_str(), delivered[0].event),
                ("webhooks", "user.created")
            );
            assert_eq!(delivered[0].outcome, Ok(()));
            let got = receiver.received();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].json["event"], "user.created");
            assert_eq!(got[0].json["data"]["id"], ada.id);
            assert_eq!(got[0].json["id"].as_str(), Some(got[0].key.as_str()));
            assert_eq!(got[0].signature, signature("s3cret", &got[0].body));
            // Delivered once: a second call has nothing new.
            assert!(kit.deliver().await.is_empty());
        });
    }

    /// With `events`, the others are never given to the plugin: nothing is
    /// posted for them, and no delivery is listed.
    #[test]
    fn events_left_out_are_not_delivered_at_all() {
        use app_testkit::e2e::receiver::Receiver;
        use app_testkit::{HookTest, admin, new_user, run};

        let receiver = Receiver::start();
        run(async {
            let kit = HookTest::new()
                .await
                .config(
                    "webhooks",
                    json!({"url": receiver.url, "events": ["space.created"]}),
                )
                .register("webhooks", crate::app_plugin_register)
                .await;
            kit.run(admin(), |ctx| async move {
                ctx.services().create_user(&ctx, new_user("ada")).await?;
                let space = hookspecs::NewSpace {
                    name: "open".into(),
                    parent_id: None,
                    access: Access::Open,
                    default_role: None,
                };
                ctx.services().create_space(&ctx, space).await
            })
            .await
            .unwrap();
            let delivered = kit.deliver().await;
            let events: Vec<&str> = delivered.iter().map(|d| d.event).collect();
            assert_eq!(events, ["space.created"], "{delivered:?}");
            assert_eq!(receiver.received().len(), 1);
        });
    }
}
