//! The unit of work of the native runtime: one operation's database
//! transaction, shared by the operation and every hook it fires. Native
//! only: a component reaches the same transaction through the host (see
//! `guest`).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

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
pub struct UnitOfWork {
    tx: Mutex<Tx>,
    /// `Some(begin)`: the pool's connections wait inside a transaction that
    /// `begin` began (see [`UnitOfWork::resuming`]).
    resume: Option<&'static str>,
    /// What [`UnitOfWork::when_needed`] was given, and whether it has run
    /// (once run, it holds for the rest of the transaction).
    settings: std::sync::Mutex<Vec<(&'static str, bool)>>,
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
            let mut conn = begin.pool.acquire().await?;
            if self.resume.is_none() {
                run(&mut conn, begin.statement.unwrap_or("BEGIN")).await?;
            }
            *guard = Tx::Open(conn, turn);
        }
        match &*guard {
            Tx::Open(..) => Ok(DbGuard(guard)),
            _ => Err(ApiError::internal("the unit of work has already ended")),
        }
    }

    /// Commits (if the transaction ever began). Called by the application
    /// when the operation succeeded.
    ///
    /// # Errors
    ///
    /// The database's (the transaction is then rolled back), or the unit
    /// of work has already ended.
    pub async fn commit(&self) -> Result<(), ApiError> {
        match std::mem::replace(&mut *self.tx.lock().await, Tx::Ended) {
            Tx::Open(conn, _turn) if self.resume.is_some() => {
                let commit = checked_commit(&conn);
                // A failure closes the connection, which ends its transaction.
                self.end(conn, commit).await.map_err(commit_error)
            }
            Tx::Open(mut conn, _turn) => {
                let commit = checked_commit(&conn);
                let committed = run(&mut conn, commit).await;
                if let Err(e) = &committed {
                    // SQLite keeps a transaction whose COMMIT failed (busy)
                    // open, and PostgreSQL one that an earlier error aborted;
                    // PostgreSQL has ended one whose COMMIT failed.
                    if conn.backend_name() != "PostgreSQL" || aborted(e) {
                        let _ = run(&mut conn, "ROLLBACK").await;
                    }
                }
                committed.map(drop).map_err(commit_error)
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
                Err(error)
            }
        }
    }

    /// Rolls back. Called by the application when the operation failed.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn rollback(&self) -> Result<(), ApiError> {
        match std::mem::replace(&mut *self.tx.lock().await, Tx::Ended) {
            Tx::Open(conn, _turn) if self.resume.is_some() => {
                self.end(conn, "ROLLBACK").await?;
                Ok(())
            }
            Tx::Open(mut conn, _turn) => {
                run(&mut conn, "ROLLBACK").await?;
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
