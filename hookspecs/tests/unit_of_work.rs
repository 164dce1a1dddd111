//! The unit of work: begun on first use, and writers taking turns.

use std::sync::Arc;

use futures::FutureExt;
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
