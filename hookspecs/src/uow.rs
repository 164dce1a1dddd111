//! The unit of work of the native runtime: one operation's database
//! transaction, shared by the operation and every hook it fires. Native
//! only: a component reaches the same transaction through the host (see
//! `guest`).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard};

use crate::error::ApiError;

/// The database transaction of one operation. Everything written through it
/// commits or rolls back together: the operation's own rows and whatever its
/// hooks' plugins wrote.
///
/// The transaction begins on first use of [`UnitOfWork::db`]: an operation
/// that never touches the database (a plugin route answering from memory)
/// costs no connection and no round trip.
///
/// It sends `BEGIN`, `COMMIT` and `ROLLBACK` itself rather than through
/// `sqlx::Transaction`: when PostgreSQL refuses a `COMMIT` (a serialization
/// failure found at commit) the transaction is over, and the rollback that
/// `sqlx::Transaction` sends on drop would only draw a warning ("there is no
/// transaction in progress") for every operation that is run again.
///
/// On a pool whose connections wait inside a transaction already begun
/// ([`UnitOfWork::resuming`]), the first use costs no `BEGIN`, and the end
/// sends `COMMIT` (or `ROLLBACK`) and the next `BEGIN` in one round trip.
///
/// Rows queued with [`HookContext::insert_at_commit`](crate::HookContext::insert_at_commit)
/// are inserted by [`UnitOfWork::commit`], just before `COMMIT`: on
/// PostgreSQL in one statement (data-modifying common table expressions),
/// one round trip for all of them.
pub struct UnitOfWork {
    tx: Mutex<Tx>,
    /// `Some(begin)`: the pool's connections wait inside a transaction that
    /// `begin` began (see [`UnitOfWork::resuming`]).
    resume: Option<&'static str>,
    /// What [`UnitOfWork::when_needed`] was given, and whether it has run
    /// (once run, it holds for the rest of the transaction).
    settings: std::sync::Mutex<Vec<(&'static str, bool)>>,
    /// What [`UnitOfWork::pin`] was given, by key: the first value for a
    /// key serves the rest of the unit of work.
    pins: std::sync::Mutex<Vec<(&'static str, Arc<dyn std::any::Any + Send + Sync>)>>,
    /// Rows to insert at commit, in the order queued.
    at_commit: std::sync::Mutex<Vec<Queued>>,
    /// Why the operation may not commit, whatever its caller answers: see
    /// [`UnitOfWork::fail`].
    failed: std::sync::Mutex<Option<ApiError>>,
    /// Whether rows were queued for the commit or a failure given: work
    /// that [`UnitOfWork::end_unused`] must leave to `finish`, read there
    /// without the two locks (it runs on every request).
    pending: std::sync::atomic::AtomicBool,
}

/// A row to insert at commit: its table, columns and values (bound as
/// parameters), the names already checked as plain ones.
struct Queued {
    table: String,
    columns: Vec<String>,
    values: Vec<Value>,
}

enum Tx {
    /// Not begun yet.
    Pending(Begin),
    /// Begun; holding the writers' turn if there is one.
    Open(PoolConnection<Any>, Option<OwnedMutexGuard<()>>),
    Ended,
}

/// How the transaction begins, once needed.
struct Begin {
    pool: AnyPool,
    /// `None`: a plain `BEGIN`.
    statement: Option<&'static str>,
    /// Taken before beginning, released at the end: see [`UnitOfWork::one_writer_at_a_time`].
    writers: Option<Arc<Mutex<()>>>,
}

impl UnitOfWork {
    /// A unit of work on `pool` whose transaction, once needed, begins with
    /// `begin` (for example `Some("BEGIN IMMEDIATE")` on SQLite for an
    /// operation that will write), or a plain `BEGIN`.
    pub fn new(pool: AnyPool, begin: Option<&'static str>) -> Self {
        UnitOfWork {
            tx: Mutex::new(Tx::Pending(Begin {
                pool,
                statement: begin,
                writers: None,
            })),
            resume: None,
            settings: std::sync::Mutex::default(),
            pins: std::sync::Mutex::default(),
            at_commit: std::sync::Mutex::default(),
            failed: std::sync::Mutex::default(),
            pending: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A unit of work on `pool`, whose connections each wait inside a
    /// transaction that `begin` began (the pool runs `begin` as it opens a
    /// connection, and every unit of work ends its transaction with the
    /// next `begin` in the same round trip): first use takes a connection
    /// and nothing more. A transaction that has run no statement holds no
    /// lock and no snapshot on SQLite (deferred) or PostgreSQL, so a waiting
    /// connection costs the database nothing; the first statement takes the
    /// snapshot every later one sees.
    ///
    /// A connection whose end fails is closed rather than given back: its
    /// state is not known, and the pool opens a fresh one.
    pub fn resuming(pool: AnyPool, begin: &'static str) -> Self {
        let mut uow = UnitOfWork::new(pool, None);
        uow.resume = Some(begin);
        uow
    }

    /// Waits for `writers` (shared by every writing unit of work) before the
    /// transaction begins, and holds it until it ends. For a database that
    /// takes one writer at a time (SQLite): writers queue here in order and
    /// start the moment their turn comes, where the database's own busy
    /// handler would have them retry after sleeps of up to 100 ms.
    pub fn one_writer_at_a_time(mut self, writers: Arc<Mutex<()>>) -> Self {
        if let Tx::Pending(begin) = self.tx.get_mut() {
            begin.writers = Some(writers);
        }
        self
    }

    /// Remembers `setting` (a statement that changes how the rest of the
    /// transaction runs, such as `SET CONSTRAINTS ...`), to be run only when
    /// a later statement needs it ([`UnitOfWork::needs`]): an operation
    /// that may need a setting pays its round trip only if it does.
    pub fn when_needed(&self, setting: &'static str) {
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        if !settings.iter().any(|(s, _)| *s == setting) {
            settings.push((setting, false));
        }
    }

    /// The value pinned under `key` in this unit of work: the first one
    /// given for `key`, here or by an earlier call (`value` if none was).
    /// How a reloaded component keeps one version for a whole operation:
    /// every call of the operation runs the version its first call ran.
    ///
    /// # Panics
    ///
    /// If `key` was pinned with a value of another type: one key, one
    /// kind of value.
    pub fn pin<T: std::any::Any + Send + Sync>(&self, key: &'static str, value: &Arc<T>) -> Arc<T> {
        let mut pins = lock(&self.pins);
        match pins.iter().find(|(k, _)| *k == key) {
            Some((_, pinned)) => match pinned.clone().downcast::<T>() {
                Ok(pinned) => pinned,
                Err(_) => panic!("`{key}` is pinned with a value of another type"),
            },
            None => {
                pins.push((key, value.clone()));
                value.clone()
            }
        }
    }

    /// Runs `setting` now if [`UnitOfWork::when_needed`] was given it and
    /// it has not run yet; otherwise does nothing.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn needs(&self, setting: &'static str) -> Result<(), ApiError> {
        let asked = {
            let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
            let pending = settings.iter_mut().find(|(s, ran)| *s == setting && !*ran);
            pending.map(|(_, ran)| *ran = true).is_some()
        };
        if asked {
            run(&mut *self.db().await?, setting).await?;
        }
        Ok(())
    }

    /// Queues `row` to be inserted into `table` at commit (see
    /// [`HookContext::insert_at_commit`](crate::HookContext::insert_at_commit),
    /// which checks the names).
    pub(crate) fn insert_at_commit(&self, table: &str, row: Vec<(&str, Value)>) {
        let (columns, values) = row.into_iter().map(|(c, v)| (c.to_owned(), v)).unzip();
        let queued = Queued {
            table: table.to_owned(),
            columns,
            values,
        };
        lock(&self.at_commit).push(queued);
        self.pending
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The transaction's connection, for `sqlx` queries:
    /// `query.execute(&mut *uow.db().await?)`. Hold the guard only for the
    /// queries themselves: hooks called meanwhile need it too.
    ///
    /// # Errors
    ///
    /// The database's, beginning; or the unit of work has already ended.
    pub async fn db(&self) -> Result<DbGuard<'_>, ApiError> {
        let mut guard = self.tx.lock().await;
        if let Tx::Pending(begin) = &*guard {
            let turn = match &begin.writers {
                Some(writers) => Some(writers.clone().lock_owned().await),
                None => None,
            };
            let conn = match self.resume {
                Some(_) => begin.pool.acquire().await?,
                None => begun(&begin.pool, begin.statement.unwrap_or("BEGIN")).await?,
            };
            *guard = Tx::Open(conn, turn);
        }
        match &*guard {
            Tx::Open(..) => Ok(DbGuard(guard)),
            _ => Err(ApiError::internal("the unit of work has already ended")),
        }
    }

    /// Marks the operation failed with `error` (the first one given is
    /// kept): it will not commit, even if the code that saw the error
    /// carries on and answers `Ok`. For a step that failed after writing
    /// (a change whose hook refused it): its rows are in the transaction,
    /// and only the rollback of the whole takes them out.
    pub fn fail(&self, error: &ApiError) {
        lock(&self.failed).get_or_insert_with(|| error.clone());
        self.pending
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Commits (if the transaction ever began). Called by the application
    /// when the operation succeeded.
    ///
    /// # Errors
    ///
    /// The database's (the transaction is then rolled back); the error
    /// given to [`UnitOfWork::fail`], if any (rolled back too); or the
    /// unit of work has already ended.
    pub async fn commit(&self) -> Result<(), ApiError> {
        let failed = lock(&self.failed).take();
        if let Some(failed) = failed {
            if let Err(rollback) = self.rollback().await {
                tracing::error!(%rollback, "rollback failed");
            }
            return Err(failed);
        }
        let queued = std::mem::take(&mut *lock(&self.at_commit));
        if !queued.is_empty() {
            // While the transaction is still held here: cancelled halfway,
            // the unit of work's drop rolls it back.
            let inserted = insert_queued(&mut *self.db().await?, &queued).await;
            if let Err(e) = inserted {
                // Nothing commits: the statement failed in the transaction.
                let _ = self.rollback().await;
                return Err(commit_error(e));
            }
        }
        match std::mem::replace(&mut *self.tx.lock().await, Tx::Ended) {
            Tx::Open(conn, _turn) => {
                // After the inserts ran, no earlier error aborted the
                // transaction: a plain `COMMIT` says whether it committed.
                let commit = match queued.is_empty() {
                    true => checked_commit(&conn),
                    false => "COMMIT",
                };
                let committed = match self.resume {
                    // A failure closes the connection, which ends its transaction.
                    Some(_) => self.end(conn, commit).await,
                    None => commit_on(conn, commit).await,
                };
                committed.map_err(commit_error)
            }
            Tx::Pending(_) => Ok(()),
            Tx::Ended => Err(ApiError::internal("the unit of work has already ended")),
        }
    }

    /// Ends the unit of work as its work ended: committed if `outcome` is
    /// `Ok`, rolled back otherwise, so nothing is ever half-written. The
    /// one place the application ends a unit of work (requests, after-commit
    /// deliveries, the test kit).
    ///
    /// # Errors
    ///
    /// `outcome`'s error, or the commit's. A failed rollback is logged: the
    /// work's own error is what the caller needs.
    pub async fn finish<T>(&self, outcome: Result<T, ApiError>) -> Result<T, ApiError> {
        match outcome {
            Ok(value) => self.commit().await.map(|()| value),
            Err(error) => {
                if let Err(rollback) = self.rollback().await {
                    tracing::error!(%rollback, "rollback failed");
                }
                // A lost race stays one, whatever the caller made of it:
                // the operation is run again.
                let failed = lock(&self.failed).take();
                Err(failed.filter(ApiError::is_race).unwrap_or(error))
            }
        }
    }

    /// Rolls back. Called by the application when the operation failed.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn rollback(&self) -> Result<(), ApiError> {
        lock(&self.at_commit).clear();
        match std::mem::replace(&mut *self.tx.lock().await, Tx::Ended) {
            Tx::Open(conn, _turn) if self.resume.is_some() => {
                self.end(conn, "ROLLBACK").await?;
                Ok(())
            }
            Tx::Open(conn, _turn) => {
                settle(conn, "ROLLBACK", |_, _| false).await?;
                Ok(())
            }
            Tx::Pending(_) | Tx::Ended => Ok(()),
        }
    }

    /// Ends the unit of work at once if its transaction never began, as
    /// [`UnitOfWork::finish`] would (nothing to commit or roll back; later
    /// uses fail), and says whether it did: an operation that never touched
    /// the database (a route answering from memory) then skips `finish`,
    /// its lock and its future. `false`: it began, or is in use right now;
    /// end it with `finish`.
    pub fn end_unused(&self) -> bool {
        // Rows queued for the commit, or a failure to answer, are work
        // (set by the same task before it ends, so a relaxed read sees it).
        if self.pending.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        match self.tx.try_lock() {
            Ok(mut tx) if matches!(*tx, Tx::Pending(_)) => {
                *tx = Tx::Ended;
                true
            }
            _ => false,
        }
    }

    /// Ends a resuming unit of work's transaction with `how` (`COMMIT` or
    /// `ROLLBACK`) and begins the next one for the connection's next user,
    /// in one round trip. The connection goes back to the pool only if
    /// both ran: if that fails, or is cancelled halfway (its request
    /// dropped, which can leave it committed but not begun again), it is
    /// closed.
    fn end(
        &self,
        conn: PoolConnection<Any>,
        how: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'static {
        let statement = format!("{how}; {}", self.resume.unwrap_or("BEGIN"));
        async move {
            let mut ending = Ending(Some(conn));
            let ended = match ending.0.as_mut() {
                Some(conn) => run(conn, &statement).await,
                None => unreachable!("the connection is taken only once ended"),
            };
            if ended.is_ok() {
                drop(ending.0.take());
            }
            ended.map(drop)
        }
    }
}

impl Drop for UnitOfWork {
    /// A unit of work dropped while its transaction is open (its operation
    /// was cancelled) rolls back before its connection (and the writers'
    /// turn) is given back; without a runtime to do that on, the connection
    /// is closed instead, which ends the transaction too.
    fn drop(&mut self) {
        let Tx::Open(mut conn, turn) = std::mem::replace(self.tx.get_mut(), Tx::Ended) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if self.resume.is_some() => {
                let ended = self.end(conn, "ROLLBACK");
                runtime.spawn(async move {
                    let _ = ended.await;
                    drop(turn);
                });
            }
            Ok(runtime) => {
                runtime.spawn(async move {
                    if run(&mut conn, "ROLLBACK").await.is_err() {
                        conn.close_on_drop();
                    }
                    drop(turn);
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}

/// A connection of `pool` with `begin` run on it (see [`live`]).
async fn begun(pool: &AnyPool, begin: &'static str) -> Result<PoolConnection<Any>, sqlx::Error> {
    live(pool, |conn| run(conn, begin))
        .await
        .map(|(conn, _)| conn)
}

/// A connection of `pool` with `first` run on it, and what `first` gave.
/// A pooled connection found dead by `first` (the server restarted, or
/// ended it while it was idle) is closed and another taken, as many times
/// as the pool has connections, then one more; so `first` must be safe to
/// run again: a `BEGIN`, a read. With this the pool need not check every
/// connection before handing it out (sqlx's ping, a round trip per use).
///
/// # Errors
///
/// The pool's, or `first`'s when it is not a lost connection (or the last
/// try's).
pub async fn live<T>(
    pool: &AnyPool,
    mut first: impl for<'c> FnMut(
        &'c mut AnyConnection,
    ) -> futures::future::BoxFuture<'c, Result<T, sqlx::Error>>,
) -> Result<(PoolConnection<Any>, T), sqlx::Error> {
    let mut tries = pool.options().get_max_connections() + 1;
    loop {
        let mut conn = pool.acquire().await?;
        match first(&mut conn).await {
            Ok(done) => return Ok((conn, done)),
            Err(e) if tries > 1 && lost_connection(&e) => {
                tracing::info!(error = %e, "a pooled connection was dead; taking another");
                conn.close_on_drop();
                tries -= 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `error` says the connection is gone: an I/O error, or
/// PostgreSQL's "connection exception" (08) and "operator intervention"
/// (57P: the backend was terminated, the server is shutting down).
fn lost_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// The most parameters of one statement: below both databases' limits
/// (PostgreSQL's 65,535, SQLite's 32,766).
const MAX_PARAMETERS: usize = 30_000;

/// `sql` with `params` bound in order: null, booleans, numbers and
/// strings, anything else as its JSON text.
pub(crate) fn bound<'q>(
    sql: &'q str,
    params: impl IntoIterator<Item = &'q Value>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql);
    for param in params {
        query = match param {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().unwrap_or_default()),
            },
            Value::String(s) => query.bind(s.as_str()),
            other => query.bind(other.to_string()),
        };
    }
    query
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Inserts the rows queued for the commit, in as few statements as the
/// database allows, each with its parameters: on SQLite one per table (a
/// statement costs no round trip there, and it has no data-modifying
/// common table expressions); on PostgreSQL one for all, `WITH q1 AS
/// (INSERT ...), q2 AS (INSERT ...) INSERT ...`, unless it would pass
/// [`MAX_PARAMETERS`]. Rows of one table with the same columns are one
/// multi-row `INSERT`, which inserts them in the order queued; a table
/// appears at most once per statement, since PostgreSQL runs the parts of
/// one in no set order.
///
/// The parameters are the queued values themselves, bound as they are
/// (not copied: an event's row holds the change's whole JSON text).
fn statements(queued: &[Queued], postgres: bool) -> Vec<(String, Vec<&Value>)> {
    // Rows by (table, columns), in the order each first appears.
    let mut groups: Vec<(&Queued, Vec<&Queued>)> = Vec::new();
    for row in queued {
        match groups
            .iter_mut()
            .find(|(first, _)| first.table == row.table && first.columns == row.columns)
        {
            Some((_, rows)) => rows.push(row),
            None => groups.push((row, vec![row])),
        }
    }
    let mut done = Vec::new();
    // The statement being built: its parts (table, SQL) and parameters.
    let mut parts: Vec<(&str, String)> = Vec::new();
    let mut params: Vec<&Value> = Vec::new();
    fn finish<'v>(
        parts: &mut Vec<(&str, String)>,
        params: &mut Vec<&'v Value>,
        done: &mut Vec<(String, Vec<&'v Value>)>,
    ) {
        let Some((_, last)) = parts.pop() else {
            return;
        };
        let with: Vec<String> = (1..)
            .zip(parts.drain(..))
            .map(|(n, (_, sql))| format!("q{n} AS ({sql})"))
            .collect();
        let sql = if with.is_empty() {
            last
        } else {
            format!("WITH {} {last}", with.join(", "))
        };
        done.push((sql, std::mem::take(params)));
    }
    for (first, rows) in &groups {
        let columns: Vec<&str> = first.columns.iter().map(String::as_str).collect();
        for chunk in rows.chunks((MAX_PARAMETERS / columns.len()).max(1)) {
            let size = chunk.len() * columns.len();
            let full = params.len() + size > MAX_PARAMETERS;
            let again = parts.iter().any(|(table, _)| *table == first.table);
            if !postgres || full || again {
                finish(&mut parts, &mut params, &mut done);
            }
            let sql =
                crate::util::insert_sql(&first.table, &columns, chunk.len(), params.len() + 1);
            parts.push((&first.table, sql));
            params.extend(chunk.iter().flat_map(|row| &row.values));
        }
    }
    finish(&mut parts, &mut params, &mut done);
    done
}

async fn insert_queued(conn: &mut AnyConnection, queued: &[Queued]) -> Result<(), sqlx::Error> {
    let postgres = conn.backend_name() == "PostgreSQL";
    for (sql, params) in statements(queued, postgres) {
        bound(&sql, params).execute(&mut *conn).await?;
    }
    Ok(())
}

/// How a transaction commits on `conn`. PostgreSQL answers a `COMMIT` of a
/// transaction that an error aborted (a statement that failed, whose error
/// a hook caught and did not pass on) by rolling it back, without an error:
/// the operation would report success with nothing written. So on
/// PostgreSQL a statement that fails in an aborted transaction goes first,
/// in the same round trip.
fn checked_commit(conn: &AnyConnection) -> &'static str {
    if conn.backend_name() == "PostgreSQL" {
        "SELECT 1; COMMIT"
    } else {
        "COMMIT"
    }
}

/// PostgreSQL's "current transaction is aborted".
fn aborted(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("25P02"))
}

fn commit_error(error: sqlx::Error) -> ApiError {
    if aborted(&error) {
        ApiError::internal(
            "a statement of the operation failed and its error was not passed on \
             (a hook caught it): the operation was rolled back, nothing was written",
        )
    } else {
        error.into()
    }
}

/// Sends `commit` on `conn` (not resuming), and rolls back what a failed
/// one left open: SQLite keeps a transaction whose COMMIT failed (busy)
/// open, and PostgreSQL one that an earlier error aborted; PostgreSQL has
/// ended one whose COMMIT it refused.
async fn commit_on(conn: PoolConnection<Any>, commit: &'static str) -> Result<(), sqlx::Error> {
    let refused = |conn: &AnyConnection, e: &sqlx::Error| {
        conn.backend_name() == "PostgreSQL" && e.as_database_error().is_some() && !aborted(e)
    };
    settle(conn, commit, refused).await
}

/// Runs `statement` (`COMMIT` or `ROLLBACK`) on `conn`, whose transaction
/// the unit of work no longer holds, and gives the connection back to the
/// pool only outside a transaction: after `statement` ran, or failed in a
/// way that `ended` says ended the transaction, or failed and a `ROLLBACK`
/// ran. Otherwise, and if this is cancelled halfway (its request dropped),
/// the connection is closed, which ends its transaction.
async fn settle(
    conn: PoolConnection<Any>,
    statement: &'static str,
    ended: impl Fn(&AnyConnection, &sqlx::Error) -> bool,
) -> Result<(), sqlx::Error> {
    let mut ending = Ending(Some(conn));
    let Some(conn) = ending.0.as_mut() else {
        unreachable!("the connection is taken only once ended")
    };
    let outcome = run(conn, statement).await.map(drop);
    let clean = match &outcome {
        Ok(()) => true,
        Err(e) => {
            ended(conn, e) || (statement != "ROLLBACK" && run(conn, "ROLLBACK").await.is_ok())
        }
    };
    if clean {
        drop(ending.0.take());
    }
    outcome
}

/// A connection being ended: closed when dropped, unless taken back.
struct Ending(Option<PoolConnection<Any>>);

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.0 {
            conn.close_on_drop();
        }
    }
}

/// Runs `statement` (`BEGIN`, `COMMIT`, `ROLLBACK`, or `COMMIT; BEGIN`)
/// on `conn`, through the executor's boxed future: one that stays `Send` in
/// the callers' futures and in a spawned task, unlike `raw_sql`'s. On SQLite
/// as a prepared statement, kept by the connection (sqlx prepares a text
/// statement anew each time); PostgreSQL takes several statements in one
/// text query only.
fn run<'c>(
    conn: &'c mut AnyConnection,
    statement: &'c str,
) -> futures::future::BoxFuture<'c, Result<sqlx::any::AnyQueryResult, sqlx::Error>> {
    if conn.backend_name() == "SQLite" {
        sqlx::Executor::execute(conn, sqlx::query(statement))
    } else {
        sqlx::Executor::execute(conn, statement)
    }
}

/// The locked connection of a [`UnitOfWork`], in its transaction: what
/// `ctx.db().await?` gives, for `sqlx` queries (`&mut *guard`). Hooks
/// called while it is held wait for it: drop it (end the statement) before
/// calling the services.
///
/// ```
/// use hookspecs::host::UnitOfWork;
/// use hookspecs::sqlx::{self, Row, any::AnyPoolOptions};
///
/// # hookspecs::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
/// #     .block_on(async {
/// sqlx::any::install_default_drivers();
/// let pool = AnyPoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
/// let uow = UnitOfWork::new(pool, None);
/// {
///     let mut db = uow.db().await?; // begins the transaction
///     sqlx::query("CREATE TABLE notes (text TEXT)").execute(&mut *db).await?;
///     sqlx::query("INSERT INTO notes VALUES ('hi')").execute(&mut *db).await?;
///     let row = sqlx::query("SELECT COUNT(*) AS n FROM notes").fetch_one(&mut *db).await?;
///     assert_eq!(row.try_get::<i64, _>("n")?, 1);
/// } // the guard goes: the next query (or hook) may take it
/// uow.commit().await?;
/// # Ok::<(), hookspecs::ApiError>(())
/// # }).unwrap();
/// ```
pub struct DbGuard<'a>(MutexGuard<'a, Tx>);

impl Deref for DbGuard<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &*self.0 {
            Tx::Open(conn, _) => conn,
            _ => unreachable!("a DbGuard is only made for an open transaction"),
        }
    }
}

