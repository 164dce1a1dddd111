//! The database: SQLite (embedded default) or PostgreSQL, through sqlx's
//! `Any` driver, with the embedded migrations of the matching dialect.

use std::sync::Arc;

use anyhow::Context;
use hookspecs::Migration;
use hookspecs::host::UnitOfWork;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// PostgreSQL: the write pool's connections' isolation outside a unit of
/// work (see [`Db::open_with`]).
const READ_COMMITTED: &str =
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// Which SQL dialect the URL speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// The database's name, for messages.
    fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
        }
    }

    /// How a read's transaction begins: deferred on SQLite (the first read
    /// takes the snapshot, the first write the lock), SERIALIZABLE on
    /// PostgreSQL as every operation's.
    fn read_begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }

    /// A pool of at most `size` connections, pinged before each use
    /// (sqlx's default) if `ping` and on PostgreSQL. SQLite's never are:
    /// an embedded database has no connection to lose, and the ping was a
    /// round trip to the connection's thread. PostgreSQL's writing
    /// connections are not either: a unit of work's `BEGIN` finds a dead
    /// one, and takes another (`UnitOfWork::db`), a round trip less per
    /// write; work outside a unit of work does the same through
    /// `hookspecs::host::live`.
    fn pool(self, size: u32, ping: bool) -> AnyPoolOptions {
        AnyPoolOptions::new()
            .max_connections(size)
            .test_before_acquire(ping && self == Dialect::Postgres)
    }

    fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Dialect::Postgres)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:, not {url:?}")
        }
    }
}

/// The `[database]` table of the config file: how an operation that lost a
/// race with a concurrent one (PostgreSQL's serialization failures and
/// deadlocks) is run again, and how many write at once.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Runs of one operation at most; then 503 with `Retry-After`.
    pub max_attempts: u32,
    /// The first wait between two runs, in milliseconds; it doubles each
    /// time up to 32 times this, and each wait is drawn at random below it
    /// (jitter), so that the operations that collided do not collide again.
    pub backoff_ms: u64,
    /// PostgreSQL: how many units of work of this instance that write (its
    /// operations, its deliveries' bookkeeping) run at once, at most: the
    /// size of its pool of writing connections. The others wait for a
    /// connection before their transaction begins, so their snapshot is
    /// taken after the wait and what they waited for cannot make them
    /// collide. Serializable writers that meet on the same rows collide
    /// more the more of them run at once: with three instances, 3 each
    /// measured better than 10 (BENCHMARKS.md, "Fourth session").
    /// `None`: 10.
    pub writers: Option<u32>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 20,
            backoff_ms: 5,
            writers: None,
        }
    }
}

impl Retry {
    /// The wait before run `attempt` + 1 (the first run is attempt 1).
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let ceiling = self.backoff_ms.saturating_mul(1 << attempt.min(5)).max(1);
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        std::time::Duration::from_millis(u64::from_le_bytes(bytes) % ceiling + 1)
    }
}

/// How often operations were run again, and how often they gave up: what
/// the admin report shows.
#[derive(Debug, Default)]
pub struct RetryStats {
    /// Runs after a lost race.
    pub retried: std::sync::atomic::AtomicU64,
    /// Operations that lost every run and answered 503.
    pub gave_up: std::sync::atomic::AtomicU64,
}

/// The connection pools: one for writes and the app's own work, one for
/// reads (see [`Db::begin`]).
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) pool: AnyPool,
    /// Connections that wait inside a begun transaction ([`Dialect::read_begin`]).
    reads: AnyPool,
    dialect: Dialect,
    /// SQLite's writers, one at a time (see `UnitOfWork::one_writer_at_a_time`).
    writers: Arc<tokio::sync::Mutex<()>>,
}

