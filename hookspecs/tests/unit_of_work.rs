//! The unit of work: begun on first use, and writers taking turns.

use std::sync::Arc;

use futures::FutureExt;
use hookspecs::ApiError;
use hookspecs::host::UnitOfWork;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

fn lazy_pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(4)
        .connect_lazy(url)
        .expect("a lazy pool")
}

#[tokio::test]
async fn a_unit_of_work_never_used_opens_no_connection() {
    // The database cannot even be opened: only using the unit of work finds out.
    let pool = lazy_pool("sqlite:///nonexistent-dir/for/sure/app.db");
    let unused = UnitOfWork::new(pool.clone(), None);
    unused.commit().await.expect("nothing to commit");
    let used = UnitOfWork::new(pool, None);
    assert!(
        used.db().await.is_err(),
        "beginning must fail on this database"
    );
}

#[tokio::test]
async fn a_unit_of_work_ends_once() {
    let dir = tempfile::tempdir().unwrap();
    let pool = lazy_pool(&format!(
        "sqlite://{}/app.db?mode=rwc",
        dir.path().display()
    ));
    let uow = UnitOfWork::new(pool, None);
    sqlx::query("SELECT 1")
        .execute(&mut *uow.db().await.unwrap())
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let again = uow.commit().await.unwrap_err();
    assert!(again.message.contains("already ended"), "{again:?}");
    assert!(uow.db().await.is_err(), "no use after the end");
}

#[tokio::test]
async fn writers_take_turns_and_the_next_starts_when_the_first_ends() {
    let dir = tempfile::tempdir().unwrap();
    let pool = lazy_pool(&format!(
        "sqlite://{}/app.db?mode=rwc",
        dir.path().display()
    ));
    sqlx::query("CREATE TABLE t (v INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    let writers = Arc::new(tokio::sync::Mutex::new(()));
    let begin = Some("BEGIN IMMEDIATE");
    let first = UnitOfWork::new(pool.clone(), begin).one_writer_at_a_time(writers.clone());
    let second = UnitOfWork::new(pool.clone(), begin).one_writer_at_a_time(writers.clone());

    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut *first.db().await.unwrap())
        .await
        .unwrap();
    let mut waiting = Box::pin(second.db());
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "the second writer must wait for the first to end"
    );
    first.commit().await.unwrap();
    let mut conn = waiting
        .await
        .expect("its turn came when the first committed");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(seen, 1, "the second writer sees the first one's row");
    drop(conn);
    second.rollback().await.unwrap();
    // A unit of work that rolled back also gave its turn back.
    let third = UnitOfWork::new(pool, begin).one_writer_at_a_time(writers);
    third.db().await.expect("the turn is free again");
}