impl DerefMut for DbGuard<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut *self.0 {
            Tx::Open(conn, _) => conn,
            _ => unreachable!("a DbGuard is only made for an open transaction"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use sqlx::Row;

    use super::{MAX_PARAMETERS, Queued, UnitOfWork, statements};

    fn row(table: &str, values: &[(&str, Value)]) -> Queued {
        Queued {
            table: table.into(),
            columns: values.iter().map(|(c, _)| (*c).to_owned()).collect(),
            values: values.iter().map(|(_, v)| v.clone()).collect(),
        }
    }

    #[test]
    fn postgres_inserts_every_queued_row_in_one_statement_in_queued_order() {
        let queued = [
            row("events", &[("key", json!("a")), ("n", json!(1))]),
            row("plugin_log", &[("kind", json!("x"))]),
            row("events", &[("key", json!("b")), ("n", json!(2))]),
        ];
        let postgres: Vec<(String, Vec<Value>)> = statements(&queued, true)
            .into_iter()
            .map(|(sql, params)| (sql, params.into_iter().cloned().collect()))
            .collect();
        assert_eq!(
            postgres,
            [(
                "WITH q1 AS (INSERT INTO \"events\" (\"key\", \"n\") VALUES ($1, $2), ($3, $4)) \
                 INSERT INTO \"plugin_log\" (\"kind\") VALUES ($5)"
                    .to_owned(),
                vec![json!("a"), json!(1), json!("b"), json!(2), json!("x")]
            )]
        );
        let sqlite: Vec<String> = statements(&queued, false)
            .into_iter()
            .map(|(sql, _)| sql)
            .collect();
        assert_eq!(
            sqlite,
            [
                "INSERT INTO \"events\" (\"key\", \"n\") VALUES ($1, $2), ($3, $4)",
                "INSERT INTO \"plugin_log\" (\"kind\") VALUES ($1)"
            ]
        );
    }

    /// Parts of one statement run in no set order on PostgreSQL: a table
    /// whose rows need two parts (other columns, or too many parameters)
    /// gets them in two statements, one after the other.
    #[test]
    fn a_table_appears_once_per_statement_and_no_statement_passes_the_parameter_limit() {
        let other_columns = [
            row("events", &[("key", json!("a"))]),
            row("events", &[("key", json!("b")), ("n", json!(2))]),
        ];
        let sql: Vec<String> = statements(&other_columns, true)
            .into_iter()
            .map(|(sql, _)| sql)
            .collect();
        assert_eq!(
            sql,
            [
                "INSERT INTO \"events\" (\"key\") VALUES ($1)",
                "INSERT INTO \"events\" (\"key\", \"n\") VALUES ($1, $2)"
            ]
        );
        let many: Vec<Queued> = (0..MAX_PARAMETERS / 3 + 1)
            .map(|i| {
                row(
                    "events",
                    &[("a", json!(i)), ("b", json!(i)), ("c", json!(i))],
                )
            })
            .collect();
        let sizes: Vec<usize> = statements(&many, true)
            .iter()
            .map(|(_, params)| params.len())
            .collect();
        assert_eq!(sizes, [MAX_PARAMETERS, 3]);
    }

    /// On PostgreSQL: the rows of two tables in one statement, each
    /// table's in the order queued; a row refused by a constraint fails
    /// the commit, writes nothing of the operation, and leaves the
    /// connection usable (the same backend serves the next one).
    #[test]
    fn on_postgresql_queued_rows_keep_their_order_and_a_refused_one_writes_nothing() {
        let Some(url) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return;
        };
        on_pool(&url, |pool| async move {
            let (log, tags) = (
                format!("uow_log_{}", std::process::id()),
                format!("uow_tags_{}", std::process::id()),
            );
            for create in [
                format!(
                    "CREATE TABLE {log} (id BIGINT GENERATED BY DEFAULT AS IDENTITY \
                         PRIMARY KEY, text TEXT NOT NULL)"
                ),
                format!("CREATE TABLE {tags} (tag TEXT UNIQUE)"),
            ] {
                sqlx::query(&create).execute(&pool).await.unwrap();
            }
            let texts = |sql: String| {
                let pool = pool.clone();
                async move {
                    let rows = sqlx::query(&sql).fetch_all(&pool).await.unwrap();
                    rows.iter()
                        .map(|r| r.get::<String, _>(0))
                        .collect::<Vec<_>>()
                }
            };
            let pid = "SELECT CAST(pg_backend_pid() AS BIGINT)";
            let begin = Some("BEGIN ISOLATION LEVEL SERIALIZABLE");
            let uow = UnitOfWork::new(pool.clone(), begin);
            let backend: i64 = sqlx::query_scalar(pid)
                .fetch_one(&mut *uow.db().await.unwrap())
                .await
                .unwrap();
            uow.insert_at_commit(&log, vec![("text", json!("a"))]);
            uow.insert_at_commit(&tags, vec![("tag", json!("x"))]);
            uow.insert_at_commit(&log, vec![("text", json!("b"))]);
            uow.insert_at_commit(&log, vec![("text", json!("c"))]);
            uow.commit().await.unwrap();
            let ordered = format!("SELECT text FROM {log} ORDER BY id");
            assert_eq!(texts(ordered.clone()).await, ["a", "b", "c"]);
            assert_eq!(texts(format!("SELECT tag FROM {tags}")).await, ["x"]);

            let uow = UnitOfWork::new(pool.clone(), begin);
            sqlx::query(&format!("INSERT INTO {log} (text) VALUES ('d')"))
                .execute(&mut *uow.db().await.unwrap())
                .await
                .unwrap();
            uow.insert_at_commit(&log, vec![("text", json!("e"))]);
            uow.insert_at_commit(&tags, vec![("tag", json!("x"))]);
            assert!(uow.commit().await.is_err(), "the tag is taken");
            assert_eq!(texts(ordered).await, ["a", "b", "c"]);
            let uow = UnitOfWork::new(pool.clone(), begin);
            let again: i64 = sqlx::query_scalar(pid)
                .fetch_one(&mut *uow.db().await.unwrap())
                .await
                .unwrap();
            uow.commit().await.unwrap();
            assert_eq!(again, backend, "the connection was kept");
            for table in [&log, &tags] {
                sqlx::query(&format!("DROP TABLE {table}"))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        });
    }

    /// Runs `test` on a runtime of its own with a pool of one SQLite
    /// connection to a fresh file (a connection closed and opened again
    /// finds it as it was) holding a table `log (id, text)`.
    fn with_log<F: std::future::Future<Output = ()>>(test: impl FnOnce(sqlx::AnyPool) -> F) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
        on_pool(&url, |pool| async move {
            sqlx::query("CREATE TABLE log (id INTEGER PRIMARY KEY, text TEXT)")
                .execute(&pool)
                .await
                .unwrap();
            test(pool).await;
        });
    }

