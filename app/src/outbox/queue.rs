//! One plugin's queue: the loop of its rounds, each a look at the queue
//! (skipped after a full batch), the claim of a batch, its attempts and
//! the one write that settles it; and its cursor at the head of the log
//! when it has none, with the promise that keeps it there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use hooks_core::PluginManager;
use hookspecs::{ApiError, AppHooks, Change, Delivery};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::races::{again_after_race, alone, bookkeeping, bookkeeping_statement};
use super::statements::{Fate, Settled, claim_sql, head_sql, look_sql, settle_sql};
use super::{DeliveriesConfig, Policy, now_ms, woken};
use crate::db::Dialect;
use crate::state::State;

/// One plugin's queue.
pub(super) struct Queue {
    state: Arc<State>,
    plugin: &'static str,
    policy: Policy,
    owner: String,
    lease: Duration,
    poll: Duration,
    batch: i64,
    /// `[deliveries] retention_s`: how long this instance promises to keep
    /// the plugin's cursor for (see [`kept_until`]).
    retention: Duration,
    /// The look's and the claim's statements, written once ([`look_sql`],
    /// [`claim_sql`]).
    look_sql: Arc<str>,
    claim_sql: Arc<str>,
    /// The settle's statements written so far, by shape (see
    /// [`Queue::settle_sql`]).
    settles: std::sync::Mutex<HashMap<(usize, usize), Settle>>,
}

/// A settle's statements ([`settle_sql`]).
type Settle = Arc<Vec<String>>;

/// How many shapes of settle a worker keeps written, at most.
const SETTLE_SHAPES: usize = 64;

/// How often an instance looks again while another one holds a plugin's
/// lease: the holder delivers everything committed meanwhile, whichever
/// instance committed it, so this instance's own commits need not wake it
/// (at thousands of commits a second, each wake-up was a query for nothing).
const BUSY_RECHECK: Duration = Duration::from_millis(20);

impl Queue {
    /// `plugin`'s queue, delivering to the after-commit hooks it implements
    /// (those of its running version) under `config`'s policy for it, as
    /// instance `owner` whose claims hold for `lease`.
    pub(super) fn new(
        state: Arc<State>,
        plugin: &'static str,
        config: &DeliveriesConfig,
        owner: String,
        lease: Duration,
    ) -> Self {
        let policy = config.policy(plugin);
        let dialect = state.db.dialect();
        Queue {
            look_sql: look_sql(dialect, policy.ordered).into(),
            claim_sql: claim_sql(dialect, policy.ordered).into(),
            state,
            plugin,
            policy,
            owner,
            lease,
            poll: Duration::from_millis(config.poll_ms.max(1)),
            batch: i64::from(config.batch.max(1)),
            retention: config.retention(),
            settles: std::sync::Mutex::default(),
        }
    }

