//! The async driver of the call loop (feature `async`): [`Chain`]'s rules
//! from the parent module, walked with `.await`, each implementation polled
//! under `catch_unwind` and within the hook's time limit (Tokio's timer).
//! How each step maps to the sync driver's, and why, is said once, in the
//! parent module ("The two drivers, side by side").

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, Either, join_all};
use tracing::Instrument;

use super::{
    CallCtx, Caught, Chain, NO_NEXT, Outcomes, Slots, begin, call_span_if_listened, end, holds_one,
    impl_span, record, settle,
};
use crate::depth;
use crate::error::{HookError, HookResult, TimeLimit};
use crate::hookspec::HookSpec;
use crate::panics;
use crate::registry::{HookImpl, HookImpls, Snapshot};
use crate::result::{Answer, Collect, Finish};

/// The rest of an async hook's chain, handed to a wrapper: `next.await`
/// runs it (inner wrappers, then the plain implementations) once. A wrapper
/// that drops it without awaiting short-circuits everything after it.
///
/// ```
/// use hookery::prelude::*;
///
/// #[hookspec]
/// pub trait Events {
///     async fn saved(&self, id: u32) -> HookResult<u32>;
/// }
///
/// struct Store;
/// #[hookimpl]
/// impl Events for Store {
///     async fn saved(&self, id: u32) -> HookResult<u32> {
///         Ok(id)
///     }
/// }
///
/// /// Retries the rest of the chain? No: `next` runs once. It adds instead.
/// struct Audit;
/// #[hookimpl]
/// impl Events for Audit {
///     #[hookimpl(wrapper)]
///     async fn saved(&self, id: u32, next: AsyncNext<'_, Results<u32>>) -> HookResult<Results<u32>> {
///         let mut results = next.await?;
///         results.push("audit", id * 100);
///         Ok(results)
///     }
/// }
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("store", Store)?;
/// pm.register("audit", Audit)?;
/// let results = futures::executor::block_on(pm.hook().saved(2))?;
/// assert_eq!(results.into_values(), [2, 200]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncNext<'s, O> {
    chain: Arc<dyn AsyncRest<'s, O> + 's>,
    index: usize,
}

impl<'s, O: Send + 's> IntoFuture for AsyncNext<'s, O> {
    type Output = Result<O, HookError>;
    type IntoFuture = BoxFuture<'s, Result<O, HookError>>;
    fn into_future(self) -> Self::IntoFuture {
        self.chain.run_rest(self.index)
    }
}

trait AsyncRest<'s, O>: Send + Sync {
    fn run_rest(self: Arc<Self>, from: usize) -> BoxFuture<'s, Result<O, HookError>>;
}

impl<'s, S, T, O, P, W> AsyncRest<'s, O> for Chain<'s, S, T, O, P, W>
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + Finish<T> + 's,
    P: Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Send + Sync + 's,
    W: Fn(&'s S, AsyncNext<'s, O>) -> BoxFuture<'s, HookResult<O>> + Send + Sync + 's,
{
    fn run_rest(self: Arc<Self>, from: usize) -> BoxFuture<'s, Result<O, HookError>> {
        Box::pin(async move {
            let (ctx, collect) = (&self.ctx, self.collect);
            let wrap = |w, index| {
                let next = AsyncNext {
                    chain: self.clone(),
                    index,
                };
                (self.wrap)(w, next)
            };
            let outcome = run_async(ctx, from, &self.plain, wrap, &self.from_next, collect).await;
            self.note(outcome)
        })
    }
}

