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
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use tracing::Instrument;

use crate::depth;
use crate::error::{HookError, HookResult};
use crate::monitoring::{self, HookCallInfo, Monitor};
use crate::registry::{HookImpl, HookImpls};
use crate::result::{Collect, Results};
use crate::spec::{ErrorPolicy, HookSpec};

/// What one call runs on: a hook of a snapshot, minus excluded plugins.
pub(crate) struct CallCtx<'s, S: ?Sized> {
    pub(crate) hook: &'s HookImpls<S>,
    /// Plugins left out (`subset_hook_caller`), as interned names.
    pub(crate) skip: &'s [&'static str],
    pub(crate) monitors: &'s [Arc<Monitor>],
    pub(crate) max_depth: usize,
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

    fn info(&self) -> HookCallInfo<'s> {
        HookCallInfo {
            hook: self.hook.spec,
            impls: &self.hook.infos,
        }
    }

    fn too_deep(&self, depth: usize) -> Result<(), HookError> {
        if depth > self.max_depth {
            return Err(HookError::too_deep(self.spec().name, self.max_depth));
        }
        Ok(())
    }

    /// Tells the monitors a call starts.
    fn before(&self) {
        if !self.monitors.is_empty() {
            monitoring::before(self.monitors, &self.info());
        }
    }

    /// Tells the monitors how the call ended.
    fn after<O>(&self, outcome: &Result<O, HookError>) {
        if !self.monitors.is_empty() {
            monitoring::after(self.monitors, &self.info(), outcome);
        }
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

    fn take(&mut self, plugin: &'static str, outcome: Result<T, HookError>) -> ControlFlow<()> {
        match outcome {
            Ok(value) => match self.collect.answers {
                None => {
                    self.results.push(plugin, value);
                    ControlFlow::Continue(())
                }
                Some(answers) if answers(&value) => {
                    self.results.push(plugin, value);
                    ControlFlow::Break(())
                }
                Some(_) => ControlFlow::Continue(()),
            },
            Err(error) => match self.spec.on_error {
                ErrorPolicy::Propagate => {
                    self.failed = Some(error);
                    ControlFlow::Break(())
                }
                ErrorPolicy::Continue => {
                    tracing::warn!(hook = self.spec.name, plugin, %error, "hook implementation failed; continuing");
                    self.results.errors.push(error);
                    ControlFlow::Continue(())
                }
            },
        }
    }

    fn finish(self) -> Result<O, HookError> {
        match self.failed {
            Some(error) => Err(error),
            None => Ok((self.collect.finish)(self.results)),
        }
    }
}

/// Turns what an implementation did into its outcome.
fn settle<R>(
    spec: &HookSpec,
    imp: &HookImpl<impl ?Sized>,
    caught: Result<HookResult<R>, Box<dyn std::any::Any + Send>>,
) -> Result<R, HookError> {
    let plugin = imp.info.plugin;
    match caught {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) if imp.info.wrapper => Err(HookError::from_wrapper(spec.name, plugin, error)),
        Ok(Err(error)) => Err(HookError::from_impl(spec.name, plugin, error)),
        Err(panic) => Err(HookError::panicked(spec.name, plugin, panic)),
    }
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
        self.chain.run_from(self.index)
    }
}

trait SyncChain<O> {
    fn run_from(&self, wrapper: usize) -> Result<O, HookError>;
}

struct SyncCall<'s, S: ?Sized, T, O, P, W> {
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
}

impl<S: ?Sized, T, O, P, W> SyncChain<O> for SyncCall<'_, S, T, O, P, W>
where
    P: Fn(&S) -> HookResult<T>,
    W: Fn(&S, Next<'_, O>) -> HookResult<O>,
{
    fn run_from(&self, wrapper: usize) -> Result<O, HookError> {
        let spec = self.ctx.spec();
        if let Some((at, w)) = self.ctx.wrapper_from(wrapper) {
            let next = Next { chain: self, index: at + 1 };
            return invoke(spec, w, || (self.wrap)(&w.plugin, next));
        }
        let mut outcomes = Outcomes::new(spec, self.collect, self.ctx.hook.plain().len());
        for imp in self.ctx.plain() {
            let outcome = invoke(spec, imp, || (self.plain)(&imp.plugin));
            if outcomes.take(imp.info.plugin, outcome).is_break() {
                break;
            }
        }
        outcomes.finish()
    }
}

fn invoke<S: ?Sized, R>(
    spec: &HookSpec,
    imp: &HookImpl<S>,
    run: impl FnOnce() -> HookResult<R>,
) -> Result<R, HookError> {
    let span = monitoring::impl_span(spec, &imp.info);
    let _entered = span.enter();
    let outcome = settle(spec, imp, catch_unwind(AssertUnwindSafe(run)));
    monitoring::record(&span, &outcome);
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
    let span = monitoring::call_span(ctx.spec());
    let _entered = span.enter();
    let chain = SyncCall {
        ctx,
        plain,
        wrap,
        collect,
    };
    ctx.before();
    let outcome = chain.run_from(0);
    ctx.after(&outcome);
    monitoring::record(&span, &outcome);
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
        self.chain.run_from(self.index)
    }
}

