//! The native side of [`super`]: a client the SDK keeps, or one a plugin
//! builds with its own CA file. Not in the SDK built for wasm32-wasip2,
//! where the host sends for the component.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, RootCertStore};

use super::{Answer, MAX_BODY, Outgoing};
use crate::error::ApiError;

/// Sends `request` and reads its answer, through a client the SDK keeps
/// (the platform's roots, no CA file), without a time limit of its own:
/// wrap it in `tokio::time::timeout`.
///
/// # Errors
///
/// A malformed request (400); a body over [`MAX_BODY`] (413) or an answer
/// over it (502); a failure to connect or to read (502, naming the host
/// and port, never the path, the query or a `user:password@`). In a component
/// also: outside an after-commit hook or to a host not granted (403), no
/// answer within the call's time limit (504).
pub async fn send(request: Outgoing) -> Result<Answer, ApiError> {
    static CLIENT: std::sync::LazyLock<HttpClient> =
        std::sync::LazyLock::new(|| http_client(None).expect("a client without a CA file builds"));
    send_with(&CLIENT, request).await
}

/// `url` as this client sends to it: an `http://` or `https://` URL.
///
/// # Errors
///
/// 400 `bad_request`, saying why, for anything else.
pub fn url(url: &str) -> Result<hyper::Uri, ApiError> {
    let bad = |why: String| ApiError::new(400, "bad_request", why);
    let uri: hyper::Uri = url.parse().map_err(|e| bad(format!("URL {url:?}: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad(format!(
            "URL {url:?}: only http:// and https:// URLs are sent"
        )));
    }
    Ok(uri)
}

/// [`send`] through `client`, one [`http_client`] built (a CA file of the
/// plugin's own); native plugins only, a component has the host's client.
///
/// # Errors
///
/// As [`send`]'s.
pub async fn send_with(client: &HttpClient, request: Outgoing) -> Result<Answer, ApiError> {
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    use hyper::header::{HeaderName, HeaderValue};

    let bad = |why: String| ApiError::new(400, "bad_request", why);
    if request.body.len() > MAX_BODY {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!(
                "the request's body is {} bytes, over the limit of {MAX_BODY} bytes (1 MiB)",
                request.body.len()
            ),
        ));
    }
    let uri = url(&request.url)?;
    // The host and port, never a `user:password@` the URL may carry: the
    // message goes to logs and to a delivery's `last_error`.
    let target = match (uri.host(), uri.port_u16()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (host, None) => host.unwrap_or_default().to_owned(),
        (None, Some(_)) => String::new(),
    };
    let method = hyper::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| bad(format!("{:?} is not an HTTP method", request.method)))?;
    let mut built = hyper::Request::builder().method(method).uri(uri);
    for (name, value) in &request.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("{name:?} is not a header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| bad(format!("the value of header {name} is not valid")))?;
        built = built.header(header, value);
    }
    let built = built
        .body(Full::new(Bytes::from(request.body)))
        .map_err(|e| bad(format!("the request is not valid: {e}")))?;
    let failed = |what: &str, why: String| {
        ApiError::new(502, "bad_gateway", format!("{what} {target} failed: {why}"))
    };
    let answer = client
        .request(built)
        .await
        .map_err(|e| failed("the request to", describe(&e)))?;
    let (parts, body) = answer.into_parts();
    let body = Limited::new(body, MAX_BODY).collect().await.map_err(|e| {
        if e.is::<LengthLimitError>() {
            ApiError::new(
                502,
                "response_too_large",
                format!("the answer of {target} is over {MAX_BODY} bytes (1 MiB), the most read"),
            )
        } else {
            failed("reading the answer of", e.to_string())
        }
    })?;
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    Ok(Answer {
        status: parts.status.as_u16(),
        headers,
        body: body.to_bytes().to_vec(),
    })
}

/// The client [`http_client`] builds: `http://` and `https://` (HTTP/1.1),
/// requests with a [`Full`] body.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A CA file [`http_client`] could not use.
#[derive(Debug, thiserror::Error)]
#[error("CA file {}: {why}", path.display())]
pub struct CaFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub why: String,
}

