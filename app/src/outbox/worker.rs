//! The delivery worker: per plugin, claim the oldest pending deliveries
//! under a lease, call the plugin's after-commit hook for each in order,
//! record the outcome. Plus the pruning of delivered events.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hooks_core::PluginManager;
use hookspecs::{ApiError, AppHooks, Change, Delivery, HookContext};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::task::JoinHandle;

use super::{DeliveriesConfig, Policy, now_ms, woken};
use crate::State;
use crate::db::Dialect;

/// The running delivery tasks of this instance.
pub struct Deliverer {
    tasks: Vec<JoinHandle<()>>,
    state: Arc<State>,
    owner: String,
}

impl Deliverer {
    /// Starts one delivery task per plugin that implements an after-commit
    /// hook, and the pruning task. On SQLite, where this process is the only
    /// one delivering, claims left by an earlier run are released first.
    ///
    /// # Errors
    ///
    /// A plugin whose time limit is not shorter than the lease (no attempt
    /// could ever start), or the database's, releasing old claims.
    pub async fn start(state: Arc<State>, config: DeliveriesConfig) -> anyhow::Result<Self> {
        let plugins = after_commit_plugins(&state.hooks);
        let lease = Duration::from_millis(config.lease_ms);
        for plugin in &plugins {
            let timeout = config.policy(plugin).timeout;
            anyhow::ensure!(
                timeout < lease,
                "[deliveries] lease_ms ({}) must be longer than plugin {plugin}'s timeout_ms ({})",
                lease.as_millis(),
                timeout.as_millis()
            );
        }
        if state.db.dialect() == Dialect::Sqlite {
            bookkeeping(&state, |ctx| async move {
                sqlx::query(
                    "UPDATE outbox_deliveries SET lease_owner = NULL, lease_until_ms = 0 \
                     WHERE status = 'pending' AND lease_owner IS NOT NULL",
                )
                .execute(&mut *ctx.db().await?)
                .await?;
                Ok(())
            })
            .await
            .map_err(|e| anyhow::anyhow!("releasing old delivery claims: {}", e.message))?;
        }
        let owner = hookspecs::new_secret("instance_")?;
        let mut tasks = Vec::new();
        for plugin in plugins {
            let queue = Queue {
                state: state.clone(),
                plugin,
                policy: config.policy(plugin),
                owner: owner.clone(),
                lease,
                poll: Duration::from_millis(config.poll_ms.max(1)),
                batch: i64::from(config.batch.max(1)),
            };
            tracing::info!(plugin, instance = %owner, policy = ?queue.policy,
                "delivering after-commit events");
            tasks.push(tokio::spawn(queue.run()));
        }
        tasks.push(tokio::spawn(prune_forever(
            state.clone(),
            Duration::from_secs(config.retention_s),
        )));
        Ok(Deliverer {
            tasks,
            state,
            owner,
        })
    }

    /// Stops the tasks and gives this instance's claims back, so another
    /// instance (or the next start) goes on at once rather than after the
    /// lease. A delivery cut short is delivered again (at least once).
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let owner = &self.owner;
        let released = bookkeeping(&self.state, |ctx| async move {
            sqlx::query(
                "UPDATE outbox_deliveries SET lease_owner = NULL, lease_until_ms = 0 \
                 WHERE lease_owner = $1",
            )
            .bind(owner)
            .execute(&mut *ctx.db().await?)
            .await?;
            Ok(())
        })
        .await;
        if let Err(error) = released {
            tracing::warn!("releasing delivery claims at shutdown: {}", error.message);
        }
    }
}

/// The plugins implementing at least one `after_*` hook.
fn after_commit_plugins(hooks: &PluginManager<dyn AppHooks>) -> BTreeSet<&'static str> {
    hooks
        .hookspecs()
        .iter()
        .filter(|spec| spec.name.starts_with("after_"))
        .flat_map(|spec| hooks.get_hookimpls(spec.name).unwrap_or_default())
        .filter(|i| !i.wrapper)
        .map(|i| i.plugin)
        .collect()
}

/// How many times a bookkeeping unit of work that lost a race is run.
const BOOKKEEPING_RUNS: u32 = 10;

