//! How the worker's database work runs: its bookkeeping in units of work
//! of its own, its single statements (a claim; a settle on PostgreSQL) on
//! their own, each run again at once when it loses a race, as its attempts
//! are.

use futures::future::BoxFuture;
use hookspecs::{ApiError, HookContext};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::state::State;

/// How many times a unit of work of the worker (its bookkeeping, or an
/// attempt's) that lost a race is run.
const RACE_RUNS: u32 = 10;

/// Runs `run` (one whole unit of work: begun, worked and ended) again at
/// once while it loses a race, up to [`RACE_RUNS`] times: a race passes
/// once the colliding transaction ends, so waiting (for a lease to end, a
/// retry's backoff) would only delay the work. The worker's bookkeeping,
/// claims, settles and attempts go through here (its look, a plain read,
/// need not).
pub(super) async fn again_after_race<T, Fut>(run: impl Fn() -> Fut) -> Result<T, ApiError>
where
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut runs = 1;
    loop {
        match run().await {
            Err(error) if error.is_race() && runs < RACE_RUNS => runs += 1,
            outcome => return outcome,
        }
    }
}

/// Runs `work` in a unit of work of the worker's own bookkeeping (row
/// locks, see `Db::begin_bookkeeping`; SQLite: in the app's writers'
/// queue), committing on success; one that loses a race (a deadlock between
/// two instances' claims, say) is run again at once
/// ([`again_after_race`]): never left for a lease to end.
pub(super) async fn bookkeeping<T, F, Fut>(state: &State, work: F) -> Result<T, ApiError>
where
    F: Fn(HookContext) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let work = &work;
    again_after_race(move || async move {
        let uow = state.db.begin_bookkeeping();
        uow.finish(work(state.app_context(uow.clone())).await).await
    })
    .await
}

/// Runs one statement on its own, outside a unit of work (PostgreSQL: its
/// own transaction, at READ COMMITTED, which the write pool's connections
/// set as they connect, see `Db::open_with`):
/// on a live connection ([`hookspecs::host::live`]: one found dead is
/// replaced and the statement sent again, so it must be safe to run
/// twice), and again at once after a lost race ([`again_after_race`]).
pub(super) async fn alone<T, F>(state: &State, statement: F) -> Result<T, ApiError>
where
    F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
{
    let statement = &statement;
    again_after_race(|| async move {
        let (_, done) = hookspecs::host::live(&state.db.pool, statement).await?;
        Ok(done)
    })
    .await
}

/// [`bookkeeping`] of one statement, which `query` writes with its
/// parameters bound, afresh for each run.
pub(super) async fn bookkeeping_statement<'q>(
    state: &State,
    query: impl Fn() -> Query<'q, Any, AnyArguments<'q>>,
) -> Result<(), ApiError> {
    let query = &query;
    bookkeeping(state, |ctx| async move {
        query().execute(&mut *ctx.db().await?).await?;
        Ok(())
    })
    .await
}
