//! The HTTP transport: accepting connections (with a cap, and a backoff
//! when accepting fails), HTTP/1 and HTTP/2 through hyper, the timeouts
//! that keep a slow or silent client from holding the server, reading the
//! body within its limit, and turning the pipeline's [`Answer`] into a
//! response. The pipeline does the rest.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hookspecs::ApiError;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::pipeline::{self, Answer, BodyResult, Head};
use crate::state::State;

/// Serves until `shutdown` completes; then stops accepting, lets requests
/// in flight finish, gives other connections a short grace and returns.
///
/// # Errors
/// None in practice: accept failures are logged and retried.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let limits = state.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.header_timeout);
    let shared = Arc::new(Shared {
        state: state.clone(),
        ids: RequestIds::new(),
        log: AccessLog::start(),
    });
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { backoff.reset(); stream }
                Err(error) => { backoff.wait(&error).await; continue; }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(Watched {
            io: stream,
            activity: activity.clone(),
        });
        let (shared, conn_activity) = (shared.clone(), activity.clone());
        let service = hyper::service::service_fn(move |req| {
            let (shared, activity) = (shared.clone(), conn_activity.clone());
            async move {
                let _busy = activity.busy();
                Ok::<_, Infallible>(respond(&shared, req).await)
            }
        });
        let conn = graceful.watch(builder.serve_connection(io, service).into_owned());
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                outcome = conn => if let Err(error) = outcome {
                    tracing::debug!(%error, "connection ended with an error");
                },
                () = activity.idle_for(idle) => tracing::debug!("closing an idle connection"),
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    let grace = limits.shutdown_grace;
    let drained = async {
        // Every connection closed by itself, or: the grace is over and no
        // request is running (a client still sending is not waited for).
        tokio::select! {
            () = graceful.shutdown() => {}
            () = async {
                tokio::time::sleep(grace).await;
                state.in_flight.idle().await;
            } => {}
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), drained)
        .await
        .is_err()
    {
        tracing::warn!("requests still running after 30 s; stopping anyway");
    }
    shared.log.flush().await;
    Ok(())
}

/// What every connection's requests share.
struct Shared {
    state: Arc<State>,
    ids: RequestIds,
    log: AccessLog,
}

/// One request: its head to the pipeline, its body read only if the
/// pipeline asks for it, its answer as a response, one log line.
async fn respond(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let head = Head {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        authorization: header(&req, &AUTHORIZATION),
        content_length: header(&req, &CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        request_id: header(&req, &X_REQUEST_ID)
            .filter(|id| valid_request_id(id))
            .unwrap_or_else(|| shared.ids.next()),
    };
    let limits = &shared.state.limits;
    let body = read_body(req.into_body(), limits.body_limit, limits.body_timeout);
    let answer = pipeline::handle(&shared.state, &head, body).await;
    let status = answer.status;
    let response = response(answer, &head.request_id);
    shared.log.line(head, status, started.elapsed());
    response
}

/// Named by constants: a name given as a string is parsed on every lookup.
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn header(req: &Request<Incoming>, name: &HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A client's own request id is echoed only if it is short printable ASCII.
fn valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The body, at most `limit` bytes, within `timeout`. Past the limit the
/// rest is not read: the 413 goes out and the connection closes.
async fn read_body(mut body: Incoming, limit: usize, timeout: Duration) -> BodyResult {
    if body.is_end_stream() {
        // None to wait for (a GET's): no timer.
        return Ok(Bytes::new());
    }
    let read = async {
        let mut kept = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ApiError::bad_request("the body could not be read"))?;
            if let Some(data) = frame.data_ref() {
                if kept.len() + data.len() > limit {
                    return Err(pipeline::too_large(limit));
                }
                kept.extend_from_slice(data);
            }
        }
        Ok(kept.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                408,
                "request_timeout",
                format!("the body did not arrive within {} s", timeout.as_secs_f64()),
            ))
        })
}

