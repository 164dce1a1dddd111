//! The call loop: how one hook call runs. Every rule of a call is here:
//!
//! - the depth limit is checked first;
//! - wrappers run outermost, in call order; each gets the rest of the chain
//!   as `next`, and a wrapper that never calls it short-circuits the rest;
//! - plain implementations run in call order (all at once for a
//!   `concurrent` async hook, their outcomes still taken in call order);
//! - [`Outcomes::take`] applies `firstresult` and the error policy;
//! - every implementation runs under `catch_unwind` (a panic becomes a
//!   [`HookError`] naming plugin and hook) and, for async plain
//!   implementations, under the hook's time limit;
//! - the call and each implementation are `tracing` spans, and monitors
//!   hear about the call before and after.
//!
//! The call order itself is decided at registration ([`crate::hookimpl`]);
//! here the implementations are simply walked.

use std::future::{Future, IntoFuture};
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::FutureExt;
use futures::future::{self, BoxFuture, Either, join_all};
use tracing::Instrument;

use crate::depth;
use crate::error::{HookError, HookResult, TimeLimit};
use crate::hookimpl::ImplInfo;
use crate::hookspec::{ErrorPolicy, HookSpec};
use crate::monitoring::{self, HookCallInfo, Monitor};
use crate::registry::{HookImpl, HookImpls};
use crate::result::{Collect, Results};

/// What one call runs on: a hook of a snapshot, minus excluded plugins.
pub(crate) struct CallCtx<'s, S: ?Sized> {
    pub(crate) hook: &'s HookImpls<S>,
    /// Plugins left out (`subset_hook_caller`), as interned names.
    pub(crate) skip: &'s [&'static str],
    pub(crate) monitors: &'s [Arc<Monitor>],
    pub(crate) max_depth: usize,
    /// Whether implementation spans are wanted: decided once per call, so a
    /// call with tracing off pays nothing per implementation.
    pub(crate) impl_spans: bool,
}

impl<S: ?Sized> Clone for CallCtx<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for CallCtx<'_, S> {}

impl<'s, S: ?Sized> CallCtx<'s, S> {
    fn spec(&self) -> &'static HookSpec {
        self.hook.spec
    }

    #[inline]
    fn impl_span(&self, imp: &HookImpl<S>) -> tracing::Span {
        if self.impl_spans {
            impl_span(self.spec(), &imp.info)
        } else {
            tracing::Span::none()
        }
    }

    fn runs(&self, imp: &HookImpl<S>) -> bool {
        !self.skip.iter().any(|s| std::ptr::eq(*s, imp.info.plugin))
    }

    /// The first wrapper at or after `from` that takes part, with its index.
    fn wrapper_from(&self, from: usize) -> Option<(usize, &'s HookImpl<S>)> {
        let hook: &'s HookImpls<S> = self.hook;
        (from..hook.wrappers().len())
            .map(|i| (i, &hook.wrappers()[i]))
            .find(|(_, w)| self.runs(w))
    }

    fn plain(&self) -> impl Iterator<Item = &'s HookImpl<S>> + '_ {
        let hook: &'s HookImpls<S> = self.hook;
        hook.plain().iter().filter(|i| self.runs(i))
    }

    /// Tells the monitors about the call: its hook and the implementations
    /// it runs (a subset call leaves some out).
    fn inform(&self, tell: impl FnOnce(&HookCallInfo<'_>)) {
        let all = &self.hook.infos;
        if self.skip.is_empty() {
            return tell(&HookCallInfo {
                hook: self.spec(),
                impls: all,
            });
        }
        let running: Vec<_> = self
            .hook
            .impls()
            .filter(|i| self.runs(i))
            .map(|i| i.info)
            .collect();
        tell(&HookCallInfo {
            hook: self.spec(),
            impls: &running,
        })
    }

    /// Tells the monitors a call starts.
    fn before(&self) {
        if !self.monitors.is_empty() {
            self.inform(|info| monitoring::before(self.monitors, info));
        }
    }

    /// Tells the monitors how the call ended.
    fn after<O>(&self, outcome: &Result<O, HookError>) {
        if !self.monitors.is_empty() {
            self.inform(|info| monitoring::after(self.monitors, info, outcome));
        }
    }

    /// A time limit needs Tokio's timer: refuse up front, blaming no plugin.
    fn has_timer(&self) -> Result<(), HookError> {
        match self.spec().timeout {
            Some(limit) if tokio::runtime::Handle::try_current().is_err() => {
                Err(HookError::no_runtime(self.spec().name, limit))
            }
            _ => Ok(()),
        }
    }

    fn too_deep(&self, depth: usize) -> Result<(), HookError> {
        if depth > self.max_depth {
            return Err(HookError::too_deep(self.spec().name, self.max_depth));
        }
        Ok(())
    }
}