/// [`Chain::run_sync`], async: the chain from wrapper `from` on; the plain
/// implementations one after the other, or all at once for a `concurrent`
/// hook, their outcomes taken in call order either way. The context is
/// borrowed from the call's state, where it is already, not copied into
/// this future's.
async fn run_async<'s, S: ?Sized + Send + Sync, T: Send, O: Send + Finish<T>>(
    ctx: &CallCtx<'s, S>,
    from: usize,
    plain: &(impl Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Sync),
    wrap: impl FnOnce(&'s S, usize) -> BoxFuture<'s, HookResult<O>> + Send + Unpin,
    from_next: &AtomicU64,
    collect: Collect<T, O>,
) -> Result<O, HookError> {
    if let Some((at, w)) = ctx.wrapper_from(from) {
        let start = || wrap(&w.plugin, at + 1);
        return invoke_async(ctx.spec(), ctx.impl_spans, w, None, from_next, start).await;
    }
    let expected = ctx.hook.plain().len();
    if holds_one(collect, expected) {
        let outcomes = Outcomes::<_, _, Option<_>>::new(ctx.spec(), collect, expected);
        run_plain(ctx, plain, outcomes).await
    } else {
        let outcomes = Outcomes::<_, _, Vec<_>>::new(ctx.spec(), collect, expected);
        run_plain(ctx, plain, outcomes).await
    }
}

/// The plain implementations, one after the other, or all at once for a
/// `concurrent` hook, their outcomes taken in call order either way.
async fn run_plain<'s, S: ?Sized + Send + Sync, T: Send, O: Send + Finish<T>>(
    ctx: &CallCtx<'s, S>,
    plain: &(impl Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Sync),
    mut outcomes: Outcomes<T, O, impl Slots<T> + Send>,
) -> Result<O, HookError> {
    let spec = ctx.spec();
    let start = |imp: &'s HookImpl<S>| {
        let start = move || plain(&imp.plugin);
        invoke_async(spec, ctx.impl_spans, imp, spec.timeout, &NO_NEXT, start)
    };
    if spec.concurrent {
        // Boxed: the sequential loop's future stays small.
        let all = Box::pin(join_all(ctx.plain().map(start))).await;
        for (imp, outcome) in ctx.plain().zip(all) {
            if outcomes.take(imp.info.plugin, outcome).is_break() {
                break;
            }
        }
    } else {
        for imp in ctx.plain() {
            if outcomes.take(imp.info.plugin, start(imp).await).is_break() {
                break;
            }
        }
    }
    outcomes.finish()
}

/// Runs one async implementation: started and polled under
/// `catch_unwind` ([`Invoke`]), within its time limit, in its span if
/// implementation spans are wanted (none is made otherwise, see
/// [`call_span_if_listened`], `traced` says). Takes the spec and `traced`,
/// not the call's context: each implementation's future holds what it is
/// given, and this is a tenth of it.
async fn invoke_async<'s, S: ?Sized + Send + Sync, R: Send>(
    spec: &'static HookSpec,
    traced: bool,
    imp: &'s HookImpl<S>,
    limit: Option<Duration>,
    from_next: &AtomicU64,
    start: impl FnOnce() -> BoxFuture<'s, HookResult<R>> + Send + Unpin,
) -> Result<R, HookError> {
    if traced {
        return invoke_async_traced(spec, imp, limit, from_next, start).await;
    }
    let caught = within(limit, Invoke::new(start)).await;
    settle(spec, imp, caught, from_next)
}

/// [`invoke_async`] in the implementation's span; boxed, so that the
/// untraced future stays small.
fn invoke_async_traced<'s, 'f, S: ?Sized + Send + Sync, R: Send + 'f>(
    spec: &'static HookSpec,
    imp: &'s HookImpl<S>,
    limit: Option<Duration>,
    from_next: &'f AtomicU64,
    start: impl FnOnce() -> BoxFuture<'s, HookResult<R>> + Send + Unpin + 'f,
) -> Pin<Box<dyn Future<Output = Result<R, HookError>> + Send + 'f>>
where
    's: 'f,
{
    let span = impl_span(spec, &imp.info);
    Box::pin(async move {
        let caught = within(limit, Invoke::new(start))
            .instrument(span.clone())
            .await;
        let outcome = settle(spec, imp, caught, from_next);
        record(&span, &outcome);
        outcome
    })
}