fn response(answer: Answer, request_id: &str) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = answer
        .body
        .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap_or_default()));
    let mut response = Response::new(Full::new(body.clone().unwrap_or_default()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    if matches!(answer.status, 408 | 413) {
        // The rest of the body is not read: tell the client the connection ends.
        headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if status == StatusCode::NO_CONTENT {
        headers.remove(CONTENT_LENGTH);
    }
    response
}

/// Beyond the connection cap: a short 503 if the socket takes it at once,
/// then close. Never waits on the client.
fn refuse(stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\nretry-after: 1\r\ncontent-length: 75\r\n\r\n\
{\"error\":{\"code\":\"busy\",\"message\":\"too many connections; try again later\"}}";
    let _ = stream.try_write(BUSY);
    tracing::debug!("connection refused: at the connection cap");
}

/// Waits between failed accepts, so that an exhausted file-descriptor
/// table does not turn the accept loop into a busy loop flooding the log:
/// 10 ms doubling up to 1 s, one log line per second at most.
#[derive(Default)]
struct Backoff {
    delay: Duration,
    failures: u64,
    logged: Option<Instant>,
}

impl Backoff {
    async fn wait(&mut self, error: &std::io::Error) {
        self.failures += 1;
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        if self
            .logged
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(%error, failures = self.failures, "accept failed; retrying in {:?}", self.delay);
            self.logged = Some(Instant::now());
        }
        tokio::time::sleep(self.delay).await;
    }

    fn reset(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting connections again");
        }
        *self = Backoff::default();
    }
}

/// The access log: one line per request, `METHOD PATH STATUS LATENCYms
/// REQUEST-ID` (target `app::http`, level INFO). A request only hands its
/// fields to a thread of the log's own, which formats and writes them:
/// that thread wakes for the first line after a quiet spell, then takes
/// whatever arrived every [`AccessLog::BATCH`], so that under load no
/// request pays for formatting a line nor for waking a thread. A line's
/// timestamp is when it is written, at most that much later.
struct AccessLog(std::sync::mpsc::Sender<Entry>);

enum Entry {
    Line(Head, u16, Duration),
    /// Answered once every line sent before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl AccessLog {
    const BATCH: Duration = Duration::from_millis(10);

    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || Self::write(&rx));
        if let Err(error) = spawned {
            tracing::warn!(%error, "no thread for the access log: requests go unlogged");
        }
        AccessLog(tx)
    }

    /// Logs a request (if the filter wants `app::http` at INFO).
    fn line(&self, head: Head, status: u16, took: Duration) {
        if tracing::enabled!(target: "app::http", tracing::Level::INFO) {
            let _ = self.0.send(Entry::Line(head, status, took));
        }
    }

    /// Completes once every line logged so far is written (at shutdown).
    async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.0.send(Entry::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }

    fn write(entries: &std::sync::mpsc::Receiver<Entry>) {
        while let Ok(first) = entries.recv() {
            for entry in std::iter::once(first).chain(entries.try_iter()) {
                match entry {
                    Entry::Line(head, status, took) => tracing::info!(
                        target: "app::http",
                        "{} {} {} {:.1}ms {}",
                        head.method,
                        head.path,
                        status,
                        took.as_secs_f64() * 1e3,
                        head.request_id,
                    ),
                    Entry::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
            // Lines sent meanwhile wake no one.
            std::thread::sleep(Self::BATCH);
        }
    }
}

/// Request ids for requests that bring none: a per-process prefix and a
/// counter, unique across instances and cheap.
struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        RequestIds {
            prefix: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            counter: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
    }
}

/// When a connection last moved bytes, and how many of its requests are
/// being answered: a connection is idle when it answers nothing and moves
/// nothing.
#[derive(Default)]
struct Activity {
    last: AtomicU64,
    busy: AtomicUsize,
}

struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Activity {
    fn now() -> u64 {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last.store(Self::now(), Ordering::Relaxed);
    }

    fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self)
    }

    /// Completes once the connection has been idle for `limit`.
    async fn idle_for(&self, limit: Duration) {
        self.touch();
        let limit_ms = limit.as_millis() as u64;
        loop {
            let quiet = Self::now().saturating_sub(self.last.load(Ordering::Relaxed));
            if quiet >= limit_ms && self.busy.load(Ordering::Relaxed) == 0 {
                return;
            }
            let wait = if quiet >= limit_ms {
                limit_ms
            } else {
                limit_ms - quiet
            };
            tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
        }
    }
}

/// The socket, noting each time bytes move.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
