//! HTTP: the transport ([`server`]: sockets, hyper, timeouts), the request
//! pipeline ([`pipeline`]: route, identity, access, unit of work, handler,
//! reply) and route matching ([`router`]: routerify_ng behind one function).

pub(crate) mod access_log;
pub mod pipeline;
pub mod router;
pub mod server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;

/// What protects the server from slow, silent or greedy clients
/// (`[http]` in the config file; every value has a default).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted body, in bytes (413 beyond it, before reading it).
    pub body_limit: usize,
    /// A request's head must arrive whole within this (also the longest an
    /// HTTP/1 connection may wait between two requests).
    #[serde(with = "millis", rename = "header_timeout_ms")]
    pub header_timeout: Duration,
    /// A body must arrive whole within this (408 otherwise).
    #[serde(with = "millis", rename = "body_timeout_ms")]
    pub body_timeout: Duration,
    /// A connection that answers nothing and moves no byte for this long
    /// is closed.
    #[serde(with = "millis", rename = "idle_timeout_ms")]
    pub idle_timeout: Duration,
    /// Open connections at most; beyond it new ones get a 503 and are closed.
    pub max_connections: usize,
    /// At shutdown, how long connections may take to close by themselves
    /// once no request is running.
    #[serde(with = "millis", rename = "shutdown_grace_ms")]
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_limit: 1 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// How many requests are being answered (their body read, their handler
/// running): what a graceful shutdown waits for.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One request in flight, until dropped.
pub struct Running<'a>(&'a InFlight);

impl InFlight {
    /// Counts a request until the returned guard is dropped.
    pub fn enter(&self) -> Running<'_> {
        self.count.fetch_add(1, Ordering::SeqCst);
        Running(self)
    }

    /// Completes when no request is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = std::pin::pin!(self.idle.notified());
            let mut notified = notified;
            // Registered before the check, so a wake-up in between is not lost.
            notified.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
