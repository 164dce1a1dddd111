//! The access log: one line per request, `METHOD PATH STATUS LATENCYms
//! REQUEST-ID` (target `app::http`, level INFO, so `RUST_LOG` turns it on
//! and off like any other line).
//!
//! A request only hands its fields to a thread of the log's own: the
//! method moved, the path and the id copied ([`Copied`]: inline when
//! short); nothing is formatted on the request path. No field shares the
//! request's bytes: hyper parses a request's head into slices of the
//! connection's read buffer, which it reuses for the next request only if
//! no slice of it is still alive, so a line holding the URI until its batch
//! was written made hyper allocate a fresh buffer (8 KiB) for every
//! request of a keep-alive connection. That thread wakes for the
//! first line after a quiet spell, then takes whatever arrived every
//! [`AccessLog::BATCH`], so that under load no request pays for waking it.
//! It writes the lines itself, in the format of the app's other lines
//! (`tracing_subscriber`'s default), with integer formatting into one buffer
//! handed to the app's log writer once per batch: through
//! `tracing_subscriber`'s generic field formatting a line cost about 11,000
//! instructions, most of it escaping and formatting machinery. A line's
//! timestamp is when it is written, at most a batch later.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::NonBlocking;

/// The target the lines are logged under (`RUST_LOG=app::http=warn` turns
/// the access log off and leaves the rest).
const TARGET: &str = "app::http";

/// Where the app's own log output goes, once set up ([`write_to`]).
static OUTPUT: OnceLock<Output> = OnceLock::new();

#[derive(Clone)]
struct Output {
    writer: NonBlocking,
    /// Whether lines are coloured, as the subscriber colours its own.
    ansi: bool,
}

/// Sends the access log's lines straight to `writer`, the writer the app's
/// subscriber writes to, formatted as that subscriber formats a line
/// (coloured if `ansi`). Without it (an app embedded without its logging
/// set up), each line is an ordinary `tracing` event.
pub fn write_to(writer: NonBlocking, ansi: bool) {
    let _ = OUTPUT.set(Output { writer, ansi });
}

/// The log's end of the request path.
pub struct AccessLog(Sender<Entry>);

/// One request's line, as the request path captured it.
pub struct Line {
    /// The request's method.
    pub method: hyper::Method,
    /// Its path, without the query.
    pub path: Copied<PATH>,
    /// The answer's status.
    pub status: u16,
    /// From the head's arrival to the answer.
    pub took: Duration,
    /// The request's id, as sent back.
    pub request_id: Copied<ID>,
}

/// The longest path a line keeps inline.
const PATH: usize = 48;
/// The longest id a line keeps inline (the server's own are at most 29 bytes).
const ID: usize = 32;

/// Bytes of the request the line keeps, copied: up to `N` inline (no
/// allocation), longer ones boxed (a path or a client's id that long).
pub enum Copied<const N: usize> {
    /// Up to `N` bytes, and how many.
    Inline([u8; N], u8),
    /// Longer.
    Boxed(Box<[u8]>),
}

impl<const N: usize> Copied<N> {
    /// A copy of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        if bytes.len() > N {
            return Copied::Boxed(bytes.into());
        }
        let mut inline = [0; N];
        inline[..bytes.len()].copy_from_slice(bytes);
        Copied::Inline(inline, bytes.len() as u8)
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Copied::Inline(bytes, len) => &bytes[..usize::from(*len)],
            Copied::Boxed(bytes) => bytes,
        }
    }
}

enum Entry {
    Line(Line),
    /// Answered once every line sent before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl AccessLog {
    const BATCH: Duration = Duration::from_millis(10);