/// One implementation's run as one future: started at its first poll,
/// and every poll (the first included) under `catch_unwind` as caught code
/// (`panics::catch`). One state and one poll, where a combinator per rule
/// (catch the start, catch each poll, mark it caught) would add a state
/// and a poll each.
struct Invoke<'s, R, F> {
    start: Option<F>,
    running: Option<BoxFuture<'s, HookResult<R>>>,
}

impl<R, F> Invoke<'_, R, F> {
    fn new(start: F) -> Self {
        Invoke {
            start: Some(start),
            running: None,
        }
    }

    /// Drops the implementation's future, cut off by its time limit, under
    /// `catch_unwind` as caught code: its `Drop` is the implementation's
    /// code as much as its polls are, and a panic there is its panic.
    fn cancel(&mut self) -> std::thread::Result<()> {
        let running = self.running.take();
        panics::catch(move || drop(running))
    }
}

impl<'s, R, F> Future for Invoke<'s, R, F>
where
    F: FnOnce() -> BoxFuture<'s, HookResult<R>> + Unpin,
{
    type Output = Caught<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Caught<R>> {
        let Invoke { start, running } = self.get_mut();
        let polled = panics::catch(|| {
            let running = running.get_or_insert_with(|| (start.take().expect("started once"))());
            running.as_mut().poll(cx)
        });
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(outcome)) => Poll::Ready(Ok(outcome)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// `running` within the time limit, if any: overrunning it is the
/// implementation's error. One that is still pending at the limit is cut
/// off there (dropped, see [`Invoke::cancel`]). The limit is kept between
/// polls: one that blocks its thread instead of awaiting cannot be
/// interrupted, and an answer it has when polled stands (judging it by the
/// clock would also blame a plugin for a sibling's or the scheduler's
/// delay). Without a limit, `running` itself: no future of its own around
/// it to poll and drop.
fn within<'s, 'f, R, F>(
    limit: Option<Duration>,
    running: Invoke<'s, R, F>,
) -> Either<Invoke<'s, R, F>, BoxFuture<'f, Caught<R>>>
where
    's: 'f,
    R: Send + 'f,
    F: FnOnce() -> BoxFuture<'s, HookResult<R>> + Send + Unpin + 'f,
{
    match limit {
        None => Either::Left(running),
        // Boxed: the timer would make every implementation's future large.
        Some(limit) => Either::Right(Box::pin(async move {
            let mut running = running;
            match tokio::time::timeout(limit, &mut running).await {
                Ok(caught) => caught,
                Err(_elapsed) => running.cancel().map(|()| Err(TimeLimit(limit).into())),
            }
        })),
    }
}

/// Whether a Tokio timer works here: a runtime is running, with its time
/// driver. Tokio has no query for the driver, and making a timer without
/// it panics; so one is made, and dropped unused, under `catch_unwind` as
/// caught code (like a plugin's panic, Tokio's reaches the panic hook,
/// which [`quiet_plugin_panics`](crate::quiet_plugin_panics) keeps quiet).
/// Called only for hooks with a time limit.
pub(crate) fn timer_runs_here() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
        && panics::catch(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
}

/// Calls an async hook: a [`Sequence`] if it serves, else the general
/// driver (out of line, so that this inlines into the relay). The general
/// driver's call is one level deeper while polled ([`depth::Nested`]); a
/// `Sequence` raises the level in its own poll.
#[inline]
pub(crate) fn call_async<'s, S, T, O, P, W>(
    snapshot: &'s Snapshot<S>,
    hook: &'s HookImpls<S>,
    skip: &'s [&'static str],
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
) -> impl Future<Output = Result<O, HookError>> + Send + 's
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + Finish<T> + 's,
    P: Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Send + Sync + 's,
    W: Fn(&'s S, AsyncNext<'s, O>) -> BoxFuture<'s, HookResult<O>> + Send + Sync + 's,
{
    let ctx = CallCtx::new(
        snapshot,
        hook,
        skip,
        tracing::enabled!(tracing::Level::TRACE),
    );
    let span = call_span_if_listened(ctx.spec());
    if span.is_none() && sequence_serves(&ctx) {
        Either::Left(Sequence {
            snapshot,
            hook,
            skip,
            plain,
            collect,
            stage: Stage::Unstarted,
            next: 0,
            running: None,
        })
    } else {
        Either::Right(call_general(ctx, plain, wrap, collect, span))
    }
}

