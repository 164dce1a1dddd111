//! The call loop: how one hook call runs, sync or async. There is one
//! chain for both: a sync call runs the same code, its implementations'
//! outcomes wrapped in ready futures, and polls it once (nothing in it can
//! wait). Every rule of a call is in [`run`]:
//!
//! - the depth limit is checked first (and, for a hook with a time limit,
//!   that a Tokio timer exists);
//! - wrappers run outermost, in call order; each gets the rest of the chain
//!   as `next`, and a wrapper that never runs it short-circuits the rest;
//! - plain implementations run in call order (all at once for a
//!   `concurrent` async hook, their outcomes still taken in call order);
//! - [`Outcomes::take`] applies `firstresult` and the error policy;
//! - every implementation runs under `catch_unwind` (a panic becomes a
//!   [`HookError`] naming plugin and hook) and, for async plain
//!   implementations, under the hook's time limit;
//! - the call and each implementation are `tracing` spans, and monitors
//!   hear about the call before and after.
//!
//! The call order itself is decided at registration ([`crate::order`]);
//! here the implementations are simply walked.

use std::future::{Future, IntoFuture};
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
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

    fn runs(&self, imp: &HookImpl<S>) -> bool {
        self.skip.is_empty() || !self.skip.iter().any(|s| std::ptr::eq(*s, imp.info.plugin))
    }

    /// The first wrapper at or after `from` that takes part, with its index.
    fn wrapper_from(&self, from: usize) -> Option<(usize, &'s HookImpl<S>)> {
        let wrappers = self.hook.wrappers();
        (from..wrappers.len())
            .map(|i| (i, &wrappers[i]))
            .find(|(_, w)| self.runs(w))
    }

    fn plain(&self) -> impl Iterator<Item = &'s HookImpl<S>> + '_ {
        let hook: &'s HookImpls<S> = self.hook;
        hook.plain().iter().filter(|i| self.runs(i))
    }

    /// Tells the monitors about the call: its hook and the implementations
    /// it runs (a subset call leaves some out).
    #[cold]
    fn inform(&self, tell: impl FnOnce(&HookCallInfo<'_>)) {
        let running: Vec<ImplInfo>;
        let impls = if self.skip.is_empty() {
            &self.hook.infos[..]
        } else {
            running = self
                .hook
                .impls()
                .filter(|i| self.runs(i))
                .map(|i| i.info)
                .collect();
            &running
        };
        tell(&HookCallInfo {
            hook: self.spec(),
            impls,
        })
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
                // `error`'s Display guards the plugin's part of it.
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

// ---------------------------------------------------------------- chain

/// A call's state: what the generated relay passed in, for the wrappers'
/// `next` to come back to. `plain` starts a plain implementation, `wrap`
/// a wrapper (given the rest of the chain); both return futures, ready
/// ones for a sync hook.
struct Chain<'s, S: ?Sized, T, O, P, W> {
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
    /// The identity of the error `next` produced last (see [`settle`]); 0
    /// for none.
    from_next: AtomicU64,
}

/// The rest of a chain from one wrapper on, type-erased: what a wrapper's
/// `next` holds.
pub(crate) struct Rest<'s, O> {
    chain: Arc<dyn RunFrom<'s, O> + 's>,
    index: usize,
}

trait RunFrom<'s, O>: Send + Sync {
    /// Runs the chain from wrapper `index` on and notes the error it
    /// produced, if any, for the wrapper that asked.
    fn run_from(self: Arc<Self>, index: usize) -> BoxFuture<'s, Result<O, HookError>>;
}

impl<'s, O> Rest<'s, O> {
    fn run(self) -> BoxFuture<'s, Result<O, HookError>> {
        self.chain.run_from(self.index)
    }
}

impl<'s, S, T, O, P, PF, W, WF> RunFrom<'s, O> for Chain<'s, S, T, O, P, W>
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + 's,
    P: Fn(&'s S) -> PF + Send + Sync + 's,
    PF: Future<Output = HookResult<T>> + Send + 's,
    W: Fn(&'s S, Rest<'s, O>) -> WF + Send + Sync + 's,
    WF: Future<Output = HookResult<O>> + Send + 's,
{
    fn run_from(self: Arc<Self>, index: usize) -> BoxFuture<'s, Result<O, HookError>> {
        Box::pin(async move {
            let chain = &*self;
            let outcome = run(
                chain.ctx,
                index,
                &chain.plain,
                |w, next| {
                    let rest = Rest {
                        chain: self.clone(),
                        index: next,
                    };
                    (chain.wrap)(w, rest)
                },
                &chain.from_next,
                chain.collect,
            )
            .await;
            if let Err(error) = &outcome {
                self.from_next.store(error.id(), Ordering::Relaxed);
            }
            outcome
        })
    }
}