impl Db {
    /// Connects (creating the SQLite file if needed) and runs the
    /// migrations. On PostgreSQL the migrator holds an advisory lock, so
    /// several instances starting at once do not race.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        Db::open_with(url, None).await
    }

    /// [`Db::open`], with at most `writers` connections for writing on
    /// PostgreSQL (`[database] writers`, see [`Retry::writers`]; `None`:
    /// 10).
    pub async fn open_with(url: &str, writers: Option<u32>) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(url)?;
        let size = if dialect == Dialect::Sqlite { 4 } else { 10 };
        // SQLite's writers queue one at a time anyway (`writers` below).
        let writers = match (dialect, writers) {
            (Dialect::Postgres, Some(n)) => n.max(1),
            _ => size,
        };
        // What runs on these connections outside a unit of work (the
        // delivery worker's claims and settles, each one statement, and
        // its look) is written for READ COMMITTED (a row lock that follows
        // a row's newest version; no serialization failures between two
        // instances' claims), whatever the server's or the database's
        // default; units of work state their own level as they begin.
        let pool = dialect
            .pool(writers, false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Postgres {
                        sqlx::Executor::execute(conn, READ_COMMITTED).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .with_context(|| format!("connecting to {}", redact(url)))?;
        if dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE,
            Dialect::Postgres => &POSTGRES,
        };
        let mut conn = pool.acquire().await?;
        if dialect == Dialect::Postgres {
            // `CREATE TABLE IF NOT EXISTS` of the migrations' own table
            // notices on every start that it exists: news to nobody.
            sqlx::raw_sql("SET client_min_messages = warning")
                .execute(&mut *conn)
                .await?;
        }
        let migrated = migrator.run(&mut conn).await.context("running migrations");
        if dialect == Dialect::Postgres {
            sqlx::raw_sql("RESET client_min_messages")
                .execute(&mut *conn)
                .await?;
        }
        migrated?;
        drop(conn);
        match dialect {
            Dialect::Sqlite => {
                let file = url.trim_start_matches("sqlite://").split('?').next();
                tracing::info!("database: SQLite, {}", file.unwrap_or_default());
            }
            Dialect::Postgres => tracing::info!("database: PostgreSQL, {}", redact(url)),
        }
        let begin = dialect.read_begin();
        // A read's first statement is its handler's: a dead connection is
        // found by the ping, not by a `BEGIN`.
        let reads = dialect
            .pool(size, true)
            .after_connect(move |conn, _| {
                Box::pin(async move { sqlx::Executor::execute(conn, begin).await.map(drop) })
            })
            .connect_lazy(url)?;
        Ok(Db {
            pool,
            reads,
            dialect,
            writers: Arc::default(),
        })
    }

    /// The SQL dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts a unit of work, whose transaction begins when first used.
    ///
    /// PostgreSQL: every unit of work is SERIALIZABLE, so that whatever
    /// invariant a plugin keeps through the services (autoinvite's "every
    /// user is in every open space", parent_access's "a member of a space is
    /// a member of its parent") holds under any concurrency, on one instance
    /// or many; the price is that an operation may fail with a
    /// serialization failure and be run again from the start (see
    /// `http::pipeline`).
    ///
    /// SQLite: one that will write takes the write lock as it begins
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads, then writes
    /// after another writer committed, fails at once with SQLITE_BUSY
    /// instead of waiting its turn. Writers also queue in the app for their
    /// turn, which measured fairer and faster than SQLite's busy handler
    /// (BENCHMARKS.md, "Writes"). One writer at a time is serializable too.
    ///
    /// A read (`writes == false`: a GET, recognising a credential) runs on
    /// the read pool, whose connections wait inside a transaction already
    /// begun ([`UnitOfWork::resuming`]): it pays no `BEGIN`, and its end is
    /// one round trip, as a lone statement's would be, while every statement
    /// it runs still sees the snapshot its first one took, and whatever it
    /// writes (a GET handler may) still commits or rolls back whole.
    pub fn begin(&self, writes: bool) -> Arc<UnitOfWork> {
        Arc::new(match (self.dialect, writes) {
            (_, false) => UnitOfWork::resuming(self.reads.clone(), self.dialect.read_begin()),
            (Dialect::Sqlite, true) => UnitOfWork::new(self.pool.clone(), Some("BEGIN IMMEDIATE"))
                .one_writer_at_a_time(self.writers.clone()),
            (Dialect::Postgres, true) => UnitOfWork::new(
                self.pool.clone(),
                Some("BEGIN ISOLATION LEVEL SERIALIZABLE"),
            ),
        })
    }

    /// Starts a unit of work for the delivery worker's own bookkeeping of
    /// several statements (placing, releasing and pruning cursors; on
    /// SQLite, settling a batch: its claims, and its settles on PostgreSQL,
    /// are single statements of their own). PostgreSQL: READ COMMITTED, so
    /// that a concurrent claim or settle waits for the rows it changes (or
    /// skips them) rather than failing at commit as SERIALIZABLE would.
    /// SQLite: a writer like any other.
    pub fn begin_bookkeeping(&self) -> Arc<UnitOfWork> {
        match self.dialect {
            Dialect::Sqlite => self.begin(true),
            Dialect::Postgres => Arc::new(UnitOfWork::new(
                self.pool.clone(),
                Some("BEGIN ISOLATION LEVEL READ COMMITTED"),
            )),
        }
    }

    /// Applies plugin `plugin`'s migrations not applied yet, in version
    /// order, in one transaction, recording them in
    /// `plugin_<plugin>_migrations`. Several instances starting at once wait
    /// for each other (SQLite's write lock; an advisory lock on PostgreSQL).
    /// Returns how many were applied.
    pub async fn migrate_plugin(
        &self,
        plugin: &str,
        migrations: &[Migration],
        others: &[&str],
    ) -> Result<usize, String> {
        if migrations.is_empty() {
            return Ok(0);
        }
        let prefix = format!("plugin_{plugin}_");
        if !hookspecs::sql::is_plain_name(&prefix) {
            return Err(format!(
                "`{plugin}` cannot own tables: use lowercase letters, digits and `_`"
            ));
        }
        let history = format!("{prefix}migrations");
        // The database's own message (SQL, constraint names) goes to the
        // log only: the reason reaches the admin API's answers.
        let fail = |e: sqlx::Error| {
            tracing::error!("plugin {plugin}: migrating its tables failed: {e}");
            "migrating its tables failed (the app's log has the database's message)".to_owned()
        };
        let mut live;
        let mut tx = match self.dialect {
            Dialect::Sqlite => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(fail)?,
            // A dead connection from the pool is replaced (a ping per
            // migration: they run at load and at reload only).
            Dialect::Postgres => {
                (live, ()) = hookspecs::host::live(&self.pool, sqlx::Connection::ping)
                    .await
                    .map_err(fail)?;
                sqlx::Acquire::begin(&mut live).await.map_err(fail)?
            }
        };
        if self.dialect == Dialect::Postgres {
            // As for the app's migrations: no notice that the history table
            // exists, on every start.
            sqlx::raw_sql("SET LOCAL client_min_messages = warning")
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::TEXT")
                .bind(&history)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {history} \
             (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        );
        sqlx::query(&create).execute(&mut *tx).await.map_err(fail)?;
        let applied: Vec<i64> = sqlx::query_scalar(&format!("SELECT version FROM {history}"))
            .fetch_all(&mut *tx)
            .await
            .map_err(fail)?;
        let mut pending: Vec<&Migration> = migrations
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .collect();
        pending.sort_by_key(|m| m.version);
        for m in &pending {
            let sql = match self.dialect {
                Dialect::Sqlite => m.sqlite,
                Dialect::Postgres => m.postgres,
            };
            if sql.trim().is_empty() {
                return Err(format!(
                    "migration {} ({}) has no {} text: a plugin ships each migration for both \
                     databases (`SELECT 1` for one with nothing to do on this one)",
                    m.version,
                    m.name,
                    self.dialect.name()
                ));
            }
            if let Some(why) = foreign_table(sql, plugin, others) {
                return Err(format!("migration {} creates table {why}", m.version));
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(|e| {
                let failed = format!("migration {} ({}) failed", m.version, m.name);
                tracing::error!("plugin {plugin}: {failed}: {e}");
                format!("{failed} (the app's log has the database's message)")
            })?;
            sqlx::query(&format!(
                "INSERT INTO {history} (version, name, applied_at) VALUES ($1, $2, $3)"
            ))
            .bind(m.version)
            .bind(m.name)
            .bind(hookspecs::now())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        Ok(pending.len())
    }

    /// Closes the pools (at shutdown).
    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }
}

/// The first table `sql` makes whose name is not `plugin`'s own, if any,
/// and why: a name without `plugin_<plugin>_`, or one within another
/// plugin's tables (`plugin_audit_log_*` is `audit_log`'s, though it
/// begins with `audit`'s `plugin_audit_`; `others`: the other plugins'
/// names). A table is made by `CREATE [TEMP | TEMPORARY | VIRTUAL |
/// UNLOGGED | FOREIGN | ...] TABLE [IF NOT EXISTS] name` or `ALTER TABLE
/// ... RENAME TO name` (whose old name must be its own too), read as
/// tokens (a native plugin is trusted code: this catches a mistake, it is
/// not a sandbox).
fn foreign_table(sql: &str, plugin: &str, others: &[&str]) -> Option<String> {
    const MODIFIERS: [&str; 7] = [
        "temp",
        "temporary",
        "virtual",
        "unlogged",
        "foreign",
        "global",
        "local",
    ];
    let prefix = format!("plugin_{plugin}_");
    let words = words(sql);
    // The tables a statement starting at `i` makes: `CREATE ... TABLE`'s,
    // or `ALTER TABLE [IF EXISTS] [ONLY] a RENAME TO b`'s two (`a` becomes
    // a table of the name `b`, and `b` has `a`'s rows).
    let made_at = |i: usize| -> Option<Vec<&String>> {
        let mut rest = words[i + 1..].iter().peekable();
        match words[i].as_str() {
            "create" => {
                let mut rest = rest.skip_while(|w| MODIFIERS.contains(&w.as_str()));
                if rest.next()? != "table" {
                    return None;
                }
                match rest.next()? {
                    if_ if if_ == "if" => rest.nth(2).map(|name| vec![name]), // IF NOT EXISTS <name>
                    name => Some(vec![name]),
                }
            }
            "alter" => {
                if rest.next()? != "table" {
                    return None;
                }
                if rest.next_if(|w| *w == "if").is_some() {
                    rest.next_if(|w| *w == "exists")?;
                }
                rest.next_if(|w| *w == "only");
                let from = rest.next()?;
                (rest.next()? == "rename" && rest.next()? == "to").then_some(())?;
                Some(vec![from, rest.next()?])
            }
            _ => None,
        }
    };
    let made = (0..words.len()).filter_map(made_at).flatten();
    let mut why = made.filter_map(|name| {
        if !name.starts_with(&prefix) {
            return Some(format!("`{name}`; a plugin's tables are named `{prefix}*`"));
        }
        let owner = others.iter().find(|other| {
            other.starts_with(&prefix["plugin_".len()..])
                && name.starts_with(&format!("plugin_{other}_"))
        })?;
        Some(format!(
            "`{name}`, a table of the plugin `{owner}` (`plugin_{owner}_*`)"
        ))
    });
    why.next()
}

/// `sql`'s tokens, lowercased: words, and each quoted string or identifier
/// (`'...'`, `"..."`, `` `...` ``, `[...]`, a doubled quote inside standing
/// for one) as one token without its quotes (SQLite takes a string for a
/// table's name); comments (`--` to the line's end, `/* ... */`, taken as
/// not nesting: a nested one only shows more tokens) are left out.
fn words(sql: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let close = match c {
            '\'' | '"' | '`' => Some(c),
            '[' => Some(']'),
            _ => None,
        };
        if let Some(close) = close {
            words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
            while let Some(c) = chars.next() {
                if c == close && chars.next_if_eq(&close).is_none() {
                    break;
                }
                word.push(c);
            }
            words.push(std::mem::take(&mut word));
            continue;
        }
        match (c, chars.peek()) {
            ('-', Some('-')) => {
                chars.by_ref().find(|&c| c == '\n');
            }
            ('/', Some('*')) => {
                chars.next();
                let mut star = false;
                for c in chars.by_ref() {
                    if star && c == '/' {
                        break;
                    }
                    star = c == '*';
                }
            }
            (c, _) if c.is_whitespace() || "(),;".contains(c) => {}
            (c, _) => {
                word.push(c);
                continue;
            }
        }
        words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
    }
    words.extend((!word.is_empty()).then_some(word));
    words.iter().map(|w| w.to_ascii_lowercase()).collect()
}