/// Takes each implementation's outcome in call order and decides whether
/// the chain goes on: `firstresult` and the error policy, in one place.
struct Outcomes<T, O> {
    spec: &'static HookSpec,
    collect: Collect<T, O>,
    results: Results<T>,
    failed: Option<HookError>,
}

impl<T, O> Outcomes<T, O> {
    fn new(spec: &'static HookSpec, collect: Collect<T, O>, expected: usize) -> Self {
        let mut results = Results::default();
        if collect.answers.is_none() {
            results.answers.reserve_exact(expected);
        }
        Outcomes {
            spec,
            collect,
            results,
            failed: None,
        }
    }

    #[inline]
    fn take(&mut self, plugin: &'static str, outcome: Result<T, HookError>) -> ControlFlow<()> {
        let value = match outcome {
            Ok(value) => value,
            Err(error) => return self.failed(plugin, error),
        };
        match self.collect.answers {
            None => {
                self.results.push(plugin, value);
                ControlFlow::Continue(())
            }
            Some(answers) if answers(&value) => {
                self.results.push(plugin, value);
                ControlFlow::Break(())
            }
            Some(_) => ControlFlow::Continue(()),
        }
    }

    #[cold]
    #[inline(never)]
    fn failed(&mut self, plugin: &'static str, error: HookError) -> ControlFlow<()> {
        match self.spec.on_error {
            ErrorPolicy::Propagate => {
                self.failed = Some(error);
                ControlFlow::Break(())
            }
            ErrorPolicy::Continue => {
                tracing::warn!(hook = self.spec.name, plugin, %error, "hook implementation failed; continuing");
                self.results.errors.push(error);
                ControlFlow::Continue(())
            }
        }
    }

    fn finish(self) -> Result<O, HookError> {
        match self.failed {
            Some(error) => Err(error),
            None => Ok((self.collect.finish)(self.results)),
        }
    }
}

/// Turns what an implementation did into its outcome. `from_next` is the
/// identity of the error a wrapper's `next` produced, if any.
#[inline]
fn settle<R>(
    spec: &HookSpec,
    imp: &HookImpl<impl ?Sized>,
    caught: Result<HookResult<R>, Box<dyn std::any::Any + Send>>,
    from_next: &AtomicU64,
) -> Result<R, HookError> {
    let plugin = imp.info.plugin;
    match caught {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) if imp.info.wrapper => {
            let from_next = from_next.load(Ordering::Relaxed);
            Err(HookError::from_wrapper(spec.name, plugin, error, from_next))
        }
        Ok(Err(error)) => Err(HookError::from_impl(spec.name, plugin, error)),
        Err(panic) => Err(HookError::panicked(spec.name, plugin, panic)),
    }
}

/// Notes the error the rest of a chain produced, for [`settle`].
fn note<O>(outcome: Result<O, HookError>, from_next: &AtomicU64) -> Result<O, HookError> {
    if let Err(error) = &outcome {
        from_next.store(error.id(), Ordering::Relaxed);
    }
    outcome
}

// ----------------------------------------------------------------- sync

