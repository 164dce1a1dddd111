//! The database: SQLite (embedded default) or PostgreSQL, through sqlx's
//! `Any` driver, with the embedded migrations of the matching dialect.

use std::sync::Arc;

use anyhow::Context;
use hookspecs::{ApiError, UnitOfWork};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Which SQL dialect the URL speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
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

/// The connection pool.
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) pool: AnyPool,
    dialect: Dialect,
}

impl Db {
    /// Connects (creating the SQLite file if needed) and runs the
    /// migrations. On PostgreSQL the migrator holds an advisory lock, so
    /// several instances starting at once do not race.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 10 })
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
        migrator.run(&pool).await.context("running migrations")?;
        Ok(Db { pool, dialect })
    }

    /// Starts a unit of work (a transaction). On SQLite, one that will
    /// write takes the write lock up front (`BEGIN IMMEDIATE`): a deferred
    /// transaction that reads, then writes after another writer committed,
    /// fails at once with SQLITE_BUSY instead of waiting its turn.
    pub async fn begin(&self, writes: bool) -> Result<Arc<UnitOfWork>, ApiError> {
        let tx = match (self.dialect, writes) {
            (Dialect::Sqlite, true) => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _ => self.pool.begin().await?,
        };
        Ok(Arc::new(UnitOfWork::new(tx)))
    }

    /// Closes the pool (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