    /// Runs `test` on a runtime of its own with a pool of one connection
    /// to `url`.
    fn on_pool<F: std::future::Future<Output = ()>>(
        url: &str,
        test: impl FnOnce(sqlx::AnyPool) -> F,
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                sqlx::any::install_default_drivers();
                let pool = sqlx::any::AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .unwrap();
                test(pool).await;
            });
    }

    #[test]
    fn queued_rows_are_inserted_at_commit_in_order_and_not_at_all_on_rollback() {
        with_log(|pool| async move {
            let texts = || async {
                let rows = sqlx::query("SELECT text FROM log ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.get::<String, _>("text"))
                    .collect::<Vec<_>>()
            };
            let uow = UnitOfWork::new(pool.clone(), None);
            for text in ["first", "second", "third"] {
                uow.insert_at_commit("log", vec![("text", json!(text))]);
            }
            let seen = sqlx::query("SELECT COUNT(*) AS n FROM log")
                .fetch_one(&mut *uow.db().await.unwrap())
                .await
                .unwrap();
            assert_eq!(seen.get::<i64, _>("n"), 0, "not inserted before commit");
            uow.commit().await.unwrap();
            assert_eq!(texts().await, ["first", "second", "third"]);

            let uow = UnitOfWork::new(pool.clone(), None);
            uow.insert_at_commit("log", vec![("text", json!("rolled back"))]);
            uow.rollback().await.unwrap();
            // Queued into a unit of work that never began: it begins to insert.
            let uow = UnitOfWork::new(pool.clone(), None);
            uow.insert_at_commit("log", vec![("text", json!("alone"))]);
            uow.commit().await.unwrap();
            assert_eq!(texts().await, ["first", "second", "third", "alone"]);

            // A row the table refuses fails the commit: nothing of the
            // operation is written.
            let uow = UnitOfWork::new(pool.clone(), None);
            sqlx::query("INSERT INTO log (text) VALUES ('with it')")
                .execute(&mut *uow.db().await.unwrap())
                .await
                .unwrap();
            uow.insert_at_commit("log", vec![("missing", json!(1))]);
            assert!(uow.commit().await.is_err());
            assert_eq!(texts().await, ["first", "second", "third", "alone"]);
        });
    }

    /// A commit dropped at any point (its request gone) gives back no
    /// connection inside a transaction: the next unit of work on the
    /// pool's one connection begins, and what was dropped is either all in
    /// or not at all.
    #[test]
    fn a_commit_dropped_halfway_leaves_no_transaction_open() {
        use futures::FutureExt;
        with_log(|pool| async move {
            for polls in 0..6 {
                let uow = UnitOfWork::new(pool.clone(), None);
                sqlx::query("INSERT INTO log (text) VALUES ('statement')")
                    .execute(&mut *uow.db().await.unwrap())
                    .await
                    .unwrap();
                uow.insert_at_commit("log", vec![("text", json!("queued"))]);
                let mut commit = Box::pin(uow.commit());
                for _ in 0..polls {
                    if (&mut commit).now_or_never().is_some() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                drop(commit);
                drop(uow);
                // The dropped unit of work's rollback runs on a task.
                let next = UnitOfWork::new(pool.clone(), Some("BEGIN IMMEDIATE"));
                let rows = sqlx::query("SELECT text FROM log")
                    .fetch_all(&mut *next.db().await.expect("not inside a transaction"))
                    .await
                    .unwrap();
                let statement = rows.iter().filter(|r| r.get::<String, _>(0) == "statement");
                let queued = rows.iter().filter(|r| r.get::<String, _>(0) == "queued");
                assert_eq!(statement.count(), queued.count(), "all or nothing");
                next.rollback().await.unwrap();
            }
        });
    }

    #[test]
    fn the_first_value_pinned_under_a_key_serves_the_whole_unit_of_work() {
        use sqlx::AnyPool;
        use std::sync::Arc;

        sqlx::any::install_default_drivers();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let pool = AnyPool::connect_lazy("sqlite::memory:").unwrap();
        let (one, two) = (
            UnitOfWork::new(pool.clone(), None),
            UnitOfWork::new(pool, None),
        );
        let (v1, v2) = (Arc::new("v1"), Arc::new("v2"));
        assert_eq!(*one.pin("probe", &v1), "v1");
        assert_eq!(*one.pin("probe", &v2), "v1", "pinned by the first call");
        assert_eq!(*one.pin("other", &v2), "v2", "one pin per key");
        assert_eq!(*two.pin("probe", &v2), "v2", "one pin per unit of work");
        let other_type = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            one.pin("probe", &Arc::new(1_u8));
        }));
        assert!(other_type.is_err(), "one key, one kind of value");
        assert_eq!(*one.pin("probe", &v2), "v1", "and the pin holds");
    }
}