/// The rest of a sync hook's chain, handed to a wrapper. Consumed by
/// [`Next::call`], so it runs at most once; a wrapper that drops it
/// without calling it short-circuits every implementation after it.
pub struct Next<'n, O> {
    chain: &'n dyn SyncChain<O>,
    index: usize,
}

impl<O> Next<'_, O> {
    /// Runs the rest of the chain (inner wrappers, then the plain
    /// implementations) and returns its outcome.
    pub fn call(self) -> Result<O, HookError> {
        note(self.chain.run_from(self.index), self.chain.next_error())
    }
}

trait SyncChain<O> {
    fn run_from(&self, wrapper: usize) -> Result<O, HookError>;
    fn next_error(&self) -> &AtomicU64;
}

struct SyncCall<'s, S: ?Sized, T, O, P, W> {
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
    /// The error `next` produced last (see [`settle`]).
    from_next: AtomicU64,
}

impl<S: ?Sized, T, O, P, W> SyncChain<O> for SyncCall<'_, S, T, O, P, W>
where
    P: Fn(&S) -> HookResult<T>,
    W: Fn(&S, Next<'_, O>) -> HookResult<O>,
{
    fn next_error(&self) -> &AtomicU64 {
        &self.from_next
    }

    fn run_from(&self, wrapper: usize) -> Result<O, HookError> {
        let spec = self.ctx.spec();
        if self.ctx.hook.is_empty() {
            return Ok((self.collect.finish)(Results::default()));
        }
        if let Some((at, w)) = self.ctx.wrapper_from(wrapper) {
            let next = Next {
                chain: self,
                index: at + 1,
            };
            return invoke(&self.ctx, w, &self.from_next, || {
                (self.wrap)(&w.plugin, next)
            });
        }
        let mut outcomes = Outcomes::new(spec, self.collect, self.ctx.hook.plain().len());
        for imp in self.ctx.plain() {
            let outcome = invoke(&self.ctx, imp, &NO_NEXT, || (self.plain)(&imp.plugin));
            if outcomes.take(imp.info.plugin, outcome).is_break() {
                break;
            }
        }
        outcomes.finish()
    }
}

/// What plain implementations, which have no `next`, pass to [`settle`].
static NO_NEXT: AtomicU64 = AtomicU64::new(0);

#[inline]
fn invoke<S: ?Sized, R>(
    ctx: &CallCtx<'_, S>,
    imp: &HookImpl<S>,
    from_next: &AtomicU64,
    run: impl FnOnce() -> HookResult<R>,
) -> Result<R, HookError> {
    if ctx.impl_spans {
        return invoke_traced(ctx, imp, from_next, run);
    }
    settle(
        ctx.spec(),
        imp,
        catch_unwind(AssertUnwindSafe(run)),
        from_next,
    )
}

#[inline(never)]
fn invoke_traced<S: ?Sized, R>(
    ctx: &CallCtx<'_, S>,
    imp: &HookImpl<S>,
    from_next: &AtomicU64,
    run: impl FnOnce() -> HookResult<R>,
) -> Result<R, HookError> {
    let span = ctx.impl_span(imp);
    let _entered = span.enter();
    let outcome = settle(
        ctx.spec(),
        imp,
        catch_unwind(AssertUnwindSafe(run)),
        from_next,
    );
    record(&span, &outcome);
    outcome
}

/// Calls a sync hook.
pub(crate) fn call_sync<S: ?Sized, T, O>(
    ctx: CallCtx<'_, S>,
    plain: impl Fn(&S) -> HookResult<T>,
    wrap: impl Fn(&S, Next<'_, O>) -> HookResult<O>,
    collect: Collect<T, O>,
) -> Result<O, HookError> {
    let (_level, depth) = depth::Level::enter();
    ctx.too_deep(depth)?;
    let span = call_span(ctx.spec());
    let _entered = span.enter();
    let chain = SyncCall {
        ctx,
        plain,
        wrap,
        collect,
        from_next: AtomicU64::new(0),
    };
    ctx.before();
    let outcome = chain.run_from(0);
    ctx.after(&outcome);
    record(&span, &outcome);
    outcome
}

// ---------------------------------------------------------------- async

/// The rest of an async hook's chain, handed to a wrapper: `next.await`
/// runs it (inner wrappers, then the plain implementations) once. A wrapper
/// that drops it without awaiting short-circuits everything after it.
pub struct AsyncNext<'s, O> {
    chain: Arc<dyn AsyncChain<'s, O> + 's>,
    index: usize,
}

impl<'s, O: Send + 's> IntoFuture for AsyncNext<'s, O> {
    type Output = Result<O, HookError>;
    type IntoFuture = BoxFuture<'s, Result<O, HookError>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let outcome = self.chain.clone().run_from(self.index).await;
            note(outcome, self.chain.next_error())
        })
    }
}