    pub(super) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(super) async fn run(self) {
        let mut wake = woken();
        let mut full = false;
        loop {
            wake.borrow_and_update();
            let next = match self.round(std::mem::take(&mut full)).await {
                Ok(Round::Worked { full: more }) => {
                    full = more;
                    continue;
                }
                Ok(Round::Busy(until)) => {
                    let left = Duration::from_millis((until - now_ms()).max(1) as u64);
                    tokio::time::sleep(left.min(BUSY_RECHECK)).await;
                    continue;
                }
                Ok(Round::Idle(at)) => at,
                Err(error) => {
                    tracing::warn!(
                        plugin = self.plugin,
                        "delivery round failed: {}",
                        error.message
                    );
                    None
                }
            };
            let poll = now_ms() + self.poll.as_millis() as i64;
            let until = next.map_or(poll, |at| at.min(poll));
            let pause = Duration::from_millis((until - now_ms()).max(1) as u64);
            tokio::select! {
                _ = wake.changed() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn round(&self, full: bool) -> Result<Round, ApiError> {
        if full {
            // No look: the claim finds what there is (none: the look says
            // why, below).
            if let Some(batch) = self.claim(now_ms()).await? {
                return Ok(self.deliver(batch).await);
            }
        }
        // A plain read first (`statements::look_sql`): most wake-ups find
        // nothing.
        let (sql, plugin) = (&self.look_sql, self.plugin);
        // Outside a unit of work no `BEGIN` finds a dead pooled connection
        // first: `live` runs this read again on another.
        let (_, look) = hookspecs::host::live(&self.state.db.pool, |conn| {
            let sql = sql.clone();
            async move { sqlx::query(&sql).bind(plugin).fetch_optional(conn).await }.boxed()
        })
        .await?;
        let Some(look) = look else {
            // Forgotten (an instance's pruning took the plugin for gone, or
            // a hand deleted the row): this instance runs it, so it starts
            // again at the head, as a plugin back after a long absence does,
            // rather than failing every round until a restart.
            tracing::warn!(
                plugin,
                "its delivery cursor was gone: it starts again at the head of the log"
            );
            let kept = kept_until(self.retention);
            start_at_head(&self.state, plugin, kept).await?;
            return Ok(Round::Idle(Some(now_ms())));
        };
        let now = now_ms();
        let retry_at: Option<i64> = look.try_get("retry_at")?;
        let more = look.try_get::<i64, _>("more")? == 1;
        let owner: Option<String> = look.try_get("lease_owner")?;
        let leased: i64 = look.try_get("lease_until_ms")?;
        if leased > now && owner.as_deref() != Some(&self.owner) {
            return Ok(Round::Busy(leased));
        }
        let due = retry_at.is_some_and(|at| at <= now);
        if !due && (!more || (self.policy.ordered && retry_at.is_some())) {
            return Ok(Round::Idle(retry_at));
        }
        let Some(batch) = self.claim(now).await? else {
            // Taken by another instance meanwhile, or (PostgreSQL) its
            // cursor changed as the claim began, or a transaction that may
            // still record an earlier event is running.
            return Ok(Round::Idle(Some(now_ms() + 10)));
        };
        Ok(self.deliver(batch).await)
    }

    /// Takes the plugin's lease (the one instance working on it now, which
    /// keeps commit order) with what it is to deliver: the parked events
    /// whose retry is due, then (unless an `ordered` plugin has events
    /// parked) the log's next events after its cursor, in one statement
    /// ([`claim_sql`]). `None`: nothing to do, or another instance holds
    /// the lease.
    async fn claim(&self, now: i64) -> Result<Option<Batch>, ApiError> {
        let (sql, plugin, owner) = (&self.claim_sql, self.plugin, &self.owner);
        let (batch, until) = (self.batch, now + self.lease.as_millis() as i64);
        // Safe to run again: a claim that was taken (the connection lost
        // after its commit) is this instance's, which takes it again.
        let rows = alone(&self.state, move |conn| {
            let (sql, owner) = (sql.clone(), owner.clone());
            async move {
                sqlx::query(&sql)
                    .bind(plugin)
                    .bind(now)
                    .bind(batch)
                    .bind(owner.as_str())
                    .bind(until)
                    .fetch_all(conn)
                    .await
            }
            .boxed()
        })
        .await?;
        let (mut retries, mut events) = (Vec::new(), Vec::new());
        for row in &rows {
            let retry = row.try_get::<i64, _>("retry")? == 1;
            let list = if retry { &mut retries } else { &mut events };
            list.push(claimed_row(row, retry)?);
        }
        Ok((!rows.is_empty()).then_some(Batch {
            retries,
            events,
            until,
        }))
    }

    /// Attempts the batch: the retries, then the log's events, up to the
    /// policy's `concurrency` at once, started in order. A failure parks
    /// the event and the others go on; an `ordered` plugin (one at a time)
    /// stops at it instead (later ones must not overtake it). Then one
    /// write settles the batch and moves the cursor past what was handled.
    async fn deliver(&self, batch: Batch) -> Round {
        let full = batch.events.len() as i64 >= self.batch;
        // The running version's hooks, once a batch: a reload may have
        // added or dropped some.
        let taken = after_hooks(&self.state.hooks)
            .remove(self.plugin)
            .unwrap_or_default();
        let mut stopped = false;
        let retried = self
            .attempt_all(&batch.retries, &taken, batch.until, &mut stopped)
            .await;
        let handled = self
            .attempt_all(&batch.events, &taken, batch.until, &mut stopped)
            .await;
        if let Err(error) = self.settle(&retried, &handled).await {
            // The lease stays until it ends; then the events are tried
            // again (at least once).
            tracing::warn!(
                plugin = self.plugin,
                "recording deliveries failed: {}",
                error.message
            );
        }
        Round::Worked { full }
    }

    /// Attempts `list`'s events, at most `concurrency` at once, started in
    /// order; the outcomes of the first ones, in order: every event up to
    /// the first not attempted. None is started once `stopped` (an ordered
    /// plugin's failure, or the claim's end near: an attempt never outlives
    /// the claim), so the cursor, moved past the last outcome, never passes
    /// an event not handled.
    async fn attempt_all<'a>(
        &self,
        list: &'a [Claimed],
        taken: &BTreeSet<&'static str>,
        lease_end: i64,
        stopped: &mut bool,
    ) -> Vec<(&'a Claimed, Outcome)> {
        let timeout = self.policy.timeout.as_millis() as i64;
        let mut out = Vec::with_capacity(list.len());
        let mut next = list.iter();
        let mut running = FuturesOrdered::new();
        while !*stopped {
            // Start attempts while a slot is free, checking the lease just
            // before each.
            while running.len() < self.policy.concurrency {
                match next.next() {
                    Some(claimed) if now_ms() + timeout < lease_end => {
                        running.push_back(self.tagged(claimed, taken));
                    }
                    Some(_) => {
                        *stopped = true;
                        break;
                    }
                    None => break,
                }
            }
            let Some((claimed, outcome)) = running.next().await else {
                break;
            };
            *stopped |= self.policy.ordered && matches!(outcome, Outcome::Failed(..));
            out.push((claimed, outcome));
        }
        // Those already running (none for an ordered plugin, one at a
        // time) are seen to their end and recorded.
        while let Some(done) = running.next().await {
            out.push(done);
        }
        out
    }

    /// [`outcome`](Self::outcome), with the event it is of.
    async fn tagged<'a>(
        &self,
        claimed: &'a Claimed,
        taken: &BTreeSet<&'static str>,
    ) -> (&'a Claimed, Outcome) {
        (claimed, self.outcome(claimed, taken).await)
    }

    /// One event's outcome: attempted if the plugin implements its hook
    /// (`taken`: the `after_*` hooks it implements) and the event is not
    /// from before the plugin came.
    async fn outcome(&self, claimed: &Claimed, taken: &BTreeSet<&'static str>) -> Outcome {
        let wanted = Change::kind_of(&claimed.name).is_some_and(|k| taken.contains(k.after_hook));
        if !wanted || claimed.past {
            return Outcome::Skipped;
        }
        match self.attempt(claimed).await {
            Ok(()) => Outcome::Delivered,
            Err((why, fatal)) => Outcome::Failed(why, fatal),
        }
    }

    /// One attempt. The hook's own unit of work commits when it succeeds;
    /// the delivery is marked done afterwards, with its batch (a crash in
    /// between delivers it again, with the same event id). `Err((why,
    /// fatal))`: failed; fatal ones are dead at once.
    async fn attempt(&self, claimed: &Claimed) -> Result<(), (String, bool)> {
        let change: Change = serde_json::from_str(&claimed.change)
            .map_err(|e| (format!("unreadable event: {e}"), true))?;
        let delivery = Delivery {
            event_id: claimed.key.clone(),
            attempt: u32::try_from(claimed.attempts + 1).unwrap_or(u32::MAX),
            recorded_at: claimed.recorded_at.clone(),
            change,
        };
        // An attempt whose own writes lost a race with a concurrent
        // transaction (another delivery of the same plugin, an operation)
        // is run again at once, as an operation is: only a real failure
        // counts as a failed attempt.
        let delivery = &delivery;
        again_after_race(move || async move {
            let uow = self.state.db.begin(true);
            let ctx = self.state.app_context(uow.clone());
            let deliver = super::deliver_to(&self.state.hooks, self.plugin, delivery, &ctx);
            let called = tokio::time::timeout(self.policy.timeout, deliver)
                .await
                .unwrap_or_else(|_| {
                    Err(ApiError::internal(format!(
                        "the hook overran its time limit of {:?}",
                        self.policy.timeout
                    )))
                });
            let hook_ok = called.is_ok();
            uow.finish(called).await.map_err(|mut error| {
                if hook_ok {
                    error.message =
                        format!("committing the hook's writes failed: {}", error.message);
                }
                error
            })
        })
        .await
        .map_err(|error| (error.message, false))
    }

    /// Records a batch's outcome in one write: the cursor past the events
    /// handled (and the lease given back), each retried event's parked row
    /// updated, and a row for each event of the log that was delivered or
    /// failed (parked: retried after a backoff, or dead once its attempts
    /// are spent, or at once when fatal). Skipped events leave no row.
    /// PostgreSQL: one statement, which writes nothing unless the lease is
    /// still this instance's; SQLite: a write transaction ([`settle_sql`]).
    async fn settle(
        &self,
        retried: &[(&Claimed, Outcome)],
        handled: &[(&Claimed, Outcome)],
    ) -> Result<(), ApiError> {
        let now = now_ms();
        // Each fate decided (and logged) once, whatever runs the write takes.
        let fates = |list: &[(&Claimed, Outcome)], row: fn(&Claimed) -> i64| {
            list.iter()
                .filter_map(|(c, outcome)| Some((row(c), self.fate(c, outcome, now)?)))
                .collect()
        };
        let settled = Arc::new(Settled {
            plugin: self.plugin,
            owner: self.owner.clone(),
            position: handled.last().map(|(c, _)| (c.txid, c.event_id)),
            retried: fates(retried, |c| c.parked.unwrap_or_default()),
            handled: fates(handled, |c| c.event_id),
        });
        let dialect = self.state.db.dialect();
        let statements = self.settle_sql(settled.retried.len(), settled.handled.len());
        let moved = match dialect {
            // A settle that committed before its connection was lost is
            // run again and finds the lease given back: logged as a lost
            // lease, nothing lost.
            Dialect::Postgres => alone(&self.state, move |conn| {
                let (sql, settled) = (statements.clone(), settled.clone());
                async move { settled.bind(&sql[0]).fetch_optional(conn).await }.boxed()
            })
            .await?
            .is_some(),
            Dialect::Sqlite => {
                let (settled, statements) = (&settled, &statements);
                bookkeeping(&self.state, |ctx| async move {
                    let mut db = ctx.db().await?;
                    let moved = settled
                        .bind(&statements[0])
                        .fetch_optional(&mut *db)
                        .await?;
                    // No cursor (forgotten meanwhile): nothing of the
                    // batch is written, as on PostgreSQL.
                    if moved.is_none() {
                        return Err(ApiError::internal(format!(
                            "plugin {}'s cursor is gone: the batch is not recorded",
                            self.plugin
                        )));
                    }
                    for sql in &statements[1..] {
                        settled.bind(sql).execute(&mut *db).await?;
                    }
                    Ok(true)
                })
                .await?
            }
        };
        if !moved {
            return Err(ApiError::internal(
                "the lease was no longer this instance's as the batch was recorded: \
                 it ended first (the batch is delivered again), or the write was sent \
                 again after a lost connection and had committed the first time",
            ));
        }
        Ok(())
    }

    /// [`settle_sql`] for this shape of batch, written once per shape: one
    /// event at a time, or full batches, repeat the same few.
    fn settle_sql(&self, retried: usize, handled: usize) -> Settle {
        let mut written = self.settles.lock().unwrap_or_else(|p| p.into_inner());
        if written.len() >= SETTLE_SHAPES {
            written.clear();
        }
        let dialect = self.state.db.dialect();
        let sql = written.entry((retried, handled));
        sql.or_insert_with(|| Arc::new(settle_sql(dialect, retried, handled)))
            .clone()
    }

    /// What becomes of a claimed event after `outcome` (`None`: skipped,
    /// nothing to record). A failure is logged here.
    fn fate(&self, claimed: &Claimed, outcome: &Outcome, now: i64) -> Option<Fate> {
        let attempts = claimed.attempts + 1;
        match outcome {
            // Parked, then no longer taken (its hook gone in a new version,
            // or the event left out of the plugin's events): owed and never
            // to be made, so dead, or it would stay due for ever.
            Outcome::Skipped if claimed.parked.is_some() => {
                let why = match Change::kind_of(&claimed.name) {
                    Some(_) => format!(
                        "plugin `{}` no longer takes `{}` events: not delivered",
                        self.plugin, claimed.name
                    ),
                    None => format!(
                        "`{}` is no event this version of the app knows: not delivered",
                        claimed.name
                    ),
                };
                tracing::info!(plugin = self.plugin, event = %claimed.key, "delivery dead: {why}");
                Some(Fate {
                    status: "dead",
                    attempts: claimed.attempts,
                    error: Some(why),
                    next_attempt_ms: 0,
                    done_ms: Some(now),
                })
            }
            Outcome::Skipped => None,
            Outcome::Delivered => Some(Fate {
                status: "delivered",
                attempts,
                error: None,
                next_attempt_ms: 0,
                done_ms: Some(now),
            }),
            Outcome::Failed(why, fatal) => {
                let dead = *fatal || attempts >= i64::from(self.policy.max_attempts);
                let failures = u32::try_from(attempts).unwrap_or(u32::MAX);
                let delay = self.policy.delay(failures, getrandom::u64().unwrap_or(0));
                if dead {
                    tracing::warn!(plugin = self.plugin, event = %claimed.key, attempts,
                        "delivery dead: {why}");
                } else {
                    tracing::warn!(plugin = self.plugin, event = %claimed.key, attempts,
                        "delivery failed, retrying in {delay:?}: {why}");
                }
                Some(Fate {
                    status: if dead { "dead" } else { "pending" },
                    attempts,
                    error: Some(why.clone()),
                    next_attempt_ms: now + delay.as_millis() as i64,
                    done_ms: dead.then_some(now),
                })
            }
        }
    }
}

enum Round {
    /// Something was attempted: look again at once. `full`: the batch
    /// took as many of the log's events as a batch holds, so more are most
    /// likely waiting: the next round claims them without the look first.
    Worked { full: bool },
    /// Nothing to do before this time (ms), or before a wake-up.
    Idle(Option<i64>),
    /// Another instance holds the plugin's lease until this time (ms).
    Busy(i64),
}

/// What the plugin's lease gave this round: parked events due for a retry,
/// then events from the log, in order.
struct Batch {
    retries: Vec<Claimed>,
    events: Vec<Claimed>,
    /// When the lease taken with it ends (ms).
    until: i64,
}

/// One event to deliver: from the log, or parked after a failure.
struct Claimed {
    /// The event's row.
    event_id: i64,
    /// Its place in the log: (txid, event_id).
    txid: i64,
    /// The parked delivery's row, for a retry.
    parked: Option<i64>,
    /// Attempts made before this one.
    attempts: i64,
    /// Committed before the plugin came (see `claim_sql`): skipped.
    past: bool,
    key: String,
    name: String,
    change: String,
    recorded_at: String,
}

fn claimed_row(row: &AnyRow, parked: bool) -> Result<Claimed, ApiError> {
    Ok(Claimed {
        event_id: row.try_get("event_id")?,
        txid: row.try_get("txid")?,
        parked: if parked {
            Some(row.try_get("id")?)
        } else {
            None
        },
        attempts: if parked { row.try_get("attempts")? } else { 0 },
        past: row.try_get::<i64, _>("past")? == 1,
        key: row.try_get("event_key")?,
        name: row.try_get("event_name")?,
        change: row.try_get("change")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// How one claimed event went.
enum Outcome {
    Delivered,
    /// Not attempted: the plugin does not implement its hook, or the
    /// event is from before the plugin came.
    Skipped,
    /// Failed: why, and whether it is dead at once (fatal).
    Failed(String, bool),
}

/// Gives `plugin` a cursor if it has none: at the head of the log, so a
/// plugin added later gets the events recorded from now on, not the past
/// ([`head_sql`]). Either way the cursor is kept until at least `kept`
/// (see `worker::prune`).
pub(super) async fn start_at_head(state: &State, plugin: &str, kept: i64) -> Result<(), ApiError> {
    let sql = head_sql(state.db.dialect());
    bookkeeping_statement(state, || sqlx::query(&sql).bind(plugin).bind(kept)).await
}

/// How often an instance prunes: every minute, or every `retention` if
/// shorter (at least every second).
pub(super) fn pass_every(retention: Duration) -> Duration {
    retention.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Until when this instance promises to mark its plugins' cursors again:
/// three of its passes from now, so that one pass that fails (or runs
/// long) breaks no promise.
pub(super) fn kept_until(retention: Duration) -> i64 {
    now_ms() + 3 * pass_every(retention).as_millis() as i64
}

/// The `after_*` hooks each plugin implements (plain implementations).
pub(super) fn after_hooks(
    hooks: &PluginManager<dyn AppHooks>,
) -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut plugins: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
    for spec in hooks.hookspecs() {
        if Change::event_of(spec.name).is_none() {
            continue;
        }
        for i in hooks.get_hookimpls(spec.name).unwrap_or_default() {
            if !i.wrapper {
                plugins.entry(i.plugin).or_default().insert(spec.name);
            }
        }
    }
    plugins
}
