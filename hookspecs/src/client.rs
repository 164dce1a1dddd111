//! The outgoing HTTP client for plugins that talk to the world (webhooks,
//! mail relays, indexes): hyper-util's pooled client over hyper, for
//! `http://` and `https://` URLs alike.
//!
//! [`send`] is the same call in a native plugin and in a component: one
//! request, its whole answer (at most [`MAX_BODY`] bytes each way, no
//! redirect followed). Natively it goes through a client the SDK keeps;
//! in a component, through the host's `outbound` import, which allows it
//! only in an after-commit hook and only to the hosts the operator grants
//! the plugin (`[plugins.<name>.sandbox] hosts`), within the call's time
//! limit. A native plugin that wants its own client (a CA file, its own
//! timeouts) builds one with [`http_client`].
//!
//! TLS is rustls with the `ring` provider. A server's certificate must
//! chain to one of the platform's root certificates (the system store, as
//! `rustls-native-certs` finds it: `/etc/ssl/certs` and friends, or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`) or to a certificate of the CA file
//! given to [`http_client`], for receivers behind a private CA.
//!
//! ```no_run
//! use hookspecs::bytes::Bytes;
//! use hookspecs::http_body_util::Full;
//! use hookspecs::hyper::Request;
//!
//! # async fn send() -> Result<(), Box<dyn std::error::Error>> {
//! let client = hookspecs::client::http_client(None)?;
//! let request = Request::post("https://example.org/hook").body(Full::new(Bytes::from("{}")))?;
//! if let Err(e) = client.request(request).await {
//!     // "client error (Connect): invalid peer certificate: UnknownIssuer ..."
//!     hookspecs::tracing::warn!("{}", hookspecs::client::describe(&e));
//! }
//! # Ok(())
//! # }
//! ```

/// The most bytes [`send`] sends or reads of a body: the host holds them
/// outside a component's memory cap.
pub const MAX_BODY: usize = 1 << 20;

/// A request for [`send`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// `GET`, `POST`, ...
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Its headers, name and value, in order.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

impl Outgoing {
    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Outgoing {
        Outgoing {
            method: "POST".into(),
            url: url.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// With one more header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Outgoing {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The answer [`send`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// Its headers, name and value.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

/// Sends `request` and reads its answer, through the host in a component.
///
/// # Errors
///
/// A malformed request (400); a body over [`MAX_BODY`] (413) or an answer
/// over it (502); a failure to connect or to read (502, naming the host
/// and port, never the path, the query or a `user:password@`). In a component
/// also: outside an after-commit hook or to a host not granted (403), no
/// answer within the call's time limit (504).
#[cfg(target_family = "wasm")]
pub async fn send(request: Outgoing) -> Result<Answer, crate::ApiError> {
    use crate::guest::bindings::app::plugin::outbound;
    let request = outbound::Request {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: request.body,
    };
    match outbound::send(&request) {
        Ok(answer) => Ok(Answer {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        }),
        Err(e) => Err(crate::ApiError::new(e.status, &e.code, e.message)),
    }
}

#[cfg(not(target_family = "wasm"))]
mod native;
#[cfg(not(target_family = "wasm"))]
pub use native::{CaFileError, HttpClient, describe, http_client, send, send_with, url};
