//! The outgoing HTTP client for plugins that talk to the world (webhooks,
//! mail relays, indexes): hyper-util's pooled client over hyper, for
//! `http://` and `https://` URLs alike.
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