/// The whole of a call from wrapper `from` on: the next wrapper taking
/// part, handed the rest of the chain; after the last, the plain
/// implementations.
async fn run<'s, S: ?Sized, T, O, PF, WF>(
    ctx: CallCtx<'s, S>,
    from: usize,
    plain: &(impl Fn(&'s S) -> PF + Sync),
    wrap: impl FnOnce(&'s S, usize) -> WF,
    from_next: &AtomicU64,
    collect: Collect<T, O>,
) -> Result<O, HookError>
where
    PF: Future<Output = HookResult<T>>,
    WF: Future<Output = HookResult<O>>,
{
    if let Some((at, w)) = ctx.wrapper_from(from) {
        return invoke(ctx, w, None, from_next, || wrap(&w.plugin, at + 1)).await;
    }
    let spec = ctx.spec();
    let mut outcomes = Outcomes::new(spec, collect, ctx.hook.plain().len());
    let start =
        |imp: &'s HookImpl<S>| invoke(ctx, imp, spec.timeout, &NO_NEXT, move || plain(&imp.plugin));
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

/// What plain implementations, which have no `next`, pass to [`settle`].
static NO_NEXT: AtomicU64 = AtomicU64::new(0);

/// Runs one implementation: started (a sync one runs right there) and
/// polled under `catch_unwind`, in its span, within its time limit.
async fn invoke<'s, S: ?Sized, R, F: Future<Output = HookResult<R>>>(
    ctx: CallCtx<'s, S>,
    imp: &'s HookImpl<S>,
    limit: Option<std::time::Duration>,
    from_next: &AtomicU64,
    start: impl FnOnce() -> F,
) -> Result<R, HookError> {
    let span = match ctx.impl_spans {
        true => impl_span(ctx.spec(), &imp.info),
        false => tracing::Span::none(),
    };
    let caught = match catch_unwind(AssertUnwindSafe(|| span.in_scope(start))) {
        Err(panic) => Err(panic),
        Ok(future) => {
            let running = AssertUnwindSafe(future).catch_unwind();
            match limit {
                None => running.instrument(span.clone()).await,
                Some(limit) => {
                    let limited = Box::pin(tokio::time::timeout(limit, running));
                    match limited.instrument(span.clone()).await {
                        Ok(caught) => caught,
                        Err(_elapsed) => Ok(Err(TimeLimit(limit).into())),
                    }
                }
            }
        }
    };
    let outcome = settle(ctx.spec(), imp, caught, from_next);
    record(&span, &outcome);
    outcome
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

/// A call: the checks, the monitors and the call span around [`run`].
async fn call<'s, S, T, O, P, PF, W, WF>(
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
) -> Result<O, HookError>
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + 's,
    P: Fn(&'s S) -> PF + Send + Sync + 's,
    PF: Future<Output = HookResult<T>> + Send + 's,
    W: Fn(&'s S, Rest<'s, O>) -> WF + Send + Sync + 's,
    WF: Future<Output = HookResult<O>> + Send + 's,
{
    let spec = ctx.spec();
    if depth::current() > ctx.max_depth {
        return Err(HookError::too_deep(spec.name, ctx.max_depth));
    }
    if let Some(limit) = spec.timeout {
        if tokio::runtime::Handle::try_current().is_err() {
            // A time limit needs Tokio's timer: refuse up front, blaming no plugin.
            return Err(HookError::no_runtime(spec.name, limit));
        }
    }
    if !ctx.monitors.is_empty() {
        ctx.inform(|info| monitoring::before(ctx.monitors, info));
    }
    let outcome = match ctx.wrapper_from(0) {
        None => {
            let no_wrapper = |_: &'s S, _| std::future::pending::<HookResult<O>>();
            run(ctx, 0, &plain, no_wrapper, &NO_NEXT, collect).await
        }
        Some(_) => {
            let chain = Arc::new(Chain {
                ctx,
                plain,
                wrap,
                collect,
                from_next: AtomicU64::new(0),
            });
            chain.run_from(0).await
        }
    };
    if !ctx.monitors.is_empty() {
        ctx.inform(|info| monitoring::after(ctx.monitors, info, &outcome));
    }
    outcome
}

/// A call as a future: one level deeper while polled, in its span.
fn traced<'s, O: 's>(
    spec: &HookSpec,
    call: impl Future<Output = Result<O, HookError>> + 's,
) -> impl Future<Output = Result<O, HookError>> + 's {
    let span = call_span(spec);
    let recorded = span.clone();
    depth::Nested::new(
        async move {
            let outcome = call.await;
            record(&recorded, &outcome);
            outcome
        }
        .instrument(span),
    )
}

/// Calls a sync hook: the chain, polled once.
pub(crate) fn call_sync<'s, S, T, O>(
    ctx: CallCtx<'s, S>,
    plain: impl Fn(&'s S) -> HookResult<T> + Send + Sync + 's,
    wrap: impl Fn(&'s S, Next<'s, O>) -> HookResult<O> + Send + Sync + 's,
    collect: Collect<T, O>,
) -> Result<O, HookError>
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + 's,
{
    let call = call(
        ctx,
        move |p| std::future::ready(plain(p)),
        move |p, rest| std::future::ready(wrap(p, Next(rest))),
        collect,
    );
    poll_once(traced(ctx.spec(), call))
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
    let call = call(ctx, plain, move |p, rest| wrap(p, AsyncNext(rest)), collect);
    traced(ctx.spec(), call)
}

/// The outcome of a future that cannot wait: a sync hook's chain, whose
/// implementations all return ready futures.
fn poll_once<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a sync hook's chain never waits"),
    }
}

// ------------------------------------------------------------ wrappers

/// The rest of a sync hook's chain, handed to a wrapper. Consumed by
/// [`Next::call`], so it runs at most once; a wrapper that drops it
/// without calling it short-circuits every implementation after it.
pub struct Next<'s, O>(Rest<'s, O>);

impl<O> Next<'_, O> {
    /// Runs the rest of the chain (inner wrappers, then the plain
    /// implementations) and returns its outcome.
    pub fn call(self) -> Result<O, HookError> {
        poll_once(self.0.run())
    }
}

/// The rest of an async hook's chain, handed to a wrapper: `next.await`
/// runs it (inner wrappers, then the plain implementations) once. A wrapper
/// that drops it without awaiting short-circuits everything after it.
pub struct AsyncNext<'s, O>(Rest<'s, O>);

impl<'s, O: Send + 's> IntoFuture for AsyncNext<'s, O> {
    type Output = Result<O, HookError>;
    type IntoFuture = BoxFuture<'s, Result<O, HookError>>;
    fn into_future(self) -> Self::IntoFuture {
        self.0.run()
    }
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
