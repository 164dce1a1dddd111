//! Webhooks: every committed entity event, POSTed as JSON to one URL,
//! after the commit, through the outbox (retried with backoff, then dead;
//! see `[deliveries]`).
//!
//! ```toml
//! [plugins.webhooks]
//! url = "http://127.0.0.1:9000/events"   # required; http only
//! secret = "..."                          # signs each body
//! events = ["user.created", "membership.created"]   # optional: default all
//! timeout_ms = 5000                       # per request
//! ```
//!
//! The body is `{"id", "event", "data"}`; headers `Idempotency-Key: <id>`
//! (the same on every attempt) and `X-Signature: sha256=<hex HMAC-SHA256 of
//! the body with the secret>`. A 2xx answer is delivered; any other status,
//! a refused connection or a timeout is a failed attempt.

use std::time::Duration;

use hookspecs::bytes::Bytes;
use hookspecs::hmac::{Hmac, Mac};
use hookspecs::hooks_core::anyhow::{anyhow, bail};
use hookspecs::http_body_util::{BodyExt, Full};
use hookspecs::hyper::{Request, Uri};
use hookspecs::hyper_util::client::legacy::Client;
use hookspecs::hyper_util::client::legacy::connect::HttpConnector;
use hookspecs::hyper_util::rt::TokioExecutor;
use hookspecs::prelude::*;
use hookspecs::sha2::Sha256;

/// `[plugins.webhooks]`.
#[derive(serde::Deserialize)]
#[serde(crate = "hookspecs::serde", default, deny_unknown_fields)]
pub struct Config {
    /// Where events are POSTed.
    pub url: String,
    /// The HMAC key of `X-Signature`.
    pub secret: String,
    /// Only these events (`user.created`, ...); `None`: all.
    pub events: Option<Vec<String>>,
    /// How long one request may take.
    pub timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: String::new(),
            secret: String::new(),
            events: None,
            timeout_ms: 5_000,
        }
    }
}

pub struct Webhooks {
    config: Config,
    target: Result<Uri, String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Webhooks {
    pub fn new(config: Config) -> Self {
        let target = target(&config);
        Webhooks {
            config,
            target,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends one event; `Ok` only on a 2xx answer.
    async fn send(&self, delivery: &Delivery) -> HookResult<()> {
        let wanted = self.config.events.as_ref();
        if wanted.is_some_and(|events| !events.iter().any(|e| e == delivery.change.name())) {
            return Ok(());
        }
        let uri = self.target.clone().map_err(|why| anyhow!(why))?;
        let body = serde_json::to_vec(&delivery.document())?;
        let request = Request::post(uri)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &delivery.event_id)
            .header("X-Signature", signature(&self.config.secret, &body))
            .header("X-Attempt", delivery.attempt.to_string())
            .body(Full::new(Bytes::from(body)))?;
        let limit = Duration::from_millis(self.config.timeout_ms.max(1));
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Read the answer to its end so the connection can be reused.
            response.into_body().collect().await?;
            Ok::<_, hookspecs::hooks_core::anyhow::Error>(status)
        };
        let status = tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| anyhow!("no answer from {} within {limit:?}", self.config.url))?
            .map_err(|e| anyhow!("POST {} failed: {e}", self.config.url))?;
        if !status.is_success() {
            bail!("POST {} answered {status}", self.config.url);
        }
        Ok(())
    }
}

fn target(config: &Config) -> Result<Uri, String> {
    if config.url.is_empty() {
        return Err("set `url` in [plugins.webhooks]".into());
    }
    let uri: Uri = config
        .url
        .parse()
        .map_err(|e| format!("`url` {:?} is not a URL: {e}", config.url))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "`url` {:?} must be http://host[:port]/path (https is not supported yet)",
            config.url
        ));
    }
    if let Some(unknown) = config
        .events
        .iter()
        .flatten()
        .find(|e| !Change::NAMES.contains(&e.as_str()))
    {
        return Err(format!(
            "unknown event {unknown:?} in `events`; known: {}",
            Change::NAMES.join(", ")
        ));
    }
    Ok(uri)
}

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[hookimpl]
impl AppHooks for Webhooks {
    /// A missing or bad `url` fails the plugin at startup, not every event.
    async fn on_plugins_loaded(&self, _startup: &Startup) -> HookResult<()> {
        self.target.as_ref().map_err(|why| anyhow!("{why}"))?;
        Ok(())
    }

    async fn after_user_created(&self, _: &User, d: &Delivery, _: &HookContext) -> HookResult<()> {
        self.send(d).await
    }
    async fn after_user_modified(
        &self,
        _: &User,
        _: &User,
        d: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        self.send(d).await
    }
    async fn after_user_deleted(&self, _: &User, d: &Delivery, _: &HookContext) -> HookResult<()> {
        self.send(d).await
    }
    async fn after_space_created(
        &self,
        _: &Space,
        d: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        self.send(d).await
    }
    async fn after_space_modified(
        &self,
        _: &Space,
        _: &Space,
        d: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        self.send(d).await
    }
    async fn after_space_deleted(
        &self,
        _: &Space,
        d: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        self.send(d).await
    }
    async fn after_membership_created(
        &self,
        _: &Membership,
        d: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        self.send(d).await
    }
    async fn after_membership_modified(
        &self,
        _: &Membership,
        _: &Membership,
        d: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        self.send(d).await
    }
    async fn after_membership_deleted(
        &self,
        _: &Membership,
        d: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        self.send(d).await
    }
}

hookspecs::export_plugin!(Webhooks::new, config = Config);

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
    fn a_bad_url_or_event_is_refused() {
        let with = |url: &str, events: Option<Vec<String>>| {
            target(&Config {
                url: url.into(),
                events,
                ..Config::default()
            })
        };
        assert!(with("", None).is_err());
        assert!(with("https://example.org/x", None).is_err());
        assert!(with("http://127.0.0.1:9/x", Some(vec!["user.gone".into()])).is_err());
        assert!(with("http://127.0.0.1:9/x", Some(vec!["user.created".into()])).is_ok());
    }
}
