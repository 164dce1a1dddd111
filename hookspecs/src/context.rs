//! What entity hooks get beside the entity: the [`HookContext`] with the
//! operation's unit of work, the acting identity, plugin configuration and
//! the application's [`Services`].

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard};

use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::model::{
    Identity, Membership, NewSpace, NewUser, Role, Space, SpacePatch, User, UserPatch,
};
use crate::page::Page;

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
                self.end(conn, "COMMIT").await?;
                Ok(())
            }
            Tx::Open(mut conn, _turn) => {
                let committed = run(&mut conn, "COMMIT").await;
                if committed.is_err() && conn.backend_name() != "PostgreSQL" {
                    // SQLite keeps a transaction whose COMMIT failed (busy)
                    // open; PostgreSQL has ended it already.
                    let _ = run(&mut conn, "ROLLBACK").await;
                }
                committed?;
                Ok(())
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

/// Each plugin's configuration (`[plugins.<name>]` of the config file), by
/// plugin name.
#[derive(Clone, Debug, Default)]
pub struct PluginConfigs(pub HashMap<String, Value>);

/// The context of an entity hook (and of every service call): the
/// operation's unit of work ([`db`](Self::db)), who is acting
/// ([`actor`](Self::actor)), the application's operations
/// ([`services`](Self::services)) and the plugins' configuration. Only the
/// host makes one (see [`host`](crate::host)); a plugin gets it.
///
/// ```
/// use hookspecs::prelude::*;
///
/// struct Journal;
///
/// #[hookimpl]
/// impl AppHooks for Journal {
///     async fn on_space_created(&self, space: &Space, ctx: &HookContext) -> HookResult<()> {
///         // The operation's own transaction: this row commits with the
///         // space, or neither does.
///         sqlx::query("INSERT INTO plugin_journal_entries (space_id, actor) VALUES ($1, $2)")
///             .bind(space.id)
///             .bind(ctx.actor().map(|who| who.name.clone()))
///             .execute(&mut *ctx.db().await?)
///             .await?;
///         // Its settings, `[plugins.journal]`:
///         let verbose = ctx.plugin_config("journal").and_then(|t| t["verbose"].as_bool());
///         if verbose == Some(true) {
///             tracing::info!(space = space.id, "journaled");
///         }
///         Ok(())
///     }
/// }
/// # hookspecs::export_plugin!(|| Journal);
/// ```
#[derive(Clone)]
pub struct HookContext {
    uow: Arc<UnitOfWork>,
    actor: Option<Identity>,
    /// Whether the services ask `authorize` before acting for `actor`
    /// (a request's context), or act with the application's authority (the
    /// context a hook gets).
    checked: bool,
    services: Arc<dyn Services>,
    configs: Arc<PluginConfigs>,
}

impl HookContext {
    pub(crate) fn new(
        uow: Arc<UnitOfWork>,
        actor: Option<Identity>,
        services: Arc<dyn Services>,
        configs: Arc<PluginConfigs>,
    ) -> Self {
        HookContext {
            uow,
            actor,
            checked: true,
            services,
            configs,
        }
    }

    /// The same unit of work, acting as `actor` with `actor`'s rights: what
    /// the services do through the returned context is authorized for
    /// `actor` (`authorize`), as if `actor` had asked the API.
    ///
    /// Inside a hook, `ctx` acts with the application's authority, so that
    /// a plugin keeping an invariant (autoinvite, parent_access) works for
    /// every user; `ctx.acting_as(ctx.actor().cloned())` gives that up and
    /// acts as the user who caused the hook.
    pub fn acting_as(&self, actor: Option<Identity>) -> Self {
        HookContext {
            actor,
            checked: true,
            ..self.clone()
        }
    }

    /// The same unit of work and actor, with the application's authority:
    /// what hooks get.
    pub(crate) fn with_app_authority(&self) -> Self {
        HookContext {
            checked: false,
            ..self.clone()
        }
    }

    /// Whether the services authorize what is done through this context
    /// (see [`HookContext::acting_as`]); `false` inside hooks.
    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// The transaction's connection: `query.execute(&mut *ctx.db().await?)`.
    pub async fn db(&self) -> Result<DbGuard<'_>, ApiError> {
        self.uow.db().await
    }

    /// Who is acting (`None` for the application itself, e.g. at startup).
    pub fn actor(&self) -> Option<&Identity> {
        self.actor.as_ref()
    }

    /// The application's operations, the same the API uses: what a plugin
    /// does through them fires hooks in turn, inside this unit of work.
    pub fn services(&self) -> &dyn Services {
        &*self.services
    }

    /// The configuration table of plugin `plugin` (`[plugins.<name>]`), if any.
    pub fn plugin_config(&self, plugin: &str) -> Option<&Value> {
        self.configs.0.get(plugin)
    }
}

