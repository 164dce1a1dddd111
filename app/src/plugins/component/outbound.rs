//! A component's outbound HTTP (the WIT `outbound` interface): what lets an
//! integration such as a webhook sender run sandboxed. Only from an
//! after-commit hook (what it sends then reports a committed fact; from a
//! hook inside the transaction it would report what may still roll back),
//! only to the hosts `[plugins.<name>.sandbox] hosts` lists, bounded in
//! body sizes and in time (the call's own deadline).
//!
//! The request goes through the SDK's [`client::send`], as a native
//! plugin's would: HTTP/1.1, HTTPS against the platform's roots, bodies of
//! at most 1 MiB each way. It follows no redirect: a 3xx is the
//! component's answer, so a granted host cannot send it on to another.

use std::sync::Arc;
use std::time::Instant;

use hookspecs::ApiError;
use hookspecs::client::{self, Outgoing};
use hookspecs::hyper::http::uri::Authority;

use super::wit::app::plugin::outbound::{Request, Response};
use super::wit::{Hook, hook_name};

/// What one instance may send: its plugin's granted hosts, and the hook
/// being called now (none between calls and in `describe`).
pub struct Outbound {
    hosts: Arc<[String]>,
    hook: Option<Hook>,
}

/// Whether `host` is a bare `host` or `host:port`, as `hosts` lists them.
pub fn is_host(host: &str) -> bool {
    match host.parse::<Authority>() {
        Ok(authority) => !host.contains('@') && authority.as_str() == host,
        Err(_) => false,
    }
}

impl Outbound {
    /// An instance's grant: `hosts`, no hook yet.
    pub fn new(hosts: Arc<[String]>) -> Outbound {
        Outbound { hosts, hook: None }
    }

    /// The hook being called now, or none when the call ends.
    pub fn during(&mut self, hook: Option<Hook>) {
        self.hook = hook;
    }

    /// Sends `request` for `plugin` through the SDK's [`client::send`],
    /// answering by `deadline` (the call's).
    ///
    /// # Errors
    ///
    /// See the WIT interface's `send`: 403 outside an after-commit hook or
    /// to a host not granted, 400 for a malformed request, 413, 502, 504.
    pub async fn send(
        &self,
        plugin: &str,
        deadline: Instant,
        request: Request,
    ) -> Result<Response, ApiError> {
        self.may_send()?;
        let host = self.granted(plugin, &request)?;
        let request = Outgoing {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        // The epoch interrupts only wasm: a wait here ends at the call's
        // deadline, not when the call's future is dropped, later.
        let answer = tokio::time::timeout(remaining, client::send(request))
            .await
            .map_err(|_| {
                ApiError::new(
                    504,
                    "gateway_timeout",
                    format!("no answer from {host} within the plugin's time limit"),
                )
            })??;
        Ok(Response {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }

    /// Refuses a request outside an after-commit hook.
    pub fn may_send(&self) -> Result<(), ApiError> {
        let refused = |why: String| {
            Err(ApiError::new(
                403,
                "forbidden",
                format!(
                    "outbound HTTP is allowed only in an after-commit hook (after_*, \
                     after_change): {why}"
                ),
            ))
        };
        match self.hook.map(hook_name) {
            Some(name) if name.starts_with("after_") => Ok(()),
            Some(name) => refused(format!("`{name}` runs inside the operation's transaction")),
            None => refused("this is not a hook call".into()),
        }
    }

    /// The host `request` goes to, once it is one of `hosts`; a request
    /// that sets its own `Host` header is refused (it would name another).
    fn granted(&self, plugin: &str, request: &Request) -> Result<String, ApiError> {
        let bad = |why: String| ApiError::new(400, "bad_request", why);
        let uri = hookspecs::client::url(&request.url)?;
        let host = uri.authority().map(Authority::as_str).unwrap_or_default();
        if !is_host(host) {
            return Err(bad(format!(
                "URL {:?}: give a host, without a user",
                request.url
            )));
        }
        if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Err(ApiError::new(
                403,
                "forbidden",
                format!(
                    "outbound HTTP to {host} is not granted: list it in \
                     [plugins.{plugin}.sandbox] hosts"
                ),
            ));
        }
        if request
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            return Err(bad("the Host header is the URL's: do not set it".into()));
        }
        Ok(host.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> Request {
        Request {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        }
    }

    fn granted(hosts: &[&str], hook: Option<Hook>) -> Outbound {
        let mut outbound = Outbound::new(hosts.iter().map(|h| h.to_string()).collect());
        outbound.during(hook);
        outbound
    }

    #[test]
    fn only_an_after_commit_hook_may_send() {
        assert!(
            granted(&[], Some(Hook::AfterUserCreated))
                .may_send()
                .is_ok()
        );
        assert!(granted(&[], Some(Hook::AfterChange)).may_send().is_ok());
        let refused = granted(&[], Some(Hook::OnUserCreated))
            .may_send()
            .unwrap_err();
        assert_eq!(refused.status, 403);
        assert!(
            refused.message.contains("`on_user_created` runs inside"),
            "{}",
            refused.message
        );
        for hook in [Some(Hook::Authorize), Some(Hook::Authenticate), None] {
            assert_eq!(granted(&[], hook).may_send().unwrap_err().status, 403);
        }
    }

    #[test]
    fn a_receiver_that_never_answers_ends_at_the_calls_deadline() {
        // Accepts the connection, then never answers (kept open until the
        // test ends).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let outbound = granted(&[&host], Some(Hook::AfterChange));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(50);
        let sent =
            runtime.block_on(outbound.send("p", deadline, request(&format!("http://{host}/"))));
        let refused = sent.unwrap_err();
        assert_eq!(
            (refused.status, refused.code.as_str()),
            (504, "gateway_timeout")
        );
        assert_eq!(
            refused.message,
            format!("no answer from {host} within the plugin's time limit")
        );
        drop(listener);
    }

    #[test]
    fn only_a_granted_host_exactly_is_reached() {
        let outbound = granted(&["127.0.0.1:8080", "Example.com"], None);
        assert!(
            outbound
                .granted("p", &request("http://127.0.0.1:8080/hook"))
                .is_ok()
        );
        assert!(
            outbound
                .granted("p", &request("https://example.COM/hook"))
                .is_ok()
        );
        for other in [
            "http://127.0.0.1:8081/",
            "http://127.0.0.1/",
            "https://example.com:8443/",
        ] {
            let refused = outbound.granted("p", &request(other)).unwrap_err();
            assert_eq!(refused.status, 403, "{other}");
            assert!(
                refused.message.contains("[plugins.p.sandbox] hosts"),
                "{}",
                refused.message
            );
        }
        for bad in ["ftp://example.com/", "/relative", "http://u:p@example.com/"] {
            assert_eq!(
                outbound.granted("p", &request(bad)).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        let mut spoofed = request("http://example.com/");
        spoofed.headers.push(("Host".into(), "internal".into()));
        assert_eq!(outbound.granted("p", &spoofed).unwrap_err().status, 400);
    }
}