/// Runs `work` in a unit of work of the worker's own bookkeeping (row
/// locks, see `Db::begin_bookkeeping`; SQLite: in the app's writers'
/// queue), committing on success. One that loses a race (a deadlock between
/// two instances' claims, say) is run again at once, up to
/// [`BOOKKEEPING_RUNS`] times: never left for a lease to end.
async fn bookkeeping<T, F, Fut>(state: &State, work: F) -> Result<T, ApiError>
where
    F: Fn(HookContext) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut run = 1;
    loop {
        let ctx = state.app_context(state.db.begin_bookkeeping());
        let uow = hookspecs::host::unit_of_work(&ctx).clone();
        let outcome = match work(ctx).await {
            Ok(value) => uow.commit().await.map(|()| value),
            Err(error) => {
                let _ = uow.rollback().await;
                Err(error)
            }
        };
        match outcome {
            Err(error) if error.is_race() && run < BOOKKEEPING_RUNS => run += 1,
            outcome => return outcome,
        }
    }
}

/// One claimed delivery.
struct Claimed {
    id: i64,
    attempts: i64,
    key: String,
    change: String,
    recorded_at: String,
}

enum Round {
    /// Something was attempted: look again at once.
    Worked,
    /// Nothing to do before this time (ms), or before a wake-up.
    Idle(Option<i64>),
}

/// One plugin's queue.
struct Queue {
    state: Arc<State>,
    plugin: &'static str,
    policy: Policy,
    owner: String,
    lease: Duration,
    poll: Duration,
    batch: i64,
}