trait AsyncChain<'s, O>: Send + Sync {
    fn run_from(self: Arc<Self>, wrapper: usize) -> BoxFuture<'s, Result<O, HookError>>;
}

struct AsyncCall<'s, S: ?Sized, T, O, P, W> {
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
}

impl<'s, S, T, O, P, W> AsyncChain<'s, O> for AsyncCall<'s, S, T, O, P, W>
where
    S: ?Sized + Send + Sync,
    T: Send + 's,
    O: Send + 's,
    P: Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Send + Sync + 's,
    W: Fn(&'s S, AsyncNext<'s, O>) -> BoxFuture<'s, HookResult<O>>
        + Send
        + Sync
        + 's,
{
    fn run_from(self: Arc<Self>, wrapper: usize) -> BoxFuture<'s, Result<O, HookError>> {
        Box::pin(async move {
            let spec = self.ctx.spec();
            match self.ctx.wrapper_from(wrapper) {
                Some((at, w)) => {
                    let next = AsyncNext {
                        chain: self.clone(),
                        index: at + 1,
                    };
                    invoke_async(spec, w, None, || (self.wrap)(&w.plugin, next)).await
                }
                None => run_plain(self.ctx, &self.plain, self.collect).await,
            }
        })
    }
}

async fn run_plain<'s, S: ?Sized, T, O>(
    ctx: CallCtx<'s, S>,
    plain: &(impl Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Sync),
    collect: Collect<T, O>,
) -> Result<O, HookError> {
    let spec = ctx.spec();
    let mut outcomes = Outcomes::new(spec, collect, ctx.hook.plain().len());
    let run = |imp: &'s HookImpl<S>| invoke_async(spec, imp, spec.timeout, || plain(&imp.plugin));
    if spec.concurrent {
        let all = join_all(ctx.plain().map(run)).await;
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

async fn invoke_async<'s, S: ?Sized, R>(
    spec: &'static HookSpec,
    imp: &'s HookImpl<S>,
    limit: Option<Duration>,
    start: impl FnOnce() -> BoxFuture<'s, HookResult<R>>,
) -> Result<R, HookError> {
    let span = monitoring::impl_span(spec, &imp.info);
    let run = async {
        match catch_unwind(AssertUnwindSafe(start)) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        }
    }
    .instrument(span.clone());
    let outcome = match limit {
        None => settle(spec, imp, run.await),
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(caught) => settle(spec, imp, caught),
            Err(_elapsed) => Err(HookError::timed_out(spec.name, imp.info.plugin, limit)),
        },
    };
    monitoring::record(&span, &outcome);
    outcome
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
    W: Fn(&'s S, AsyncNext<'s, O>) -> BoxFuture<'s, HookResult<O>>
        + Send
        + Sync
        + 's,
{
    let span = monitoring::call_span(ctx.spec());
    let call = async move {
        ctx.too_deep(depth::current())?;
        ctx.before();
        let outcome = match ctx.wrapper_from(0) {
            None => run_plain(ctx, &plain, collect).await,
            Some(_) => {
                let chain = Arc::new(AsyncCall {
                    ctx,
                    plain,
                    wrap,
                    collect,
                });
                chain.run_from(0).await
            }
        };
        ctx.after(&outcome);
        outcome
    };
    let span_for_outcome = span.clone();
    depth::Nested::new(
        async move {
            let outcome = call.await;
            monitoring::record(&span_for_outcome, &outcome);
            outcome
        }
        .instrument(span),
    )
}