trait AsyncChain<'s, O>: Send + Sync {
    fn run_from(self: Arc<Self>, wrapper: usize) -> BoxFuture<'s, Result<O, HookError>>;
    fn next_error(&self) -> &AtomicU64;
}

struct AsyncCall<'s, S: ?Sized, T, O, P, W> {
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
    /// The error `next` produced last (see [`settle`]).
    from_next: AtomicU64,
}

impl<'s, S, T, O, P, W> AsyncChain<'s, O> for AsyncCall<'s, S, T, O, P, W>
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + 's,
    P: Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Send + Sync + 's,
    W: Fn(&'s S, AsyncNext<'s, O>) -> BoxFuture<'s, HookResult<O>> + Send + Sync + 's,
{
    fn next_error(&self) -> &AtomicU64 {
        &self.from_next
    }

    fn run_from(self: Arc<Self>, wrapper: usize) -> BoxFuture<'s, Result<O, HookError>> {
        Box::pin(async move {
            match self.ctx.wrapper_from(wrapper) {
                Some((at, w)) => {
                    let next = AsyncNext {
                        chain: self.clone(),
                        index: at + 1,
                    };
                    let start = || (self.wrap)(&w.plugin, next);
                    invoke_async(self.ctx, w, None, &self.from_next, start).await
                }
                None => run_plain(self.ctx, &self.plain, self.collect).await,
            }
        })
    }
}

// A plain function returning an `async move` block rather than an `async
// fn`: an `async fn` copies its arguments into its state a second time.
#[allow(clippy::manual_async_fn)]
fn run_plain<'p, 's: 'p, S: ?Sized, T: 's, O: 's>(
    ctx: CallCtx<'s, S>,
    plain: &'p (impl Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Sync),
    collect: Collect<T, O>,
) -> impl Future<Output = Result<O, HookError>> + 'p {
    async move {
        let spec = ctx.spec();
        let mut outcomes = Outcomes::new(spec, collect, ctx.hook.plain().len());
        let run = |imp: &'s HookImpl<S>| {
            invoke_async(ctx, imp, spec.timeout, &NO_NEXT, move || plain(&imp.plugin))
        };
        if spec.concurrent {
            // Boxed: the sequential loop's future stays small.
            let all = Box::pin(join_all(ctx.plain().map(run))).await;
            for (imp, outcome) in ctx.plain().zip(all) {
                if outcomes.take(imp.info.plugin, outcome).is_break() {
                    break;
                }
            }
        } else {
            for imp in ctx.plain() {
                if outcomes.take(imp.info.plugin, run(imp).await).is_break() {
                    break;
                }
            }
        }
        outcomes.finish()
    }
}

