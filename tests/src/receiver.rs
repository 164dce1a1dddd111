//! A webhook receiver on 127.0.0.1 for the tests: records every request
//! (headers that matter, the body) and answers as scripted: a status, or
//! never (the request hangs until its connection closes). Plain HTTP, or
//! HTTPS with a certificate the test gives ([`Receiver::tls`]).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookspecs::rustls;
use hookspecs::rustls::pki_types::pem::PemObject;
use hookspecs::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::DEADLINE;

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// With this status.
    Status(u16),
    /// Never: the request stays open until the sender goes away.
    Hang,
}

/// Decides the answer to the `n`-th request (0-based, counting all).
pub type Script = Box<dyn Fn(usize) -> Answer + Send>;

/// One request received.
#[derive(Clone, Debug)]
pub struct Received {
    /// `Idempotency-Key`.
    pub key: String,
    /// `X-Signature`.
    pub signature: String,
    /// `X-Attempt`.
    pub attempt: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The body as JSON (`Null` if it is not).
    pub json: Value,
    /// The answer it got.
    pub answer: Answer,
    /// When it arrived.
    pub at: Instant,
}

struct Shared {
    script: Script,
    received: Vec<Received>,
}

/// A running receiver; stops with the test process.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook` (`https://` for [`Receiver::tls`]).
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Starts one answering 200 to everything.
    pub fn start() -> Receiver {
        Self::scripted(|_| Answer::Status(200))
    }

    /// Starts one answering `answer` to the first `count` requests, then
    /// 200 to everything: a failure, or a hang, that the retries get past.
    pub fn failing_first(count: usize, answer: Answer) -> Receiver {
        Self::scripted(move |n| {
            if n < count {
                answer
            } else {
                Answer::Status(200)
            }
        })
    }

    /// Starts one answering as `script` says.
    pub fn scripted(script: impl Fn(usize) -> Answer + Send + 'static) -> Receiver {
        Self::serving("http", None, Box::new(script))
    }

    fn serving(scheme: &str, tls: Option<TlsAcceptor>, script: Script) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for the receiver");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!(
            "{scheme}://{}/hook",
            listener.local_addr().expect("its address")
        );
        let shared = Arc::new(Mutex::new(Shared {
            script,
            received: Vec::new(),
        }));
        let serving = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the receiver");
            runtime.block_on(serve(listener, tls, serving));
        });
        Receiver { url, shared }
    }

    /// Starts one answering 200 to everything over HTTPS only, presenting
    /// `cert_chain` (PEM, the server's certificate first; it must name
    /// the IP address 127.0.0.1) with its private key `key` (PEM).
    pub fn tls(cert_chain: &str, key: &str) -> Receiver {
        let chain = CertificateDer::pem_slice_iter(cert_chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the receiver's certificate chain");
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("the receiver's key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a usable certificate and key");
        Self::serving(
            "https",
            Some(TlsAcceptor::from(Arc::new(config))),
            Box::new(|_| Answer::Status(200)),
        )
    }

    /// Answers later requests as `script` says.
    pub fn set(&self, script: impl Fn(usize) -> Answer + Send + 'static) {
        self.lock().script = Box::new(script);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Waits (bounded by [`DEADLINE`]) until `n` requests arrived; answers them.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "waited {DEADLINE:?} for {n} webhook requests, got {}: {:?}",
                got.len(),
                got.iter().map(|r| &r.json).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Mutex<Shared>>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, shared).await,
                // A failed handshake (a client that does not trust the
                // certificate) records nothing: no request arrived.
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        connection(stream, shared).await;
                    }
                }
            }
        });
    }
}

async fn connection(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    shared: Arc<Mutex<Shared>>,
) {
    let service = hyper::service::service_fn(move |req| answer(req, shared.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn answer(
    req: Request<Incoming>,
    shared: Arc<Mutex<Shared>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (key, signature, attempt) = (
        header("Idempotency-Key"),
        header("X-Signature"),
        header("X-Attempt"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    let answer = {
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let answer = (shared.script)(shared.received.len());
        shared.received.push(Received {
            key,
            signature,
            attempt,
            json: serde_json::from_slice(&body).unwrap_or(Value::Null),
            body,
            answer,
            at: Instant::now(),
        });
        answer
    };
    match answer {
        Answer::Hang => std::future::pending().await,
        Answer::Status(status) => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(response)
        }
    }
}