/// The general async driver: wrappers, `concurrent`, time limits, spans.
#[inline(never)]
fn call_general<'s, S, T, O, P, W>(
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
    span: Option<tracing::Span>,
) -> BoxFuture<'s, Result<O, HookError>>
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + Finish<T> + 's,
    P: Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Send + Sync + 's,
    W: Fn(&'s S, AsyncNext<'s, O>) -> BoxFuture<'s, HookResult<O>> + Send + Sync + 's,
{
    let recorded = span.clone();
    let call = async move {
        begin(&ctx, depth::current())?;
        let outcome = match ctx.wrapper_from(0) {
            None => {
                let no_wrapper = |_: &'s S, _| -> BoxFuture<'s, HookResult<O>> {
                    unreachable!("no wrapper takes part")
                };
                run_async(&ctx, 0, &plain, no_wrapper, &NO_NEXT, collect).await
            }
            Some(_) => {
                let chain = Arc::new(Chain {
                    ctx,
                    plain,
                    wrap,
                    collect,
                    from_next: AtomicU64::new(0),
                });
                chain.run_rest(0).await
            }
        };
        end(&ctx, &outcome);
        if let Some(span) = &recorded {
            record(span, &outcome);
        }
        outcome
    };
    // Boxed once here, with its depth level and span: the call's state is
    // some hundred bytes, and a pointer is cheaper to move through the
    // caller's futures than that. One `dyn` future rather than a choice of
    // wrappers around the box: beside a `Sequence` in the relay's
    // `Either`, it makes that `Either` cheaper to move and to drop (about
    // 35 instructions a one-implementation call).
    match span {
        None => Box::pin(depth::Nested::new(call)),
        Some(span) => Box::pin(depth::Nested::new(call.instrument(span))),
    }
}

/// The common async call as one hand-written future: plain
/// implementations one after the other, without a wrapper taking part, a
/// time limit, `concurrent` or anyone tracing ([`sequence_serves`]); the
/// rules are the same (`begin`, `catch_unwind` around each start and poll
/// as [`Invoke`] does, `settle`, [`Outcomes::take`], `end`). It is not
/// boxed, and is small and cheap to make: made, it holds only what the
/// call was given (its context as the snapshot, the hook and the subset:
/// a [`CallCtx`] is rebuilt from them at each poll), and its outcomes are
/// set up at its first poll, in place. A future is moved a few times
/// between the relay and its place in the caller's (into `.await`, into
/// the relay's state): moving the general driver's `async` state, or this
/// one made whole, cost a `malloc`/`free` or three `memcpy` calls of some
/// hundred bytes per call, most of what a one-implementation async call
/// cost above the hand loop.
struct Sequence<'s, S: ?Sized, T, O, P> {
    snapshot: &'s Snapshot<S>,
    hook: &'s HookImpls<S>,
    skip: &'s [&'static str],
    plain: P,
    collect: Collect<T, O>,
    stage: Stage<T, O>,
    /// The next plain implementation to look at.
    next: usize,
    running: Option<Running<'s, S, T>>,
}

/// The implementation running, and its future.
type Running<'s, S, T> = (&'s HookImpl<S>, BoxFuture<'s, HookResult<T>>);

/// Where a [`Sequence`] is: its outcomes, in the slots that fit the call
/// ([`Slots`]), chosen at the first poll.
enum Stage<T, O> {
    Unstarted,
    One(Outcomes<T, O, Option<Answer<T>>>),
    Many(Outcomes<T, O, Vec<Answer<T>>>),
    /// Finished, or refused by `begin`.
    Done,
}

// No field is ever pinned (the implementation's future is boxed): moving
// a `Sequence` between polls moves no pinned data.
impl<S: ?Sized, T, O, P> Unpin for Sequence<'_, S, T, O, P> {}