/// Starts one async implementation: its future under `catch_unwind`, its
/// span and its time limit, all in one small [`Invoke`] future.
#[inline]
fn invoke_async<'s, S: ?Sized, R: 's>(
    ctx: CallCtx<'s, S>,
    imp: &'s HookImpl<S>,
    limit: Option<Duration>,
    from_next: &'s AtomicU64,
    start: impl FnOnce() -> BoxFuture<'s, HookResult<R>>,
) -> Invoke<'s, S, R> {
    let future = match catch_unwind(AssertUnwindSafe(start)) {
        Ok(future) => future,
        // Re-raised where the future is polled, and caught there like any panic.
        Err(panic) => Box::pin(async move { std::panic::resume_unwind(panic) }),
    };
    let future = match limit {
        None => future,
        Some(limit) => Box::pin(async move {
            tokio::time::timeout(limit, future)
                .await
                .unwrap_or_else(|_elapsed| Err(TimeLimit(limit).into()))
        }),
    };
    Invoke {
        run: AssertUnwindSafe(future)
            .catch_unwind()
            .instrument(ctx.impl_span(imp)),
        spec: ctx.spec(),
        imp,
        from_next,
    }
}

pin_project_lite::pin_project! {
    /// One async implementation running.
    struct Invoke<'s, S: ?Sized, R> {
        #[pin]
        run: tracing::instrument::Instrumented<
            futures::future::CatchUnwind<AssertUnwindSafe<BoxFuture<'s, HookResult<R>>>>,
        >,
        spec: &'static HookSpec,
        imp: &'s HookImpl<S>,
        from_next: &'s AtomicU64,
    }
}

impl<S: ?Sized, R> Future for Invoke<'_, S, R> {
    type Output = Result<R, HookError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let caught = ready!(this.run.as_mut().poll(cx));
        let outcome = settle(this.spec, this.imp, caught, this.from_next);
        record(this.run.span(), &outcome);
        Poll::Ready(outcome)
    }
}

/// Calls an async hook.
pub(crate) fn call_async<'s, S, T, O, P, W>(
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
) -> impl Future<Output = Result<O, HookError>> + Send + 's
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + 's,
    P: Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Send + Sync + 's,
    W: Fn(&'s S, AsyncNext<'s, O>) -> BoxFuture<'s, HookResult<O>> + Send + Sync + 's,
{
    let span = call_span(ctx.spec());
    if ctx.hook.is_empty() && ctx.monitors.is_empty() && span.is_disabled() {
        // Nothing to run, nobody watching: no state to build.
        return Either::Left(future::ready(Ok((collect.finish)(Results::default()))));
    }
    let recorded = span.clone();
    let call = async move {
        ctx.too_deep(depth::current())?;
        ctx.has_timer()?;
        ctx.before();
        let outcome = match ctx.wrapper_from(0) {
            None => run_plain(ctx, &plain, collect).await,
            Some(_) => {
                let chain = Arc::new(AsyncCall {
                    ctx,
                    plain,
                    wrap,
                    collect,
                    from_next: AtomicU64::new(0),
                });
                chain.run_from(0).await
            }
        };
        ctx.after(&outcome);
        record(&recorded, &outcome);
        outcome
    };
    // Boxed once here: the call's state is a few hundred bytes, and a
    // pointer is cheaper to move through the caller's futures than the state.
    // Boxed once here: the call's state is a few hundred bytes, and a
    // pointer is cheaper to move through the caller's futures than the state.
    Either::Right(Box::pin(depth::Nested::new(call.instrument(span))))
}

// ---------------------------------------------------------------- spans

/// The span of one hook call.
fn call_span(spec: &HookSpec) -> tracing::Span {
    tracing::debug_span!("hook", hook = spec.name, outcome = tracing::field::Empty)
}

/// The span of one implementation.
fn impl_span(spec: &HookSpec, info: &ImplInfo) -> tracing::Span {
    tracing::trace_span!(
        "hookimpl",
        hook = spec.name,
        plugin = info.plugin,
        wrapper = info.wrapper,
        outcome = tracing::field::Empty
    )
}

/// Records how a call or an implementation ended on its span. The error's
/// `Display` guards the plugin's part of it (see `error::guarded`).
fn record<T>(span: &tracing::Span, outcome: &Result<T, HookError>) {
    if !span.is_disabled() {
        match outcome {
            Ok(_) => span.record("outcome", "ok"),
            Err(e) => span.record("outcome", tracing::field::display(e)),
        };
    }
}