impl Queue {
    async fn run(self) {
        let mut wake = woken();
        loop {
            wake.borrow_and_update();
            let next = match self.round().await {
                Ok(Round::Worked) => continue,
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

    async fn round(&self) -> Result<Round, ApiError> {
        // A plain read first: most wake-ups find nothing, and on SQLite a
        // claim waits in the writers' queue.
        let head = sqlx::query(
            "SELECT next_attempt_ms, lease_until_ms FROM outbox_deliveries \
             WHERE plugin = $1 AND status = 'pending' ORDER BY txid, event_id LIMIT 1",
        )
        .bind(self.plugin)
        .fetch_optional(&self.state.db.pool)
        .await?;
        let Some(head) = head else {
            return Ok(Round::Idle(None));
        };
        let due: i64 = head.try_get("next_attempt_ms")?;
        let leased: i64 = head.try_get("lease_until_ms")?;
        let ready_at = due.max(leased);
        if ready_at > now_ms() {
            return Ok(Round::Idle(Some(ready_at)));
        }
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            // Claimed by another instance meanwhile, or (PostgreSQL) a
            // transaction that may still commit an earlier event is running.
            return Ok(Round::Idle(Some(now_ms() + 10)));
        }
        self.deliver(claimed).await;
        Ok(Round::Worked)
    }

    /// Leases the plugin's first pending deliveries, in (txid, event) order
    /// (see the migration), if the first of them is free and due: never a
    /// later one while an earlier one is pending elsewhere, which keeps
    /// commit order per plugin.
    async fn claim(&self) -> Result<Vec<Claimed>, ApiError> {
        let postgres = self.state.db.dialect() == Dialect::Postgres;
        let (safe, lock) = if postgres {
            (
                "AND d.txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                "FOR UPDATE OF d SKIP LOCKED",
            )
        } else {
            ("", "")
        };
        let sql = format!(
            "SELECT d.id, d.event_id, d.attempts, d.next_attempt_ms, d.lease_until_ms, \
                    e.event_key, e.change, e.recorded_at \
             FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id \
             WHERE d.plugin = $1 AND d.status = 'pending' {safe} \
             ORDER BY d.txid, d.event_id LIMIT $2 {lock}"
        );
        let sql = &sql;
        bookkeeping(&self.state, |ctx| async move {
            let mut claimed = Vec::new();
            let mut db = ctx.db().await?;
            let rows = sqlx::query(sql)
                .bind(self.plugin)
                .bind(self.batch)
                .fetch_all(&mut *db)
                .await?;
            // Read after the rows were locked: the head as it is now.
            let head: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM outbox_deliveries WHERE plugin = $1 AND status = 'pending' \
                 ORDER BY txid, event_id LIMIT 1",
            )
            .bind(self.plugin)
            .fetch_optional(&mut *db)
            .await?;
            let first: Option<i64> = rows.first().map(|r| r.try_get("id")).transpose()?;
            if first.is_none() || first != head {
                return Ok(claimed);
            }
            let now = now_ms();
            for row in &rows {
                let due: i64 = row.try_get("next_attempt_ms")?;
                let leased: i64 = row.try_get("lease_until_ms")?;
                if due > now || leased > now {
                    break;
                }
                claimed.push(claimed_row(row)?);
            }
            if claimed.is_empty() {
                return Ok(claimed);
            }
            let ids: Vec<String> = claimed.iter().map(|c| c.id.to_string()).collect();
            sqlx::query(&format!(
                "UPDATE outbox_deliveries SET lease_owner = $1, lease_until_ms = $2 \
                 WHERE id IN ({})",
                ids.join(", ")
            ))
            .bind(&self.owner)
            .bind(now + self.lease.as_millis() as i64)
            .execute(&mut *db)
            .await?;
            Ok(claimed)
        })
        .await
    }

    /// Attempts the claimed deliveries in order; the first that fails
    /// stops the batch (later ones must not overtake it). Then one write
    /// settles the batch: the delivered, the failed one, and the rest given
    /// back.
    async fn deliver(&self, claimed: Vec<Claimed>) {
        let lease_end = now_ms() + self.lease.as_millis() as i64;
        let timeout = self.policy.timeout.as_millis() as i64;
        let mut delivered = Vec::new();
        let mut failed = None;
        let mut next = claimed.len();
        for (i, delivery) in claimed.iter().enumerate() {
            // Never start an attempt that could outlive the claim.
            if now_ms() + timeout >= lease_end {
                next = i;
                break;
            }
            match self.attempt(delivery).await {
                Ok(()) => delivered.push(delivery.id),
                Err((why, fatal)) => {
                    failed = Some((delivery, why, fatal));
                    next = i + 1;
                    break;
                }
            }
        }
        let settled = self.settle(&delivered, failed, &claimed[next..]).await;
        if let Err(error) = settled {
            // The claims stay until their lease ends; then they are tried
            // again (at least once).
            tracing::warn!(
                plugin = self.plugin,
                "recording deliveries failed: {}",
                error.message
            );
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
        let ctx = self.state.app_context(self.state.db.begin(true));
        let called = tokio::time::timeout(self.policy.timeout, self.call(&delivery, &ctx)).await;
        let outcome = match called {
            Ok(Ok(())) => hookspecs::host::unit_of_work(&ctx)
                .commit()
                .await
                .map_err(|e| format!("committing the hook's writes failed: {}", e.message)),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!(
                "the hook overran its time limit of {:?}",
                self.policy.timeout
            )),
        };
        if outcome.is_err() {
            let _ = hookspecs::host::unit_of_work(&ctx).rollback().await;
        }
        outcome.map_err(|why| (why, false))
    }

    /// Calls this plugin's (and only this plugin's) after-commit hook.
    async fn call(&self, delivery: &Delivery, ctx: &HookContext) -> Result<(), String> {
        let hooks = &self.state.hooks;
        let others: Vec<&str> = hooks
            .plugin_names()
            .into_iter()
            .filter(|n| *n != self.plugin)
            .collect();
        let relay = hooks
            .subset_hook_caller(&others)
            .map_err(|e| e.to_string())?;
        let d = delivery;
        let called = match &d.change {
            Change::UserCreated(user) => relay.after_user_created(user, d, ctx).await,
            Change::UserModified { before, after } => {
                relay.after_user_modified(before, after, d, ctx).await
            }
            Change::UserDeleted(user) => relay.after_user_deleted(user, d, ctx).await,
            Change::SpaceCreated(space) => relay.after_space_created(space, d, ctx).await,
            Change::SpaceModified { before, after } => {
                relay.after_space_modified(before, after, d, ctx).await
            }
            Change::SpaceDeleted(space) => relay.after_space_deleted(space, d, ctx).await,
            Change::MembershipCreated(m) => relay.after_membership_created(m, d, ctx).await,
            Change::MembershipModified { before, after } => {
                relay.after_membership_modified(before, after, d, ctx).await
            }
            Change::MembershipDeleted(m) => relay.after_membership_deleted(m, d, ctx).await,
        };
        called.map(drop).map_err(|e| e.to_string())
    }

    /// Records a batch's outcome in one write: `delivered` done, `failed`
    /// retried after a backoff or dead once its attempts are spent (or at
    /// once when fatal), `unattempted` given back.
    async fn settle(
        &self,
        delivered: &[i64],
        failed: Option<(&Claimed, String, bool)>,
        unattempted: &[Claimed],
    ) -> Result<(), ApiError> {
        let now = now_ms();
        let list = |ids: &mut dyn Iterator<Item = i64>| {
            ids.map(|id| id.to_string()).collect::<Vec<_>>().join(", ")
        };
        // The failed one's fate, decided once (its log line too), whatever
        // runs the write takes.
        let failed = failed.map(|(claimed, why, fatal)| {
            let attempts = claimed.attempts + 1;
            let dead = fatal || attempts >= i64::from(self.policy.max_attempts);
            let failures = u32::try_from(attempts).unwrap_or(u32::MAX);
            let delay = self.policy.delay(failures, getrandom::u64().unwrap_or(0));
            if dead {
                tracing::warn!(plugin = self.plugin, event = %claimed.key, attempts,
                    "delivery dead: {why}");
            } else {
                tracing::warn!(plugin = self.plugin, event = %claimed.key, attempts,
                    "delivery failed, retrying in {delay:?}: {why}");
            }
            (
                claimed.id,
                attempts,
                why,
                dead,
                now + delay.as_millis() as i64,
            )
        });
        let failed = failed.as_ref();
        bookkeeping(&self.state, |ctx| async move {
            let mut db = ctx.db().await?;
            if !delivered.is_empty() {
                let sql = format!(
                    "UPDATE outbox_deliveries SET status = 'delivered', attempts = attempts + 1, \
                     last_error = NULL, done_ms = $1, lease_owner = NULL, lease_until_ms = 0 \
                     WHERE id IN ({})",
                    list(&mut delivered.iter().copied())
                );
                sqlx::query(&sql).bind(now).execute(&mut *db).await?;
            }
            if let Some((id, attempts, why, dead, next)) = failed {
                sqlx::query(
                    "UPDATE outbox_deliveries SET attempts = $1, last_error = $2, status = $3, \
                     next_attempt_ms = $4, done_ms = $5, lease_owner = NULL, lease_until_ms = 0 \
                     WHERE id = $6 AND lease_owner = $7 AND status = 'pending'",
                )
                .bind(*attempts)
                .bind(why)
                .bind(if *dead { "dead" } else { "pending" })
                .bind(*next)
                .bind(dead.then_some(now))
                .bind(*id)
                .bind(&self.owner)
                .execute(&mut *db)
                .await?;
            }
            if !unattempted.is_empty() {
                let sql = format!(
                    "UPDATE outbox_deliveries SET lease_owner = NULL, lease_until_ms = 0 \
                     WHERE lease_owner = $1 AND id IN ({})",
                    list(&mut unattempted.iter().map(|c| c.id))
                );
                sqlx::query(&sql)
                    .bind(&self.owner)
                    .execute(&mut *db)
                    .await?;
            }
            Ok(())
        })
        .await
    }
}

fn claimed_row(row: &AnyRow) -> Result<Claimed, ApiError> {
    Ok(Claimed {
        id: row.try_get("id")?,
        attempts: row.try_get("attempts")?,
        key: row.try_get("event_key")?,
        change: row.try_get("change")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// Deletes delivered deliveries older than `retention`, and events left
/// with no delivery, every minute (or every `retention`, if shorter).
async fn prune_forever(state: Arc<State>, retention: Duration) {
    let every = retention.clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        match prune(&state, retention).await {
            Ok(()) => {}
            Err(error) => tracing::warn!("pruning delivered events failed: {}", error.message),
        }
    }
}

/// One pruning pass.
///
/// # Errors
///
/// The database's.
pub async fn prune(state: &State, retention: Duration) -> Result<(), ApiError> {
    let before = now_ms() - retention.as_millis() as i64;
    bookkeeping(state, |ctx| async move {
        let mut db = ctx.db().await?;
        sqlx::query("DELETE FROM outbox_deliveries WHERE status = 'delivered' AND done_ms < $1")
            .bind(before)
            .execute(&mut *db)
            .await?;
        sqlx::query(
            "DELETE FROM outbox_events WHERE NOT EXISTS \
             (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox_events.id)",
        )
        .execute(&mut *db)
        .await?;
        Ok(())
    })
    .await
}
