//! The delivery worker's tasks: starting one per plugin with an
//! after-commit hook (each runs that plugin's queue, `queue.rs`, with its
//! cursor put at the head if it has none) and the pruning task, and
//! stopping them; leases given back, and the pruning. The statements built per
//! dialect or per batch shape (new cursor, look, claim, settle) are in
//! `statements.rs`; this file's own (releasing leases, pruning) are here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hooks_core::PluginManager;
use hookspecs::{ApiError, AppHooks, Change};
use tokio::task::JoinHandle;

use super::queue::{Queue, kept_until, pass_every, start_at_head};
use super::races::{bookkeeping, bookkeeping_statement};
use super::statements::mark_sql;
use super::{DeliveriesConfig, now_ms};
use crate::db::Dialect;
use crate::state::State;

/// The running delivery tasks of this instance.
pub struct Deliverer {
    tasks: Vec<JoinHandle<()>>,
    state: Arc<State>,
    owner: String,
}

impl Deliverer {
    /// Starts one delivery task per plugin that implements an after-commit
    /// hook (a plugin new to the database starts at the head of the log),
    /// and the pruning task. On SQLite, where this process is the only one
    /// delivering, claims left by an earlier run are released first.
    ///
    /// # Errors
    ///
    /// A plugin whose time limit is not shorter than the lease (no attempt
    /// could ever start), or the database's.
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
        let failed = |e: ApiError| anyhow::anyhow!("preparing the delivery workers: {}", e.message);
        if state.db.dialect() == Dialect::Sqlite {
            release(&state, None).await.map_err(failed)?;
        }
        let owner = hookspecs::new_secret("instance_")?;
        let mut tasks = Vec::new();
        let names: Vec<&'static str> = plugins.iter().copied().collect();
        let retention = Duration::from_secs(config.retention_s);
        for plugin in plugins {
            start_at_head(&state, plugin, kept_until(retention))
                .await
                .map_err(failed)?;
            let queue = Queue::new(state.clone(), plugin, &config, owner.clone(), lease);
            let policy = queue.policy();
            tracing::info!(
                plugin,
                instance = %owner,
                max_attempts = policy.max_attempts,
                backoff_ms = policy.backoff.as_millis(),
                timeout_ms = policy.timeout.as_millis(),
                ordered = policy.ordered,
                "delivering after-commit events"
            );
            tasks.push(tokio::spawn(queue.run()));
        }
        tasks.push(tokio::spawn(prune_forever(state.clone(), retention, names)));
        Ok(Deliverer {
            tasks,
            state,
            owner,
        })
    }

    /// Stops the tasks and gives this instance's claims back, so another
    /// instance (or the next start) goes on at once rather than after the
    /// lease. An event cut short is delivered again (at least once).
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(error) = release(&self.state, Some(&self.owner)).await {
            tracing::warn!("releasing delivery claims at shutdown: {}", error.message);
        }
    }
}

/// Gives back the plugins' leases held by `owner` (every lease: `None`).
async fn release(state: &State, owner: Option<&str>) -> Result<(), ApiError> {
    bookkeeping_statement(state, || {
        sqlx::query(
            "UPDATE outbox_cursors SET lease_owner = NULL, lease_until_ms = 0 \
             WHERE lease_owner IS NOT NULL AND ($1 = '' OR lease_owner = $1)",
        )
        .bind(owner.unwrap_or_default())
    })
    .await
}

/// The plugins implementing at least one `after_*` hook.
fn after_commit_plugins(hooks: &PluginManager<dyn AppHooks>) -> BTreeSet<&'static str> {
    let mut plugins = BTreeSet::new();
    for spec in hooks.hookspecs() {
        if Change::event_of(spec.name).is_none() {
            continue;
        }
        for i in hooks.get_hookimpls(spec.name).unwrap_or_default() {
            if !i.wrapper {
                plugins.insert(i.plugin);
            }
        }
    }
    plugins
}

/// Every minute (or every `retention`, if shorter), a pruning pass.
async fn prune_forever(state: Arc<State>, retention: Duration, loaded: Vec<&'static str>) {
    let every = pass_every(retention);
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = prune(&state, retention, &loaded).await {
            tracing::warn!("pruning delivered events failed: {}", error.message);
        }
    }
}

/// One pruning pass: keeps the cursors of the plugins `loaded` here until
/// three passes from now (the instance's promise to mark them again), in
/// a statement of its own, which no failure of the rest undoes; forgets
/// the cursors whose every promise ran out longer than `retention` ago (an
/// instance's own retention, and so its passes, may differ from
/// another's: a live instance's promise never runs out), which would
/// otherwise hold back the pruning of every later event for ever; deletes
/// delivered deliveries older than `retention`, and events older than it
/// that every cursor has passed and that have no delivery left.
async fn prune(state: &State, retention: Duration, loaded: &[&str]) -> Result<(), ApiError> {
    if !loaded.is_empty() {
        let (mark, kept) = (mark_sql(loaded.len()), kept_until(retention));
        bookkeeping_statement(state, || {
            let query = sqlx::query(&mark).bind(kept);
            loaded.iter().fold(query, |q, plugin| q.bind(*plugin))
        })
        .await?;
    }
    let before = now_ms() - retention.as_millis() as i64;
    bookkeeping(state, |ctx| async move {
        let mut db = ctx.db().await?;
        let deletes = [
            ("DELETE FROM outbox_cursors WHERE kept_ms < $1", before),
            (
                "DELETE FROM outbox_deliveries WHERE status = 'delivered' AND done_ms < $1",
                before,
            ),
            (
                "DELETE FROM outbox_events WHERE recorded_ms < $1 \
                 AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d \
                     WHERE d.event_id = outbox_events.id) \
                 AND NOT EXISTS (SELECT 1 FROM outbox_cursors c \
                     WHERE (c.txid, c.event_id) < (outbox_events.txid, outbox_events.id))",
                before,
            ),
        ];
        for (sql, older_than) in deletes {
            sqlx::query(sql).bind(older_than).execute(&mut *db).await?;
        }
        Ok(())
    })
    .await
}