/// A client trusting the platform's root certificates and, if given, every
/// certificate in `ca_file` (PEM, one or more `BEGIN CERTIFICATE` blocks).
/// Build it once (at startup, in the plugin's constructor) and keep it:
/// it pools connections.
///
/// # Errors
///
/// `ca_file` cannot be read, holds no PEM certificate, or holds one that
/// cannot serve as a trust anchor.
///
/// ```
/// use std::path::Path;
/// use hookspecs::client::http_client;
///
/// let dir = std::env::temp_dir().join(format!("ca-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let not_pem = dir.join("ca.pem");
/// std::fs::write(&not_pem, "not a certificate").unwrap();
/// let refused = http_client(Some(&not_pem)).err().unwrap();
/// assert_eq!(refused.why, "holds no PEM certificate");
/// assert!(refused.to_string().ends_with("ca.pem: holds no PEM certificate"));
/// std::fs::remove_dir_all(&dir).unwrap();
/// assert!(http_client(Some(Path::new("/nonexistent.pem"))).is_err());
/// ```
pub fn http_client(ca_file: Option<&Path>) -> Result<HttpClient, CaFileError> {
    let mut roots = RootCertStore::empty();
    let platform = rustls_native_certs::load_native_certs();
    let (added, _unusable) = roots.add_parsable_certificates(platform.certs);
    if let Some(path) = ca_file {
        let refuse = |why: String| CaFileError {
            path: path.to_owned(),
            why,
        };
        let pem = std::fs::read(path).map_err(|e| refuse(format!("cannot be read: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refuse(format!("is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(refuse("holds no PEM certificate".into()));
        }
        for (n, cert) in certs.into_iter().enumerate() {
            roots
                .add(cert)
                .map_err(|e| refuse(format!("certificate {} is unusable: {e}", n + 1)))?;
        }
    } else if added == 0 {
        // Said once, when the client is built: every https:// request
        // would otherwise fail with an unknown issuer and no hint why.
        tracing::warn!(
            "no root certificate found in the platform's store ({} problem(s) reading it): \
             https:// requests will be refused; give a CA file",
            platform.errors.len()
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// `error` and its causes, joined with ": " (hyper-util's own message is
/// only "client error (Connect)"), with a hint when the server's
/// certificate has an unknown issuer.
///
/// ```
/// use hookspecs::client::describe;
///
/// #[derive(Debug)]
/// struct Outer(std::io::Error);
/// impl std::fmt::Display for Outer {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("client error (Connect)")
///     }
/// }
/// impl std::error::Error for Outer {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// assert_eq!(describe(&Outer(refused)), "client error (Connect): connection refused");
/// ```
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut unknown_issuer = false;
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        unknown_issuer |= matches!(
            tls_error(e),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        );
        cause = e.source();
    }
    if unknown_issuer {
        text.push_str(
            " (the server's certificate is not signed by a trusted root: \
             for a private CA, give its certificate as the CA file)",
        );
    }
    text
}

/// The rustls error `error` is or wraps: tokio-rustls puts it in an
/// `io::Error`, which hyper-rustls wraps in another (whose `source()`
/// skips both).
fn tls_error<'e>(error: &'e (dyn Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_not_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = http_client(Some(&missing)).err().unwrap().to_string();
        assert!(error.contains("missing.pem: cannot be read"), "{error}");
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let error = http_client(Some(&text)).err().unwrap().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }

    #[test]
    fn send_refuses_a_bad_request_and_caps_the_answer() {
        use std::io::{Read, Write};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let refused = |request: Outgoing| runtime.block_on(send(request)).unwrap_err();
        let big = Outgoing::post("http://127.0.0.1:1/", vec![0; MAX_BODY + 1]);
        assert_eq!(refused(big).status, 413);
        assert_eq!(refused(Outgoing::post("ftp://127.0.0.1/", "")).status, 400);
        let bad_header = Outgoing::post("http://127.0.0.1:1/", "").header("a b", "v");
        assert_eq!(refused(bad_header).status, 400);

        // A server answering 1 byte over the cap, once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0; 4096];
            let _ = stream.read(&mut request).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                MAX_BODY + 1
            );
            stream.write_all(head.as_bytes()).unwrap();
            let _ = stream.write_all(&vec![b'x'; MAX_BODY + 1]);
        });
        let over = refused(Outgoing::post(&url, "{}"));
        assert_eq!(
            (over.status, over.code.as_str()),
            (502, "response_too_large")
        );
        assert!(
            over.message.contains("over 1048576 bytes"),
            "{}",
            over.message
        );
        server.join().unwrap();
    }

    #[test]
    fn describe_names_every_cause_and_explains_an_unknown_issuer() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let text = describe(&Outer(io));
        assert!(
            text.starts_with("client error (Connect): invalid peer certificate: UnknownIssuer"),
            "{text}"
        );
        assert!(text.contains("not signed by a trusted root"), "{text}");
        let plain = std::io::Error::other("refused");
        assert_eq!(describe(&plain), "refused");
    }
}
