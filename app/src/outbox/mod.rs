//! After-commit hooks through a durable outbox, kept as a log.
//!
//! - [`emit`] (called by the services for every entity change) records the
//!   event, one row whatever the number of plugins, then fires the
//!   in-transaction hook, in the same transaction: a rolled-back operation leaves
//!   nothing to deliver, a committed one is delivered even if the process
//!   dies right after the commit.
//! - [`Deliverer`] (one task per plugin) reads the log from the plugin's
//!   cursor under a lease, calls the plugin's hook for each event (several
//!   at once, started in commit order; an `ordered` plugin's one at a time,
//!   in commit order), and records the batch in one write: the cursor moves past it,
//!   a failed event is parked for its retries (with backoff, then dead)
//!   while the later ones go on, or holds them back for an `ordered` plugin.
//!   On PostgreSQL several instances share the log: the lease on a plugin's
//!   cursor row (taken `FOR UPDATE SKIP LOCKED`) lets one instance at a
//!   time work for that plugin, and a dead instance's lease simply expires.
//! - [`deliver_to`]: one event to one plugin's after-commit hook.
//! - [`admin`]: listing, retrying and counting, for the API and the CLI.
//! - [`committed`]: the request pipeline's nudge after a commit.

pub mod admin;
mod deliver;
mod queue;
mod races;
mod record;
mod statements;
mod worker;

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

pub use deliver::deliver_to;
pub use record::emit;
pub use worker::{Deliverer, plugins_changed};

/// `[deliveries]`: how after-commit deliveries are retried and kept. Every
/// other key is a plugin's overrides: `[deliveries.<plugin>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct DeliveriesConfig {
    /// Attempts before a delivery is dead.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, with jitter.
    pub backoff_ms: u64,
    /// The longest delay between two attempts.
    pub max_backoff_ms: u64,
    /// How long one attempt (one hook call) may take.
    pub timeout_ms: u64,
    /// How long a claim holds; an instance that dies loses its claims
    /// after this.
    pub lease_ms: u64,
    /// How often to look for deliveries committed by other instances (or
    /// whose retry is due) when nothing woke the worker.
    pub poll_ms: u64,
    /// Events claimed at once per plugin. Each batch costs a claim and a
    /// settle: 200 lets one worker keep up with writers saturating the
    /// machine, where 50 fell behind (BENCHMARKS.md, seventh session).
    /// At most [`MAX_BATCH`].
    #[serde(deserialize_with = "at_most_max_batch")]
    pub batch: u32,
    /// How many of a batch's events are attempted at once, for a plugin
    /// that is not `ordered` (an ordered one: one at a time). Above 1,
    /// the events of a batch may reach the plugin out of commit order.
    pub concurrency: u32,
    /// Whether a failed event holds back the plugin's later events until
    /// it is delivered or dead (strict commit order), rather than being
    /// parked for its retries while the later ones go on (the default).
    pub ordered: bool,
    /// How long delivered events are kept, in seconds.
    pub retention_s: u64,
    /// Per-plugin overrides.
    #[serde(flatten, deserialize_with = "plugin_tables")]
    pub plugins: HashMap<String, PluginDeliveries>,
}

/// The `[deliveries.<plugin>]` tables. Any other key of `[deliveries]` is a
/// misspelt one of its own: named as such, where serde would say only that
/// it is not a plugin's table.
fn plugin_tables<'de, D: serde::Deserializer<'de>>(
    tables: D,
) -> Result<HashMap<String, PluginDeliveries>, D::Error> {
    use serde::de::Error;
    HashMap::<String, toml::Value>::deserialize(tables)?
        .into_iter()
        .map(|(key, value)| match value {
            toml::Value::Table(ref table) => PluginDeliveries::deserialize(value.clone())
                .map(|parsed| (key.clone(), parsed))
                .map_err(|e| {
                    // A `toml::Value` has no positions: the key is found by
                    // reading the keys one at a time.
                    let alone = |(k, v): (&String, &toml::Value)| {
                        toml::Value::Table(toml::Table::from_iter([(k.clone(), v.clone())]))
                    };
                    let field = (table.iter())
                        .find(|entry| PluginDeliveries::deserialize(alone(*entry)).is_err())
                        .map_or_else(String::new, |(k, _)| format!(" {k}"));
                    D::Error::custom(format!("[deliveries.{key}]{field}: {}", e.message()))
                }),
            _ => Err(D::Error::custom(format!(
                "unknown key `{key}` in [deliveries] (a plugin's own settings are a table, \
                 [deliveries.<plugin>])"
            ))),
        })
        .collect()
}