/// A URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Fresh PostgreSQL databases for the crate's tests, on the server
/// `TEST_DATABASE_URL` names; where it is unset, none (said on stderr), and
/// the tests run on SQLite alone.
#[cfg(test)]
pub(crate) struct Scratch {
    /// The new database's URL.
    pub(crate) url: String,
    name: String,
    server: String,
}

#[cfg(test)]
impl Scratch {
    /// A new, empty database named `name` (one of that name left by an
    /// earlier run that stopped halfway is dropped first).
    pub(crate) async fn postgres(name: &str) -> Option<Scratch> {
        let Some(server) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("PostgreSQL skipped: TEST_DATABASE_URL is not set");
            return None;
        };
        Scratch::admin(
            &server,
            &[
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ],
        )
        .await;
        let (base, _) = server.rsplit_once('/').expect("a URL with a database");
        Some(Scratch {
            url: format!("{base}/{name}"),
            name: name.to_owned(),
            server,
        })
    }

    /// Runs `statements` on the server's own database.
    async fn admin(server: &str, statements: &[String]) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(server).await.unwrap();
        for sql in statements {
            sqlx::raw_sql(sql).execute(&mut admin).await.unwrap();
        }
    }

    /// `ALTER DATABASE` this one `SET` `setting` (it applies to later
    /// connections).
    pub(crate) async fn set(&self, setting: &str) {
        let sql = format!("ALTER DATABASE {} SET {setting}", self.name);
        Scratch::admin(&self.server, &[sql]).await;
    }

    /// Drops the database, closing whatever is still connected to it.
    pub(crate) async fn drop(self) {
        let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        Scratch::admin(&self.server, &[sql]).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_in_a_message_hides_its_password_only() {
        use super::redact;
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/app.db"), "sqlite://data/app.db");
    }

    /// PostgreSQL (when `TEST_DATABASE_URL` is set): on a database whose
    /// default is SERIALIZABLE, what runs outside a unit of work on the
    /// write pool (the delivery worker's claims and settles) is at READ
    /// COMMITTED, and units of work keep their own levels.
    #[tokio::test]
    async fn statements_outside_a_unit_of_work_run_at_read_committed_whatever_the_default() {
        let name = format!("db_isolation_{}", std::process::id());
        let Some(scratch) = super::Scratch::postgres(&name).await else {
            return;
        };
        scratch
            .set("default_transaction_isolation = 'serializable'")
            .await;
        let db = super::Db::open(&scratch.url).await.unwrap();
        let level = "SELECT current_setting('transaction_isolation')";
        let alone: String = sqlx::query_scalar(level).fetch_one(&db.pool).await.unwrap();
        assert_eq!(alone, "read committed");
        for (uow, expected) in [
            (db.begin(true), "serializable"),
            (db.begin(false), "serializable"),
            (db.begin_bookkeeping(), "read committed"),
        ] {
            let got: String = sqlx::query_scalar(level)
                .fetch_one(&mut *uow.db().await.unwrap())
                .await
                .unwrap();
            assert_eq!(got, expected);
            uow.finish(Ok(())).await.unwrap();
        }
        db.close().await;
        scratch.drop().await;
    }

    #[tokio::test]
    async fn a_read_finds_its_transaction_begun_and_leaves_the_next_one_begun() {
        let db = super::Db::open("sqlite:file:db_reads?mode=memory&cache=shared")
            .await
            .unwrap();
        for outcome in [Ok(()), Err(hookspecs::ApiError::conflict("no")), Ok(())] {
            let uow = db.begin(false);
            // No BEGIN was sent: the connection is inside one already.
            let again = sqlx::query("BEGIN")
                .execute(&mut *uow.db().await.unwrap())
                .await;
            assert!(again.is_err(), "a read's connection waits in a transaction");
            let ended = outcome.is_ok();
            assert_eq!(uow.finish(outcome).await.is_ok(), ended);
        }
    }

    #[tokio::test]
    async fn a_read_cancelled_as_it_ends_gives_back_no_connection_outside_a_transaction() {
        use futures::FutureExt;
        let db = super::Db::open("sqlite:file:db_cancelled?mode=memory&cache=shared")
            .await
            .unwrap();
        for _ in 0..8 {
            let uow = db.begin(false);
            sqlx::query("SELECT 1")
                .execute(&mut *uow.db().await.unwrap())
                .await
                .unwrap();
            // Its end sent, then (unless already done) dropped, as when the
            // client goes away: it may have committed without beginning again.
            let _ = uow.commit().now_or_never();
        }
        for _ in 0..8 {
            let uow = db.begin(false);
            let again = sqlx::query("BEGIN")
                .execute(&mut *uow.db().await.unwrap())
                .await;
            assert!(
                again.is_err(),
                "every read's connection waits in a transaction"
            );
            uow.finish(Ok(())).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_migration_the_database_refuses_is_reported_without_its_message() {
        // A file: an in-memory database's shared cache locks its schema
        // against the read below while the pools' connections are open.
        let dir = std::env::temp_dir().join(format!("db-migrate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("app.db").display());
        let db = super::Db::open(&url).await.unwrap();
        let twice = "CREATE TABLE plugin_p_t (a INTEGER); CREATE TABLE plugin_p_t (a INTEGER);";
        let migrations = [hookspecs::Migration {
            version: 1,
            name: "t",
            sqlite: twice,
            postgres: twice,
        }];
        let why = db.migrate_plugin("p", &migrations, &[]).await.unwrap_err();
        assert_eq!(
            why,
            "migration 1 (t) failed (the app's log has the database's message)"
        );
        let tables = sqlx::query("SELECT name FROM sqlite_master WHERE name LIKE 'plugin_p_%'")
            .fetch_all(&db.pool)
            .await
            .unwrap();
        assert!(tables.is_empty(), "nothing of it stays");
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    use super::foreign_table;

    #[test]
    fn a_plugin_migration_may_only_create_its_own_tables() {
        let own = "CREATE TABLE plugin_audit_log_entries (id INTEGER);\n\
                   CREATE TABLE IF NOT EXISTS \"plugin_audit_log_more\"(x TEXT);\n\
                   ALTER TABLE plugin_audit_log_more RENAME TO plugin_audit_log_most;\n\
                   ALTER TABLE plugin_audit_log_most RENAME x TO y";
        assert_eq!(foreign_table(own, "audit_log", &["audit"]), None);
        let not_own = |table: &str| format!("`{table}`; a plugin's tables are named `plugin_a_*`");
        let foreign = "create table plugin_a_ok (x TEXT); CREATE TABLE users2 (x TEXT)";
        assert_eq!(foreign_table(foreign, "a", &[]), Some(not_own("users2")));
        let guarded = "CREATE TABLE IF NOT EXISTS users (x TEXT)";
        assert_eq!(foreign_table(guarded, "a", &[]), Some(not_own("users")));
        // In other words: a modifier, a comment for a space, a comment or a
        // string that hides nothing, one that does not hide what follows, a
        // name quoted in any of the ways SQLite takes, a rename.
        for (sql, table) in [
            (
                "CREATE VIRTUAL TABLE users_search USING fts5(body)",
                "users_search",
            ),
            ("CREATE/**/TABLE users_archive (x TEXT)", "users_archive"),
            ("create temporary table if not exists t (x)", "t"),
            ("CREATE -- a note\n TABLE\n\"Users\" (x TEXT)", "users"),
            (
                "INSERT INTO plugin_a_x VALUES ('/*'); CREATE TABLE users (x)",
                "users",
            ),
            ("CREATE TABLE 'users' (plugin_a_id INT)", "users"),
            ("CREATE TABLE [Users](x)", "users"),
            (
                "CREATE TABLE \"plugin_a_o'clock\" (x); CREATE TABLE users (y)",
                "users",
            ),
            (
                "CREATE FOREIGN TABLE users_remote (x INT) SERVER s",
                "users_remote",
            ),
            (
                "CREATE TABLE plugin_a_t (x); ALTER TABLE plugin_a_t RENAME TO users_archive",
                "users_archive",
            ),
            (
                "ALTER TABLE IF EXISTS ONLY users RENAME TO plugin_a_users",
                "users",
            ),
        ] {
            assert_eq!(foreign_table(sql, "a", &[]), Some(not_own(table)), "{sql}");
        }
        for sql in [
            "-- CREATE TABLE users (x)\nCREATE TABLE plugin_a_x (x)",
            "INSERT INTO plugin_a_x VALUES ('create table users')",
            "INSERT INTO plugin_a_x VALUES ('it''s; create table users')",
            "CREATE TABLE \"plugin_a_a b\" (x)",
            "CREATE INDEX plugin_a_i ON plugin_a_x (v); /* create table users */",
            "ALTER INDEX plugin_a_i RENAME TO i_by_v",
            "ALTER TABLE plugin_a_x RENAME COLUMN rename TO x",
            "INSERT INTO plugin_a_x VALUES ('rename'), ('to'), ('x')",
        ] {
            assert_eq!(foreign_table(sql, "a", &[]), None, "{sql}");
        }
        // `audit`'s prefix covers `audit_log`'s tables: not its own.
        let theirs = "CREATE TABLE plugin_audit_log_entries (x)";
        assert_eq!(
            foreign_table(theirs, "audit", &["audit_log", "notes"]),
            Some("`plugin_audit_log_entries`, a table of the plugin `audit_log` (`plugin_audit_log_*`)".into())
        );
        assert_eq!(foreign_table(theirs, "audit", &["notes"]), None);
    }
}