/// Whether a call on `ctx` is one a [`Sequence`] runs (the general driver
/// runs every other).
fn sequence_serves<S: ?Sized>(ctx: &CallCtx<'_, S>) -> bool {
    let spec = ctx.spec();
    !spec.concurrent && spec.timeout.is_none() && !ctx.impl_spans && ctx.wrapper_from(0).is_none()
}

impl<'s, S, T, O, P> Future for Sequence<'s, S, T, O, P>
where
    S: ?Sized + Send + Sync,
    O: Finish<T>,
    P: Fn(&'s S) -> BoxFuture<'s, HookResult<T>>,
{
    type Output = Result<O, HookError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // One level deeper while polled, as `depth::Nested` does.
        let (_level, depth) = depth::Level::enter();
        let this = self.get_mut();
        // A `Sequence` serves only calls without implementation spans
        // (`sequence_serves`).
        let ctx = CallCtx::new(this.snapshot, this.hook, this.skip, false);
        if let Stage::Unstarted = this.stage {
            if let Err(error) = begin(&ctx, depth) {
                this.stage = Stage::Done;
                return Poll::Ready(Err(error));
            }
            let (spec, expected) = (ctx.spec(), ctx.hook.plain().len());
            this.stage = if holds_one(this.collect, expected) {
                Stage::One(Outcomes::new(spec, this.collect, expected))
            } else {
                Stage::Many(Outcomes::new(spec, this.collect, expected))
            };
        }
        let (plain, next, running) = (&this.plain, &mut this.next, &mut this.running);
        let polled = match &mut this.stage {
            Stage::One(outcomes) => advance(&ctx, plain, next, running, outcomes, cx),
            Stage::Many(outcomes) => advance(&ctx, plain, next, running, outcomes, cx),
            Stage::Unstarted | Stage::Done => panic!("polled after it finished"),
        };
        if polled.is_pending() {
            return Poll::Pending;
        }
        let outcome = match std::mem::replace(&mut this.stage, Stage::Done) {
            Stage::One(outcomes) => outcomes.finish(),
            Stage::Many(outcomes) => outcomes.finish(),
            Stage::Unstarted | Stage::Done => unreachable!("advanced above"),
        };
        end(&ctx, &outcome);
        Poll::Ready(outcome)
    }
}

/// A [`Sequence`]'s plain implementations from where it stands, each
/// started and polled under `catch_unwind` and its outcome taken, until
/// one is pending (`Pending`) or the chain ends (`Ready`). Generic over the
/// slots, so that the loop tests nothing per implementation for them.
#[inline]
fn advance<'s, S, T, O, A>(
    ctx: &CallCtx<'s, S>,
    plain: &impl Fn(&'s S) -> BoxFuture<'s, HookResult<T>>,
    next: &mut usize,
    running: &mut Option<Running<'s, S, T>>,
    outcomes: &mut Outcomes<T, O, A>,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    S: ?Sized,
    O: Finish<T>,
    A: Slots<T>,
{
    let all = ctx.hook.plain();
    loop {
        let imp = match running {
            Some((imp, _)) => *imp,
            None => {
                // The next implementation taking part, in call order.
                let mut at = *next;
                let found = loop {
                    let Some(imp) = all.get(at) else {
                        break None;
                    };
                    at += 1;
                    if ctx.runs(imp) {
                        break Some(imp);
                    }
                };
                *next = at;
                let Some(imp) = found else {
                    return Poll::Ready(());
                };
                imp
            }
        };
        let polled = panics::catch(|| {
            let (_, future) = running.get_or_insert_with(|| (imp, plain(&imp.plugin)));
            future.as_mut().poll(cx)
        });
        let caught = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(outcome)) => Ok(outcome),
            Err(panic) => Err(panic),
        };
        *running = None;
        let outcome = settle(ctx.spec(), imp, caught, &NO_NEXT);
        if outcomes.take(imp.info.plugin, outcome).is_break() {
            return Poll::Ready(());
        }
    }
}
