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
use hyper::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::access_log::{AccessLog, Copied, Line};
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
            refuse(stream, &shared.ids.next());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Connection {
            shared: shared.clone(),
            activity: Activity::default(),
        });
        let io = TokioIo::new(Watched {
            io: stream,
            conn: conn.clone(),
        });
        let watched = conn.clone();
        // One reference count per request: the connection's, which leads
        // to everything the request needs.
        let service = hyper::service::service_fn(move |req| {
            let conn = conn.clone();
            async move {
                let _busy = conn.activity.busy();
                Ok::<_, Infallible>(respond(&conn.shared, req).await)
            }
        });
        let conn = graceful.watch(builder.serve_connection(io, service).into_owned());
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                outcome = conn => if let Err(error) = outcome {
                    tracing::debug!(%error, "connection ended with an error");
                },
                () = watched.activity.idle_for(idle) => tracing::debug!("closing an idle connection"),
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

/// One connection: what its requests share, and its activity.
struct Connection {
    shared: Arc<Shared>,
    activity: Activity,
}

/// One request: its method and `Uri` to the router, its head and the
/// router's answer to the pipeline, its body read only if the pipeline
/// asks for it, its answer as a response, one log line. The head
/// borrows the request's own strings; the log gets the method by move and
/// copies of the path and the id (nothing that keeps hyper's read buffer
/// alive: see `access_log`), and the clock is read only if the line is
/// wanted.
async fn respond(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let logged = shared.log.wanted();
    let started = logged.then(Instant::now);
    let (parts, body) = req.into_parts();
    let read = ReadHeaders::of(&parts.headers);
    let request_id = match read.request_id {
        Some(id) if valid_request_id(id.as_bytes()) => id.clone(),
        _ => shared.ids.next(),
    };
    let head = Head {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authorization: read.authorization.and_then(|v| v.to_str().ok()),
        content_length: read
            .content_length
            .and_then(|v| v.to_str().ok()?.parse().ok()),
        // Checked above: visible ASCII only.
        request_id: request_id.to_str().unwrap_or_default(),
    };
    // Loaded once: the request keeps this table even if a reload swaps it.
    let router = shared.state.router.load_full();
    let found = router.find(&parts.method, &parts.uri).await;
    let limits = &shared.state.limits;
    // Whether the body is left (partly) unread: answered before it was
    // needed (a 401, a 404), or cut short (413, 408).
    let mut unread = !body.is_end_stream();
    let body = async {
        let read = read_body(body, limits.body_limit, limits.body_timeout).await;
        unread = read.is_err();
        read
    };
    let answer = pipeline::handle(&shared.state, &head, found, body).await;
    let status = answer.status;
    if let Some(started) = started {
        shared.log.line(Line {
            method: parts.method,
            path: Copied::of(parts.uri.path().as_bytes()),
            status,
            took: started.elapsed(),
            request_id: Copied::of(request_id.as_bytes()),
        });
    }
    response(answer, request_id, unread)
}

/// Named by constants: a name given as a string is parsed on every lookup.
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request headers the pipeline reads, each the first of its name,
/// found in one pass over the map: a lookup per name hashed each name
/// (three lookups, about 370 instructions a request).
#[derive(Default)]
struct ReadHeaders<'r> {
    authorization: Option<&'r HeaderValue>,
    content_length: Option<&'r HeaderValue>,
    request_id: Option<&'r HeaderValue>,
}