    /// Starts the log's thread.
    pub fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let output = OUTPUT.get().cloned();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || Self::run(&rx, output));
        if let Err(error) = spawned {
            tracing::warn!(%error, "no thread for the access log: requests go unlogged");
        }
        AccessLog(tx)
    }

    /// Whether the filter wants the lines: asked first, so that a request
    /// nobody logs reads no clock.
    pub fn wanted(&self) -> bool {
        tracing::enabled!(target: TARGET, tracing::Level::INFO)
    }

    /// Logs a request.
    pub fn line(&self, line: Line) {
        let _ = self.0.send(Entry::Line(line));
    }

    /// Completes once every line logged so far is written (at shutdown).
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.0.send(Entry::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }

    fn run(entries: &Receiver<Entry>, mut output: Option<Output>) {
        let mut batch = Vec::with_capacity(16 * 1024);
        let mut clock = Clock::default();
        while let Ok(first) = entries.recv() {
            for entry in std::iter::once(first).chain(entries.try_iter()) {
                match entry {
                    Entry::Line(line) => match &output {
                        Some(out) => {
                            line.write(&mut batch, &mut clock, SystemTime::now(), out.ansi)
                        }
                        None => {
                            let mut message = Vec::new();
                            line.message(&mut message);
                            tracing::info!(target: TARGET, "{}", String::from_utf8_lossy(&message));
                        }
                    },
                    Entry::Flush(done) => {
                        Self::hand_over(&mut batch, output.as_mut());
                        let _ = done.send(());
                    }
                }
            }
            Self::hand_over(&mut batch, output.as_mut());
            // Lines sent meanwhile wake no one.
            std::thread::sleep(Self::BATCH);
        }
    }

    /// The batch to the writer, in one piece (one message to its thread).
    fn hand_over(batch: &mut Vec<u8>, output: Option<&mut Output>) {
        if let Some(out) = output
            && !batch.is_empty()
        {
            let _ = out.writer.write_all(batch);
        }
        batch.clear();
    }
}

impl Line {
    /// The whole line, as `tracing_subscriber`'s default format writes an
    /// INFO event of [`TARGET`] at `now`: `<timestamp>  INFO app::http: <message>`.
    fn write(&self, out: &mut Vec<u8>, clock: &mut Clock, now: SystemTime, ansi: bool) {
        // The subscriber's colours: dimmed timestamp and target, green level.
        const DIM: &[u8] = b"\x1b[2m";
        const RESET: &[u8] = b"\x1b[0m";
        if ansi {
            out.extend_from_slice(DIM);
            clock.write(out, now);
            out.extend_from_slice(RESET);
            out.extend_from_slice(b" \x1b[32m INFO\x1b[0m ");
            out.extend_from_slice(DIM);
            out.extend_from_slice(TARGET.as_bytes());
            out.extend_from_slice(RESET);
            out.extend_from_slice(DIM);
            out.push(b':');
            out.extend_from_slice(RESET);
            out.push(b' ');
        } else {
            clock.write(out, now);
            out.extend_from_slice(b"  INFO ");
            out.extend_from_slice(TARGET.as_bytes());
            out.extend_from_slice(b": ");
        }
        self.message(out);
        out.push(b'\n');
    }

    /// `METHOD PATH STATUS LATENCYms REQUEST-ID`; the latency in
    /// milliseconds with one decimal, rounded.
    fn message(&self, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_bytes());
        out.push(b' ');
        out.extend_from_slice(digits.format(self.status).as_bytes());
        out.push(b' ');
        let tenths = (self.took.as_micros() + 50) / 100;
        out.extend_from_slice(digits.format(tenths / 10).as_bytes());
        out.push(b'.');
        out.push(b'0' + (tenths % 10) as u8);
        out.extend_from_slice(b"ms ");
        // Checked or made by the server: visible ASCII.
        out.extend_from_slice(self.request_id.as_bytes());
    }
}

/// Timestamps in RFC 3339, UTC, with microseconds
/// (`2026-12-05T15:33:35.123456Z`), as `tracing_subscriber`'s default timer
/// writes them. The date and time to the second are kept from one line to
/// the next (the lines of a batch share their second): only the
/// microseconds are written anew (the calendar conversion was about 400
/// instructions a line).
#[derive(Default)]
struct Clock {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    to_the_second: Vec<u8>,
}

impl Clock {
    fn write(&mut self, out: &mut Vec<u8>, now: SystemTime) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(since.as_secs()) {
            self.second = Some(since.as_secs());
            let at = time::OffsetDateTime::from(UNIX_EPOCH + Duration::from_secs(since.as_secs()));
            let text = &mut self.to_the_second;
            text.clear();
            padded(text, at.year().unsigned_abs(), 4);
            text.push(b'-');
            padded(text, u8::from(at.month()).into(), 2);
            text.push(b'-');
            padded(text, at.day().into(), 2);
            text.push(b'T');
            padded(text, at.hour().into(), 2);
            text.push(b':');
            padded(text, at.minute().into(), 2);
            text.push(b':');
            padded(text, at.second().into(), 2);
        }
        out.extend_from_slice(&self.to_the_second);
        out.push(b'.');
        padded(out, since.subsec_micros(), 6);
        out.push(b'Z');
    }
}

