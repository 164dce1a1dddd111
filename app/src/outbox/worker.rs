//! The delivery worker's tasks: starting one per plugin with an
//! after-commit hook (each runs that plugin's queue, `queue.rs`, with its
//! cursor put at the head if it has none) and the pruning task, and
//! stopping them; leases given back, and the pruning. The statements built per
//! dialect or per batch shape (new cursor, look, claim, settle) are in
//! `statements.rs`; this file's own (releasing leases, pruning) are here.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use hooks_core::PluginManager;
use hookspecs::{ApiError, AppHooks};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::queue::{Queue, after_hooks, kept_until, pass_every, start_at_head};
use super::races::{bookkeeping, bookkeeping_statement};
use super::statements::mark_sql;
use super::{DeliveriesConfig, now_ms};
use crate::db::Dialect;
use crate::state::State;

/// The running delivery tasks of this instance.
pub struct Deliverer {
    tasks: Tasks,
    state: Arc<State>,
    owner: String,
}

/// The tasks, while they run: `None` once stopped (a queue started by the
/// watcher after that is stopped at once).
type Tasks = Arc<Mutex<Option<Vec<JoinHandle<()>>>>>;

/// What starts a plugin's queue: the instance's settings, and the plugins
/// delivered to so far (the pruning keeps their cursors).
struct Starter {
    state: Arc<State>,
    config: DeliveriesConfig,
    owner: String,
    lease: Duration,
    delivering: Arc<Mutex<Vec<&'static str>>>,
}

impl Deliverer {
    /// Starts one delivery task per plugin that implements an after-commit
    /// hook (a plugin new to the database starts at the head of the log),
    /// the pruning task, and one that starts the queue of a plugin given
    /// its first after-commit hook by a reload ([`plugins_changed`]). On
    /// SQLite, where this process is the only one delivering, claims left
    /// by an earlier run are released first.
    ///
    /// # Errors
    ///
    /// A plugin whose time limit is not shorter than the lease (no attempt
    /// could ever start), or the database's.
    pub async fn start(state: Arc<State>, config: DeliveriesConfig) -> anyhow::Result<Self> {
        // Before the plugins are read: a reload meanwhile is then seen.
        let changed = PLUGINS.subscribe();
        let plugins = after_commit_plugins(&state.hooks);
        let lease = Duration::from_millis(config.lease_ms);
        for plugin in &plugins {
            check_lease(&config, plugin, lease).map_err(anyhow::Error::msg)?;
        }
        let failed = |e: ApiError| anyhow::anyhow!("preparing the delivery workers: {}", e.message);
        if state.db.dialect() == Dialect::Sqlite {
            release(&state, None).await.map_err(failed)?;
        }
        let owner = hookspecs::new_secret("instance_")?;
        let retention = config.retention();
        let starter = Arc::new(Starter {
            state: state.clone(),
            config,
            owner: owner.clone(),
            lease,
            delivering: Arc::default(),
        });
        let mut tasks = Vec::new();
        for plugin in plugins {
            let queue = starter.prepare(plugin).await.map_err(failed)?;
            tasks.push(tokio::spawn(queue.run()));
        }
        let delivering = starter.delivering.clone();
        tasks.push(tokio::spawn(prune_forever(
            state.clone(),
            retention,
            delivering,
        )));
        let tasks: Tasks = Arc::new(Mutex::new(Some(tasks)));
        let watcher = tokio::spawn(start_when_given(starter, tasks.clone(), changed));
        lock(&tasks).get_or_insert_with(Vec::new).push(watcher);
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
        let tasks = lock(&self.tasks).take().unwrap_or_default();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        if let Err(error) = release(&self.state, Some(&self.owner)).await {
            tracing::warn!("releasing delivery claims at shutdown: {}", error.message);
        }
    }
}

impl Starter {
    /// `plugin`'s queue, to run, its cursor put at the head of the log if
    /// it has none.
    async fn prepare(&self, plugin: &'static str) -> Result<Queue, ApiError> {
        let retention = self.config.retention();
        start_at_head(&self.state, plugin, kept_until(retention)).await?;
        let (state, owner) = (self.state.clone(), self.owner.clone());
        let queue = Queue::new(state, plugin, &self.config, owner, self.lease);
        let policy = queue.policy();
        tracing::info!(
            plugin,
            instance = %self.owner,
            max_attempts = policy.max_attempts,
            backoff_ms = policy.backoff.as_millis(),
            timeout_ms = policy.timeout.as_millis(),
            ordered = policy.ordered,
            "delivering after-commit events"
        );
        lock(&self.delivering).push(plugin);
        Ok(queue)
    }
}

/// Whenever the plugins change ([`plugins_changed`]), starts the queue of
/// each plugin that now implements an after-commit hook and had none; one
/// whose queue could not be prepared (the database) is tried again a
/// little later.
async fn start_when_given(starter: Arc<Starter>, tasks: Tasks, mut changed: watch::Receiver<u64>) {
    let mut waiting = false;
    loop {
        if waiting {
            let _ = tokio::time::timeout(RETRY, changed.changed()).await;
        } else if changed.changed().await.is_err() {
            return;
        }
        waiting = false;
        let delivering = lock(&starter.delivering).clone();
        let new = after_commit_plugins(&starter.state.hooks);
        for plugin in new.into_iter().filter(|p| !delivering.contains(p)) {
            if let Err(why) = check_lease(&starter.config, plugin, starter.lease) {
                tracing::error!(plugin, "not delivering its after-commit events: {why}");
                continue;
            }
            match starter.prepare(plugin).await {
                // Spawned only while the tasks run: stopped, nothing starts.
                Ok(queue) => match lock(&tasks).as_mut() {
                    Some(running) => running.push(tokio::spawn(queue.run())),
                    None => return,
                },
                Err(error) => {
                    tracing::warn!(
                        plugin,
                        "its after-commit deliveries could not start yet: {}",
                        error.message
                    );
                    waiting = true;
                }
            }
        }
    }
}

/// How soon a queue that could not be prepared is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Plugins changed while the app runs (a reload).
static PLUGINS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Tells the delivery workers that the plugins changed (a reload swapped
/// one in), so that a plugin given its first after-commit hook gets its
/// queue.
pub fn plugins_changed() {
    PLUGINS.send_modify(|n| *n = n.wrapping_add(1));
}

/// Refuses a plugin whose attempt's time limit is not shorter than the
/// lease: no attempt could ever start.
fn check_lease(config: &DeliveriesConfig, plugin: &str, lease: Duration) -> Result<(), String> {
    let timeout = config.policy(plugin).timeout;
    if timeout < lease {
        return Ok(());
    }
    Err(format!(
        "[deliveries] lease_ms ({}) must be longer than plugin {plugin}'s timeout_ms ({})",
        lease.as_millis(),
        timeout.as_millis()
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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
    after_hooks(hooks).into_keys().collect()
}

/// Every minute (or every `retention`, if shorter), a pruning pass.
async fn prune_forever(
    state: Arc<State>,
    retention: Duration,
    delivering: Arc<Mutex<Vec<&'static str>>>,
) {
    let every = pass_every(retention);
    loop {
        tokio::time::sleep(every).await;
        let loaded = lock(&delivering).clone();
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