impl<'r> ReadHeaders<'r> {
    fn of(headers: &'r HeaderMap) -> Self {
        let mut read = ReadHeaders::default();
        for (name, value) in headers {
            let slot = if name == AUTHORIZATION {
                if read.authorization.is_some() {
                    // Two credentials are none: which one is the caller's?
                    read.authorization = Some(&NO_CREDENTIAL);
                    continue;
                }
                &mut read.authorization
            } else if name == CONTENT_LENGTH {
                &mut read.content_length
            } else if name == X_REQUEST_ID {
                &mut read.request_id
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        read
    }
}

/// What a request with more than one `Authorization` header is read as.
static NO_CREDENTIAL: HeaderValue = HeaderValue::from_static("");

/// A client's own request id is echoed only if it is short printable ASCII.
fn valid_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

/// The body, at most `limit` bytes, within `timeout`. Past the limit the
/// rest is not read: the 413 goes out and the connection closes.
async fn read_body(body: Incoming, limit: usize, timeout: Duration) -> BodyResult {
    if body.is_end_stream() {
        // None to wait for (a GET's): no timer.
        return Ok(Bytes::new());
    }
    // Boxed: its state (the timer, the bytes so far) would otherwise be part
    // of every request's pipeline state, moved with it, body or not.
    Box::pin(read_within(body, limit, timeout)).await
}

async fn read_within(mut body: Incoming, limit: usize, timeout: Duration) -> BodyResult {
    let read = async {
        let mut kept = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ApiError::bad_request("the body could not be read"))?;
            if let Some(data) = frame.data_ref() {
                if kept.len() + data.len() > limit {
                    return Err(ApiError::too_large("the body", limit));
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

fn response(answer: Answer, request_id: HeaderValue, unread: bool) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = answer
        .body
        .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap_or_default()));
    let has_body = body.is_some();
    let mut response = Response::new(Full::new(body.unwrap_or_default()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if has_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(X_REQUEST_ID.clone(), request_id);
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    if unread {
        // hyper closes a connection whose request body was not read to its
        // end (what is left would be read as the next request): say so, or
        // a client that reuses the connection meets its end mid-request.
        headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if status == StatusCode::NO_CONTENT {
        headers.remove(CONTENT_LENGTH);
    }
    response
}

/// Beyond the connection cap: a short 503 with its request id, if the
/// socket takes it at once, then close. Never waits on the client.
fn refuse(stream: TcpStream, id: &HeaderValue) {
    // Ours: printable ASCII, nothing to escape.
    let id = id.to_str().unwrap_or_default();
    let body = format!(
        "{{\"error\":{{\"code\":\"busy\",\"message\":\"too many connections; try again later\",\
\"request_id\":\"{id}\"}}}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
retry-after: 1\r\nx-request-id: {id}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    tracing::debug!(request_id = id, "connection refused: at the connection cap");
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

    /// The next id, as the header value it is sent as: written on the
    /// stack (the counter's digits by hand: `fmt` costs several hundred
    /// instructions) and copied once, into the value.
    fn next(&self) -> HeaderValue {
        let mut n = self.counter.fetch_add(1, Ordering::Relaxed);
        // The counter's digits, from the end of the buffer: at most 20.
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut id = [0u8; 32];
        let prefix = self.prefix.as_bytes();
        let digits = &digits[start..];
        let len = prefix.len() + 1 + digits.len();
        id[..prefix.len()].copy_from_slice(prefix);
        id[prefix.len()] = b'-';
        id[prefix.len() + 1..len].copy_from_slice(digits);
        HeaderValue::from_bytes(&id[..len]).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// Whether a connection moves bytes or answers a request: a connection is
/// idle when it answers nothing and moves nothing. Bytes moving only bump
/// a counter (no clock is read per read or write); the watchdog
/// ([`Activity::idle_for`]) looks at it a few times per idle limit.
#[derive(Default)]
struct Activity {
    moves: AtomicU64,
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
    /// How many times per idle limit the watchdog looks.
    const CHECKS: u32 = 4;

    /// Notes that the connection did something. Not a read-modify-write
    /// instruction: the read and the write side may race and lose a count,
    /// but the value still changes, which is all the watchdog looks for.
    fn touch(&self) {
        let moves = self.moves.load(Ordering::Relaxed);
        self.moves.store(moves.wrapping_add(1), Ordering::Relaxed);
    }

    fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self)
    }

    /// Completes once the connection has been idle for `limit`: it answered
    /// nothing and moved nothing through [`Activity::CHECKS`] looks a
    /// quarter of `limit` apart, so between `limit` and 1.25 x `limit`
    /// after its last activity.
    async fn idle_for(&self, limit: Duration) {
        let period = (limit / Self::CHECKS).max(Duration::from_millis(1));
        let (mut seen, mut quiet) = (self.moves.load(Ordering::Relaxed), 0);
        loop {
            tokio::time::sleep(period).await;
            let moves = self.moves.load(Ordering::Relaxed);
            if moves != seen || self.busy.load(Ordering::Relaxed) > 0 {
                (seen, quiet) = (moves, 0);
                continue;
            }
            quiet += 1;
            if quiet >= Self::CHECKS {
                return;
            }
        }
    }
}

/// The socket, noting each time bytes move.
struct Watched {
    io: TcpStream,
    conn: Arc<Connection>,
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
            self.conn.activity.touch();
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
            self.conn.activity.touch();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, HeaderMap, HeaderValue};

    use super::{Activity, ReadHeaders, RequestIds, X_REQUEST_ID, valid_request_id};

    #[test]
    fn the_headers_read_are_the_first_of_their_name() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("x"));
        headers.append(X_REQUEST_ID.clone(), HeaderValue::from_static("first"));
        headers.append(X_REQUEST_ID.clone(), HeaderValue::from_static("second"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
        let read = ReadHeaders::of(&headers);
        assert_eq!(read.request_id.unwrap(), "first");
        assert_eq!(read.content_length.unwrap(), "12");
        assert!(read.authorization.is_none());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        assert_eq!(ReadHeaders::of(&headers).authorization.unwrap(), "Bearer t");
        // But of two credentials, neither.
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer u"));
        assert_eq!(ReadHeaders::of(&headers).authorization.unwrap(), "");
    }

    #[test]
    fn request_ids_are_the_prefix_and_a_counter() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a, format!("{}-1", ids.prefix));
        assert_eq!(b, format!("{}-2", ids.prefix));
        assert_eq!(ids.prefix.len(), 8);
        assert!(valid_request_id(a.as_bytes()));
        assert!(!valid_request_id(b"with space"));
        assert!(!valid_request_id(&[b'x'; 129]));
    }

    #[tokio::test]
    async fn a_connection_is_idle_after_its_limit_of_quiet_not_before() {
        let activity = Activity::default();
        let limit = Duration::from_millis(80);
        let started = std::time::Instant::now();
        tokio::select! {
            () = activity.idle_for(limit) => {}
            () = async {
                // Busy with a request for a while, then quiet.
                let busy = activity.busy();
                tokio::time::sleep(limit * 2).await;
                drop(busy);
                std::future::pending::<()>().await;
            } => unreachable!(),
        }
        let took = started.elapsed();
        // Quiet for `limit` after the request ended, at most a check later
        // (plus the timer's own lateness).
        assert!(took >= limit * 3, "closed after {took:?}");
        assert!(
            took < limit * 3 + limit / 4 + Duration::from_secs(5),
            "{took:?}"
        );
    }
}