/// Counts the PostgreSQL notices sqlx logs (`sqlx::postgres::notice`).
struct Notices(&'static std::sync::atomic::AtomicUsize);

impl tracing::Subscriber for Notices {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target().starts_with("sqlx::postgres::notice")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// PostgreSQL ends a transaction whose `COMMIT` fails (here a
/// serialization failure found at commit): nothing may roll it back again,
/// which would only draw "there is no transaction in progress".
#[tokio::test]
async fn a_commit_refused_by_postgresql_sends_no_rollback_after_it() {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    static NOTICES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    tracing::subscriber::set_global_default(Notices(&NOTICES)).expect("the only subscriber");
    let pool = lazy_pool(&url);
    let table = format!("uow_skew_{}", std::process::id());
    let create = format!("CREATE TABLE {table} (v BIGINT)");
    sqlx::query(&create).execute(&pool).await.unwrap();
    let begin = Some("BEGIN ISOLATION LEVEL SERIALIZABLE");
    let (first, second) = (
        UnitOfWork::new(pool.clone(), begin),
        UnitOfWork::new(pool.clone(), begin),
    );
    // Write skew: each reads what the other writes.
    let count = format!("SELECT COUNT(*) FROM {table}");
    let insert = format!("INSERT INTO {table} VALUES (1)");
    for uow in [&first, &second] {
        sqlx::query(&count)
            .execute(&mut *uow.db().await.unwrap())
            .await
            .unwrap();
    }
    for uow in [&first, &second] {
        sqlx::query(&insert)
            .execute(&mut *uow.db().await.unwrap())
            .await
            .unwrap();
    }
    first.commit().await.expect("the first committer wins");
    let refused = second.commit().await.expect_err("the second must fail");
    assert!(refused.is_race(), "{refused:?}");
    // Every connection used again (the pool has 4): one of them is the
    // refused one, which must be out of its transaction (a BEGIN inside one
    // would warn) and owe nothing (a ROLLBACK would warn).
    let mut conns = Vec::new();
    for _ in 0..4 {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql("BEGIN; ROLLBACK")
            .execute(&mut *conn)
            .await
            .unwrap();
        conns.push(conn);
    }
    drop(conns);
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(NOTICES.load(std::sync::atomic::Ordering::SeqCst), 0);
}

const PID: &str = "SELECT CAST(pg_backend_pid() AS BIGINT)";

/// A pool of two PostgreSQL connections (not pinged before use), both
/// ended by the server while idle in it, and their backends' ids; `None`
/// without `TEST_DATABASE_URL`.
async fn pool_of_dead_connections() -> Option<(AnyPool, Vec<i64>)> {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return None;
    };
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .test_before_acquire(false)
        .connect(&url)
        .await
        .unwrap();
    let mut conns = Vec::new();
    let mut dead = Vec::new();
    for _ in 0..2 {
        let mut conn = pool.acquire().await.unwrap();
        dead.push(sqlx::query_scalar(PID).fetch_one(&mut *conn).await.unwrap());
        conns.push(conn);
    }
    drop(conns);
    // Back in the pool (returned by a task of sqlx's), idle, before they
    // are ended: else the test could meet no dead connection.
    for tick in 0.. {
        assert!(tick < 500, "the connections did not return to the pool");
        if pool.num_idle() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let admin = lazy_pool(&url);
    for id in &dead {
        sqlx::query("SELECT CAST(pg_terminate_backend(CAST($1 AS INTEGER)) AS TEXT)")
            .bind(id)
            .execute(&admin)
            .await
            .unwrap();
    }
    // Gone once the server no longer lists them (polled, up to 5 s).
    for tick in 0.. {
        assert!(tick < 500, "the terminated backends are still listed");
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ANY(CAST($1 AS INTEGER[]))",
        )
        .bind(format!("{{{}, {}}}", dead[0], dead[1]))
        .fetch_one(&admin)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(pool.size(), 2, "the dead connections are still in the pool");
    Some((pool, dead))
}

/// A pooled connection that died while idle (here: its backend ended by
/// the server) is found by the next unit of work's `BEGIN`, which takes
/// another: the pool need not ping each connection before handing it out.
#[tokio::test]
async fn a_connection_that_died_in_the_pool_is_replaced_at_begin() {
    let Some((pool, dead)) = pool_of_dead_connections().await else {
        return;
    };
    for _ in 0..3 {
        let uow = UnitOfWork::new(pool.clone(), Some("BEGIN ISOLATION LEVEL SERIALIZABLE"));
        let id: i64 = sqlx::query_scalar(PID)
            .fetch_one(
                &mut *uow
                    .db()
                    .await
                    .expect("a live connection in place of a dead one"),
            )
            .await
            .unwrap();
        assert!(!dead.contains(&id), "a fresh connection");
        uow.commit().await.unwrap();
    }
}

/// The same for work outside a unit of work (the delivery worker's look
/// at its cursor, a plugin's migration): `live` runs its first statement
/// again on another connection.
#[tokio::test]
async fn a_statement_outside_a_unit_of_work_finds_a_live_connection() {
    let Some((pool, dead)) = pool_of_dead_connections().await else {
        return;
    };
    for _ in 0..3 {
        let (_, id): (_, i64) = hookspecs::host::live(&pool, |conn| {
            sqlx::query_scalar(PID).fetch_one(conn).boxed()
        })
        .await
        .expect("a live connection in place of a dead one");
        assert!(!dead.contains(&id), "a fresh connection");
    }
}

#[tokio::test]
async fn a_unit_of_work_never_begun_ends_at_once_and_a_begun_one_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let pool = lazy_pool(&format!(
        "sqlite://{}/app.db?mode=rwc",
        dir.path().display()
    ));
    let unused = UnitOfWork::new(pool.clone(), None);
    assert!(unused.end_unused(), "never begun: ended on the spot");
    assert!(!unused.end_unused(), "ended once");
    let later = unused.db().await.err().expect("no use after the end");
    assert!(later.message.contains("already ended"), "{later:?}");
    let used = UnitOfWork::new(pool, None);
    sqlx::query("SELECT 1")
        .execute(&mut *used.db().await.unwrap())
        .await
        .unwrap();
    assert!(!used.end_unused(), "begun: left to finish");
    used.finish(Ok(())).await.expect("committed");
    assert!(used.db().await.is_err(), "no use after the end");
}

/// A unit of work marked failed never commits, whatever its caller
/// answers, begun or not; a race it was failed with stays the answer, so
/// that the operation is run again, even if the caller answered otherwise.
#[tokio::test]
async fn a_unit_of_work_marked_failed_never_commits_and_a_race_stays_one() {
    let dir = tempfile::tempdir().unwrap();
    let pool = lazy_pool(&format!(
        "sqlite://{}/app.db?mode=rwc",
        dir.path().display()
    ));
    sqlx::query("CREATE TABLE t (v INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    let vetoed = ApiError::new(409, "conflict", "a hook refused it");
    let unused = UnitOfWork::new(pool.clone(), None);
    unused.fail(&vetoed);
    assert!(!unused.end_unused(), "failed: left to finish");
    let answer = unused.finish(Ok(())).await.unwrap_err();
    assert_eq!(
        (answer.status, answer.message.as_str()),
        (409, "a hook refused it")
    );

    let written = UnitOfWork::new(pool.clone(), None);
    let insert = sqlx::query("INSERT INTO t (v) VALUES (1)");
    insert
        .execute(&mut *written.db().await.unwrap())
        .await
        .unwrap();
    written.fail(&vetoed);
    written.fail(&ApiError::internal("a later one"));
    let answer = written.finish(Ok(())).await.unwrap_err();
    assert_eq!(
        answer.message, "a hook refused it",
        "the first failure is the answer"
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "rolled back");

    let raced = UnitOfWork::new(pool, None);
    raced.fail(&ApiError::race("lost a race"));
    let answer = raced
        .finish::<()>(Err(ApiError::new(409, "conflict", "the caller's own")))
        .await
        .unwrap_err();
    assert!(answer.is_race(), "{answer:?}");
}