/// The largest `[deliveries] batch`: a batch's settle binds 12 parameters
/// per event at most (its retries and its events of the log, 6 each), and
/// 1,000 keeps that well below SQLite's limit of 32,766 per statement
/// (PostgreSQL's is 65,535).
pub const MAX_BATCH: u32 = 1_000;

fn at_most_max_batch<'de, D: serde::Deserializer<'de>>(to: D) -> Result<u32, D::Error> {
    let batch = u32::deserialize(to)?;
    if batch > MAX_BATCH {
        return Err(serde::de::Error::custom(format!(
            "[deliveries] batch = {batch} is above its limit of {MAX_BATCH} \
             (a batch's settle is one statement with 12 parameters per event)"
        )));
    }
    Ok(batch)
}

/// `[deliveries.<plugin>]`: the keys of `[deliveries]` that a plugin may
/// set for itself.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDeliveries {
    /// See [`DeliveriesConfig::max_attempts`].
    pub max_attempts: Option<u32>,
    /// See [`DeliveriesConfig::backoff_ms`].
    pub backoff_ms: Option<u64>,
    /// See [`DeliveriesConfig::max_backoff_ms`].
    pub max_backoff_ms: Option<u64>,
    /// See [`DeliveriesConfig::timeout_ms`].
    pub timeout_ms: Option<u64>,
    /// See [`DeliveriesConfig::ordered`].
    pub ordered: Option<bool>,
    /// See [`DeliveriesConfig::concurrency`].
    pub concurrency: Option<u32>,
}

impl Default for DeliveriesConfig {
    fn default() -> Self {
        DeliveriesConfig {
            max_attempts: 8,
            backoff_ms: 1_000,
            max_backoff_ms: 3_600_000,
            timeout_ms: 10_000,
            lease_ms: 60_000,
            poll_ms: 1_000,
            batch: 200,
            concurrency: 8,
            ordered: false,
            retention_s: 7 * 24 * 3600,
            plugins: HashMap::new(),
        }
    }
}

/// One plugin's effective retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts before dead (at least 1).
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// A failed event holds back the later ones (see [`DeliveriesConfig::ordered`]).
    pub ordered: bool,
    /// Attempts running at once: 1 for an ordered plugin (see
    /// [`DeliveriesConfig::concurrency`]).
    pub concurrency: usize,
}

impl DeliveriesConfig {
    /// `plugin`'s policy: its overrides over the defaults.
    pub fn policy(&self, plugin: &str) -> Policy {
        let own = self.plugins.get(plugin).cloned().unwrap_or_default();
        let ordered = own.ordered.unwrap_or(self.ordered);
        Policy {
            max_attempts: own.max_attempts.unwrap_or(self.max_attempts).max(1),
            // Caps (of a delay, of how long a row is kept) may be set past
            // any use to mean "no cap": held to the longest time a setting
            // may give, where `now` plus them is still a time.
            backoff: Duration::from_millis(own.backoff_ms.unwrap_or(self.backoff_ms)).min(LONGEST),
            max_backoff: Duration::from_millis(own.max_backoff_ms.unwrap_or(self.max_backoff_ms))
                .min(LONGEST),
            timeout: Duration::from_millis(own.timeout_ms.unwrap_or(self.timeout_ms).max(1)),
            ordered,
            concurrency: if ordered {
                1
            } else {
                own.concurrency.unwrap_or(self.concurrency).max(1) as usize
            },
        }
    }
}