/// `n` in decimal, zero-padded to `width` digits.
fn padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{Clock, Copied, ID, Line, PATH, TARGET};

    fn line(micros: u64) -> Line {
        Line {
            method: hyper::Method::GET,
            path: Copied::of(b"/plugins/bench/json"),
            status: 200,
            took: Duration::from_micros(micros),
            request_id: Copied::of(b"abc-12"),
        }
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_message_is_method_path_status_latency_and_id() {
        let mut out = Vec::new();
        line(449).message(&mut out);
        assert_eq!(text(out), "GET /plugins/bench/json 200 0.4ms abc-12");
    }

    #[test]
    fn a_path_and_an_id_are_written_as_they_came_short_or_long() {
        for id in ["abc-12", &"x".repeat(ID), &"y".repeat(128)] {
            for path in [
                "/a",
                &format!("/{}", "p".repeat(PATH - 1)),
                &"/q".repeat(40),
            ] {
                let mut line = line(0);
                line.request_id = Copied::of(id.as_bytes());
                line.path = Copied::of(path.as_bytes());
                let inline = matches!(line.request_id, Copied::Inline(..));
                assert_eq!(inline, id.len() <= ID, "{id}");
                let inline = matches!(line.path, Copied::Inline(..));
                assert_eq!(inline, path.len() <= PATH, "{path}");
                let mut out = Vec::new();
                line.message(&mut out);
                let out = text(out);
                assert!(out.starts_with(&format!("GET {path} 200 ")), "{out}");
                assert!(out.ends_with(&format!(" {id}")), "{out}");
            }
        }
    }

    #[test]
    fn a_latency_is_written_in_milliseconds_with_one_decimal_rounded() {
        for (micros, written) in [
            (0, "0.0ms"),
            (49, "0.0ms"),
            (50, "0.1ms"),
            (449, "0.4ms"),
            (12_345, "12.3ms"),
            (2_000_000, "2000.0ms"),
        ] {
            let mut out = Vec::new();
            line(micros).message(&mut out);
            assert!(
                text(out).ends_with(&format!(" {written} abc-12")),
                "{micros}"
            );
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut clock = Clock::default();
        for (secs, micros, written) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 7, "2000-02-29T00:00:00.000007Z"),
            (1_700_000_000, 123_456, "2023-11-14T22:13:20.123456Z"),
            (4_107_542_400, 999_999, "2100-03-01T00:00:00.999999Z"),
            // The same second again, then the one after: kept, then redone.
            (4_107_542_400, 5, "2100-03-01T00:00:00.000005Z"),
            (4_107_542_401, 0, "2100-03-01T00:00:01.000000Z"),
        ] {
            let mut out = Vec::new();
            let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            clock.write(&mut out, at);
            assert_eq!(text(out), written);
        }
    }

    /// The subscriber's own rendering of the same event, the line before
    /// this log wrote its lines itself: the two must not differ but for the
    /// timestamp, plain or coloured.
    #[test]
    fn a_line_is_what_the_subscriber_would_have_written() {
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for ansi in [false, true] {
            let captured = Captured::default();
            let sink = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(ansi)
                .with_writer(move || sink.clone())
                .finish();
            let line = line(12_345);
            let mut message = Vec::new();
            line.message(&mut message);
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!(target: TARGET, "{}", text(message));
            });
            let theirs = text(captured.0.lock().unwrap().clone());
            let mut ours = Vec::new();
            line.write(&mut ours, &mut Clock::default(), SystemTime::now(), ansi);
            let ours = text(ours);
            // The timestamp is the first 27 characters after the colour.
            let skip = if ansi { 4 } else { 0 };
            let tail = |s: &str| s[skip + 27..].to_owned();
            assert_eq!(tail(&ours), tail(&theirs), "ansi: {ansi}");
            assert_eq!(ours[..skip], theirs[..skip]);
            assert_eq!(ours.len(), theirs.len());
        }
    }
}