impl std::fmt::Debug for HookContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookContext")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// The application's operations. Every method works inside `ctx`'s unit of
/// work and fires the corresponding hooks, as the API does.
///
/// ```
/// use hookspecs::prelude::*;
///
/// /// Keeps every user a member of space 1.
/// struct Lobby;
///
/// #[hookimpl]
/// impl AppHooks for Lobby {
///     async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
///         let services = ctx.services();
///         if services.get_member(ctx, 1, user.id).await?.is_none() {
///             // Fires on_membership_created in turn, in the same transaction.
///             services.put_member(ctx, 1, user.id, Role::Reader).await?;
///         }
///         Ok(())
///     }
/// }
/// # hookspecs::export_plugin!(|| Lobby);
/// ```
#[async_trait]
pub trait Services: Send + Sync {
    /// Asks `authorize` whether `ctx`'s actor may do `action` to
    /// `resource`: for a plugin's own resources (the core operations ask by
    /// themselves). Inside a hook, with the application's authority, it
    /// allows everything.
    ///
    /// # Errors
    /// 403 naming the action when refused, 404 when the caller may not even
    /// see the resource.
    async fn authorize(
        &self,
        ctx: &HookContext,
        action: Action,
        resource: Resource,
    ) -> Result<(), ApiError>;

    /// Creates a user; fires `on_user_created`.
    async fn create_user(&self, ctx: &HookContext, new: NewUser) -> Result<User, ApiError>;
    /// One user.
    async fn get_user(&self, ctx: &HookContext, id: i64) -> Result<User, ApiError>;
    /// A page of the users, by id ([`Page::all`] for every one).
    async fn list_users(&self, ctx: &HookContext, page: Page) -> Result<Vec<User>, ApiError>;
    /// Changes a user; fires `on_user_modified`.
    async fn update_user(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: UserPatch,
    ) -> Result<User, ApiError>;
    /// Deletes a user and their memberships; fires `on_membership_deleted`
    /// for each, then `on_user_deleted`.
    async fn delete_user(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError>;

    /// Creates a space; fires `on_space_created`.
    async fn create_space(&self, ctx: &HookContext, new: NewSpace) -> Result<Space, ApiError>;
    /// One space.
    async fn get_space(&self, ctx: &HookContext, id: i64) -> Result<Space, ApiError>;
    /// A page of the spaces, by id ([`Page::all`] for every one).
    async fn list_spaces(&self, ctx: &HookContext, page: Page) -> Result<Vec<Space>, ApiError>;
    /// The spaces directly inside space `parent_id`, by id.
    async fn sub_spaces(&self, ctx: &HookContext, parent_id: i64) -> Result<Vec<Space>, ApiError>;
    /// Changes a space; fires `on_space_modified`.
    async fn update_space(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: SpacePatch,
    ) -> Result<Space, ApiError>;
    /// Deletes a space with its sub-spaces and memberships, firing every
    /// deletion's hook (memberships, then the space, deepest first).
    async fn delete_space(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError>;

    /// Sets a user's role in a space. Returns the membership and whether it
    /// was created (`on_membership_created`) rather than changed
    /// (`on_membership_modified`; nothing fires if the role is the same).
    async fn put_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<(Membership, bool), ApiError>;
    /// A page of a space's memberships, by user id.
    async fn list_members(
        &self,
        ctx: &HookContext,
        space_id: i64,
        page: Page,
    ) -> Result<Vec<Membership>, ApiError>;
    /// A user's memberships, by space id.
    async fn memberships_of(
        &self,
        ctx: &HookContext,
        user_id: i64,
    ) -> Result<Vec<Membership>, ApiError>;
    /// One membership, if it exists.
    async fn get_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<Option<Membership>, ApiError>;
    /// Removes a membership; fires `on_membership_deleted`.
    async fn delete_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<(), ApiError>;
}