impl DeliveriesConfig {
    /// `retention_s`, held to the longest time a setting may give (see
    /// [`DeliveriesConfig::policy`]).
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_s).min(LONGEST)
    }
}

impl Policy {
    /// The delay before attempt `failed + 1`, after `failed` failures:
    /// `backoff * 2^(failed-1)`, capped, then "equal jitter" (a random
    /// point in its upper half) so that deliveries failing together do not
    /// retry together.
    pub fn delay(&self, failed: u32, random: u64) -> Duration {
        let doubling = 2u32.saturating_pow(failed.saturating_sub(1));
        let full = self.backoff.saturating_mul(doubling).min(self.max_backoff);
        let half = full / 2;
        let spread = (full - half).as_millis() as u64;
        half + Duration::from_millis(random % (spread + 1))
    }
}

/// The longest time a setting may give: ten years, far beyond any use,
/// and far below where `now` plus it overflows the outbox's milliseconds
/// or leaves the calendar (year 9999). Checked by the configuration for
/// every setting of a time.
pub const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The status values of a delivery.
pub const STATUSES: [&str; 3] = ["pending", "dead", "delivered"];

static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Tells the delivery workers that an operation just committed, so they
/// look for its events now rather than at their next poll. Cheap (no I/O);
/// call it after every successful commit of a writing operation.
pub fn committed() {
    WAKE.send_modify(|n| *n = n.wrapping_add(1));
}

fn woken() -> watch::Receiver<u64> {
    WAKE.subscribe()
}

/// Milliseconds since the Unix epoch: leases and retry times. Instances
/// sharing a database need clocks in step within a fraction of the lease.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_overrides_win_and_defaults_fill_in() {
        let config: DeliveriesConfig =
            toml::from_str("max_attempts = 3\nbackoff_ms = 100\n[webhooks]\nmax_attempts = 5\n")
                .unwrap();
        let webhooks = config.policy("webhooks");
        assert_eq!(webhooks.max_attempts, 5);
        assert_eq!(webhooks.backoff, Duration::from_millis(100));
        assert_eq!(config.policy("other").max_attempts, 3);
        assert_eq!(config.policy("other").timeout, Duration::from_secs(10));
        assert_eq!(config.policy("other").concurrency, 8);
        let ordered: DeliveriesConfig =
            toml::from_str("concurrency = 4\n[webhooks]\nordered = true\n").unwrap();
        assert_eq!(
            ordered.policy("webhooks").concurrency,
            1,
            "ordered: one at a time"
        );
        assert_eq!(ordered.policy("other").concurrency, 4);
        let typo = toml::from_str::<DeliveriesConfig>("[webhooks]\nmax_attempt = 5\n");
        assert!(typo.is_err());
    }

    #[test]
    fn a_batch_above_its_limit_is_refused_naming_the_key_and_the_limit() {
        let at_limit: DeliveriesConfig = toml::from_str("batch = 1000\n").unwrap();
        assert_eq!(at_limit.batch, MAX_BATCH);
        let error = toml::from_str::<DeliveriesConfig>("batch = 1001\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[deliveries] batch = 1001 is above its limit of 1000"),
            "{error}"
        );
        assert_eq!(DeliveriesConfig::default().batch, 200);
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let policy = Policy {
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
            timeout: Duration::from_secs(1),
            ordered: false,
            concurrency: 1,
        };
        for (failed, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1_000),
            (30, 1_000),
        ] {
            let low = policy.delay(failed, 0);
            let high = policy.delay(failed, u64::MAX);
            assert_eq!(low, Duration::from_millis(full / 2), "after {failed}");
            assert!(
                high <= Duration::from_millis(full) && high >= low,
                "after {failed}"
            );
        }
    }
}
