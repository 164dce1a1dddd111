//! The call loop: how one hook call runs, sync or async. One [`Chain`]
//! holds a call's state for both, with a driver for each: [`Chain::run_sync`]
//! and [`run_async`] walk the same data under the same rules, the rules
//! themselves in the parts both share ([`begin`], [`CallCtx`], [`Outcomes`],
//! [`settle`], [`end`]). (Running a sync call through the async driver,
//! polled once, was tried: 1,199 instructions per one-implementation call,
//! spans off, against 639 now and 219 for the hand-written loop, most of it
//! moving the futures' state.) The rules:
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
//! - the call and each implementation are `tracing` spans (made only when
//!   a subscriber wants them), and monitors hear about the call before and
//!   after.
//!
//! The call order itself is decided at registration ([`crate::order`]);
//! here the implementations are simply walked. The async driver is in
//! call_loop/asynchronous.rs (feature `async`).
//!
//! # The two drivers, side by side
//!
//! Each step of one is a step of the other; only how a step waits differs.
//!
//! | step | sync | async |
//! |---|---|---|
//! | entry | [`call_sync`], inlined into the caller's one out-of-line function | `call_async`: the common call (no wrapper taking part, no time limit, not `concurrent`, nobody tracing) a `Sequence`, one small hand-written future, not boxed, set up at its first poll; any other the general driver's `async` state, boxed once (some hundred bytes: a pointer moves cheaper through the caller's futures) |
//! | before anything | [`begin`] | [`begin`] |
//! | the chain | a [`Chain`] on the stack, walked by [`Chain::run_sync`] (without wrappers, straight to the plain implementations) | a `Sequence` walks the plain implementations itself; in the general driver, without wrappers, `run_async` straight on them (no `Chain` built); with some, a `Chain` in an `Arc` |
//! | the rest of the chain | [`Next`]: `&dyn SyncRest`, borrowed (the chain outlives the call on the stack) | `AsyncNext`: `Arc<dyn AsyncRest>` (a wrapper's future may hold it past any borrow) |
//! | a wrapper runs it | `next.call()` | `next.await` |
//! | a plain implementation | called under `catch_unwind` | started and polled under `catch_unwind` by one future (`Invoke`), within the hook's time limit if it has one |
//! | `concurrent` | (async only) | the plain implementations joined, outcomes taken in call order |
//! | each outcome | [`settle`], then [`Outcomes::take`] | the same |
//! | the depth counter | `depth::Level::enter` around the call | one level deeper while polled, so the count follows the task: raised in `Sequence`'s own poll, by `depth::Nested` around the general driver |
//! | after | [`end`] | [`end`] |
//!
//! # Why each speed trick exists
//!
//! A hook call is on every request path, most hooks have no
//! implementation, and tracing is usually off; each trick below is there
//! for one of those facts (numbers in BENCHMARKS.md).
//!
//! - **The idle check** (`caller::idle` and `Caller::idle_async`, inlined
//!   into the generated relay):
//!   a hook with no implementation, no monitor and nobody tracing answers
//!   its empty result from one atomic load (the hook's idle entry: the
//!   depth limit, or 0 when the hook has something to do or a change
//!   awaits publishing), the depth (an async call's at its poll) and the
//!   tracing level, without taking the snapshot. The entry is read
//!   first, since it alone turns away a hook with implementations, and
//!   lies at a fixed offset in the registry (an array, indexed by the
//!   relay's constant: no bounds check). The rest of the call is out of
//!   line so that the check inlines alone.
//! - **The async relay is a plain `fn`**: it decides idle or not when the
//!   call is made and returns `AsyncCall`, whose idle answer (the depth
//!   compared with the limit, then the empty result) inlines into the
//!   caller's future while the full call is polled, and dropped, out of
//!   line. Inside an `async fn` both outcomes left through one exit,
//!   which wrote the idle answer as two 8-byte stores that the caller's
//!   16-byte load of it could not be forwarded from. (Fifteenth session,
//!   criterion: 14.4 to 8.5 ns for an idle async call, 65 to 52 ns for
//!   one implementation.)
//! - **One frame per sync call**: that out-of-line rest takes the snapshot
//!   and is the whole call ([`call_sync`] and the context inlined into it,
//!   the context passed by reference, a call without wrappers straight to
//!   its plain implementations), where three frames copied the context from
//!   one to the next. Without a subset the loop over implementations tests
//!   nothing for it. (Issue 21, third round: 397 to 309 instructions for
//!   one implementation.)
//! - **The common async call unboxed**: `Sequence`, one hand-written
//!   future for plain implementations in sequence with nobody tracing, is
//!   held in the caller's future; the general driver's `async` state is
//!   boxed, a `malloc`/`free` and a copy of some hundred bytes per call.
//!   (Issue 21, third round: 1,111 to 719 instructions for one
//!   implementation, the hand loop 428.) A `Sequence` is made small (the
//!   call's context as snapshot, hook and subset, rebuilt at each poll; its
//!   outcomes set up at its first poll, in place) and raises the depth in
//!   its own poll instead of inside `depth::Nested`: made whole and wrapped,
//!   it was 152 bytes, copied three times by `memcpy` on its way into the
//!   relay's state. The general driver beside it is one `dyn` future in
//!   its box, its depth level and span inside, so that the choice between
//!   the two is cheap to move and to drop (issue 21, item 5: 713 to 625
//!   instructions).
//! - **Snapshots through `arc-swap`**: a sync call reads the snapshot
//!   without a lock and without touching a reference count; the async one
//!   holds arc-swap's guard. Changes are published lazily (registry).
//! - **Interned plugin names**: results, errors and spans carry
//!   `&'static str`, and leaving plugins out (`subset_hook_caller`)
//!   compares pointers, not strings.
//! - **Spans only when listened to**: [`call_span_if_listened`], and
//!   `impl_spans` decided once per call; with `tracing`'s `log` feature even
//!   a disabled span costs at every use.
//! - **Monitors off the path**: `inform` is `#[cold]` and skipped when no
//!   monitor is installed.
//! - **One value inline, more sized once**: a call that can collect one
//!   value at most (one plain implementation, or `firstresult`) keeps it
//!   in the results themselves and allocates nothing; any other reserves
//!   one slot per implementation. Which of the two is chosen once per call
//!   ([`Slots`]), so the loop tests nothing per implementation. A call's
//!   errors (`ErrorPolicy::Continue`) are boxed: one null word when there
//!   are none. (Issue 21: 579 to 378 instructions for a one-implementation
//!   sync call.)
//! - **An error's identity, not the error**: `from_next` keeps the id of
//!   the error a wrapper's `next` gave (an `AtomicU64`), so telling a
//!   wrapper's own error from the one it passed on costs one comparison.
//! - **Two drivers, not one**: the sync driver is not the async one polled
//!   once (measured above).
//! - **Panic isolation in one step**: `panics::catch` raises the "caught
//!   code" count, runs the implementation under `catch_unwind` and lowers
//!   the count after it returns (it returns either way), without a drop
//!   guard; an async implementation is one `Invoke` future (or a step of
//!   `Sequence`'s poll, which does the same) that starts it
//!   at its first poll and catches every poll, where a combinator per rule
//!   (catch the start, catch each poll, mark it caught, the time limit)
//!   each added a state, a poll and a drop. Without a time limit no future
//!   wraps it at all.
//! - **Collecting chosen at compile time**: [`Collect`] is zero-sized and
//!   the call's output type says how outcomes are collected (every value
//!   or the first `Some`), so neither the test per outcome nor the final
//!   conversion goes through a function pointer. (With the step above,
//!   issue 21: 69 to 43 instructions per sync implementation, 419 to 338
//!   per async one.)
//! - **Small async state**: an implementation's future holds the spec and
//!   a flag rather than the call's context, and the plain loop borrows the
//!   context from the call's state: the boxed call state went from 728 to
//!   488 bytes, copied once into its box per call.

#[cfg(feature = "async")]
mod asynchronous;
#[cfg(feature = "async")]
pub use asynchronous::AsyncNext;
#[cfg(feature = "async")]
pub(crate) use asynchronous::call_async;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::depth;
use crate::error::{HookError, HookResult};
use crate::hookimpl::ImplInfo;
use crate::hookspec::{ErrorPolicy, HookSpec};
use crate::monitoring::{self, HookCallInfo, Monitor};
use crate::panics;
use crate::registry::{HookImpl, HookImpls, Snapshot};
use crate::result::{Answer, Answers, Collect, Errors, Finish, Results};

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
    /// The context of a call of `hook`, one of `snapshot`'s hooks.
    #[inline(always)]
    pub(crate) fn new(
        snapshot: &'s Snapshot<S>,
        hook: &'s HookImpls<S>,
        skip: &'s [&'static str],
        impl_spans: bool,
    ) -> Self {
        CallCtx {
            hook,
            skip,
            monitors: &snapshot.monitors,
            max_depth: snapshot.max_depth,
            impl_spans,
        }
    }

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

/// Where a call's values go while it runs: one slot for a call that can
/// collect one value at most (one plain implementation, or `firstresult`),
/// which then allocates nothing; a vector sized once for any other. Chosen
/// once per call, so that the loop over implementations is compiled for
/// each and tests nothing per implementation (an inline-or-vector value
/// matched per implementation cost about 10 instructions each).
trait Slots<T>: Sized {
    fn with_room(expected: usize) -> Self;
    fn put(&mut self, answer: Answer<T>);
    fn into_answers(self) -> Answers<T>;
}

impl<T> Slots<T> for Option<Answer<T>> {
    fn with_room(_: usize) -> Self {
        None
    }
    #[inline]
    fn put(&mut self, answer: Answer<T>) {
        // Only plain implementations put, and there is one at most, or the
        // first answer ends a `firstresult` call.
        *self = Some(answer);
    }
    #[inline]
    fn into_answers(self) -> Answers<T> {
        self.map_or(Answers::Empty, Answers::One)
    }
}

impl<T> Slots<T> for Vec<Answer<T>> {
    fn with_room(expected: usize) -> Self {
        Vec::with_capacity(expected)
    }
    #[inline]
    fn put(&mut self, answer: Answer<T>) {
        self.push(answer);
    }
    #[inline]
    fn into_answers(self) -> Answers<T> {
        Answers::Many(self)
    }
}

/// Whether a call can collect one value at most (see [`Slots`]).
fn holds_one<T, O: Finish<T>>(collect: Collect<T, O>, expected: usize) -> bool {
    collect.first() || expected <= 1
}

/// Takes each implementation's outcome in call order and decides whether
/// the chain goes on: `firstresult` and the error policy, in one place.
struct Outcomes<T, O, A> {
    spec: &'static HookSpec,
    collect: Collect<T, O>,
    slots: A,
    errors: Errors,
    failed: Option<HookError>,
}

impl<T, O: Finish<T>, A: Slots<T>> Outcomes<T, O, A> {
    fn new(spec: &'static HookSpec, collect: Collect<T, O>, expected: usize) -> Self {
        Outcomes {
            spec,
            collect,
            slots: A::with_room(expected),
            errors: None,
            failed: None,
        }
    }

    #[inline]
    fn push(&mut self, plugin: &'static str, value: T) {
        self.slots.put(Answer { plugin, value });
    }

    #[inline]
    fn take(&mut self, plugin: &'static str, outcome: Result<T, HookError>) -> ControlFlow<()> {
        let value = match outcome {
            Ok(value) => value,
            Err(error) => return self.failed(plugin, error),
        };
        if !self.collect.first() {
            self.push(plugin, value);
            ControlFlow::Continue(())
        } else if self.collect.answers(&value) {
            self.push(plugin, value);
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
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
                self.errors.get_or_insert_default().push(error);
                ControlFlow::Continue(())
            }
        }
    }

    #[inline]
    fn finish(self) -> Result<O, HookError> {
        match self.failed {
            Some(error) => Err(error),
            None => Ok(self.collect.finish(Results {
                answers: self.slots.into_answers(),
                errors: self.errors,
            })),
        }
    }
}

// ---------------------------------------------------------------- chain

/// A call's state: what the generated relay passed in, for the wrappers'
/// `next` to come back to. `plain` runs a plain implementation, `wrap` a
/// wrapper given the rest of the chain (a [`Next`] or an [`AsyncNext`]).
struct Chain<'s, S: ?Sized, T, O, P, W> {
    ctx: CallCtx<'s, S>,
    plain: P,
    wrap: W,
    collect: Collect<T, O>,
    /// The identity of the error `next` produced last (see [`settle`]); 0
    /// for none.
    from_next: AtomicU64,
}

impl<S: ?Sized, T, O, P, W> Chain<'_, S, T, O, P, W> {
    /// Notes the error the rest of the chain produced, for [`settle`].
    fn note(&self, outcome: Result<O, HookError>) -> Result<O, HookError> {
        if let Err(error) = &outcome {
            self.from_next.store(error.id(), Ordering::Relaxed);
        }
        outcome
    }
}

/// What plain implementations, which have no `next`, pass to [`settle`].
static NO_NEXT: AtomicU64 = AtomicU64::new(0);

/// Before any implementation runs: the depth limit, the timer a time
/// limit needs (only async hooks have one), and the monitors.
#[inline(always)]
fn begin<S: ?Sized>(ctx: &CallCtx<'_, S>, depth: usize) -> Result<(), HookError> {
    let spec = ctx.spec();
    if depth > ctx.max_depth {
        return Err(HookError::too_deep(spec.name, ctx.max_depth));
    }
    #[cfg(feature = "async")]
    if let Some(limit) = spec.timeout {
        if !asynchronous::timer_runs_here() {
            // A time limit needs Tokio's timer: refuse up front, blaming no plugin.
            return Err(HookError::no_runtime(spec.name, limit));
        }
    }
    if !ctx.monitors.is_empty() {
        ctx.inform(|info| monitoring::before(ctx.monitors, info));
    }
    Ok(())
}

/// After the chain ran: the monitors.
#[inline]
fn end<S: ?Sized, O>(ctx: &CallCtx<'_, S>, outcome: &Result<O, HookError>) {
    if !ctx.monitors.is_empty() {
        ctx.inform(|info| monitoring::after(ctx.monitors, info, outcome));
    }
}

/// Turns what an implementation did into its outcome. `from_next` is the
/// identity of the error a wrapper's `next` produced, if any.
#[inline]
fn settle<R>(
    spec: &HookSpec,
    imp: &HookImpl<impl ?Sized>,
    caught: Caught<R>,
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

type Caught<R> = Result<HookResult<R>, Box<dyn std::any::Any + Send>>;

/// The call's span, if anyone listens: none is made otherwise (with
/// `tracing`'s `log` feature, even a disabled span costs at every use).
/// Inlined: without a subscriber it is one level comparison.
#[inline]
fn call_span_if_listened(spec: &HookSpec) -> Option<tracing::Span> {
    tracing::level_enabled!(tracing::Level::DEBUG)
        .then(|| call_span(spec))
        .filter(|span| !span.is_disabled())
}

// ----------------------------------------------------------------- sync

/// The rest of a sync hook's chain, handed to a wrapper. Consumed by
/// [`Next::call`], so it runs at most once; a wrapper that drops it
/// without calling it short-circuits every implementation after it.
///
/// ```
/// # use hookery::prelude::*;
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// # struct Store(u32);
/// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
/// struct Timing;
///
/// #[hookimpl]
/// impl Events for Timing {
///     #[hookimpl(wrapper)]
///     fn saved(&self, id: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
///         let started = std::time::Instant::now();
///         let outcome = next.call();                  // the plain implementations
///         println!("saved({id}) took {:?}", started.elapsed());
///         Ok(outcome?)                                // passed on, errors included
///     }
/// }
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("store", Store(0))?;
/// pm.register("timing", Timing)?;
/// assert_eq!(pm.hook().saved(1)?.into_values(), [1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Next<'n, O> {
    chain: &'n dyn SyncRest<O>,
    index: usize,
}

impl<O> Next<'_, O> {
    /// Runs the rest of the chain (inner wrappers, then the plain
    /// implementations) and returns its outcome.
    pub fn call(self) -> Result<O, HookError> {
        self.chain.run_rest(self.index)
    }
}

trait SyncRest<O> {
    fn run_rest(&self, from: usize) -> Result<O, HookError>;
}

impl<'s, S: ?Sized, T, O: Finish<T>, P, W> SyncRest<O> for Chain<'s, S, T, O, P, W>
where
    P: Fn(&'s S) -> HookResult<T>,
    W: Fn(&'s S, Next<'_, O>) -> HookResult<O>,
{
    fn run_rest(&self, from: usize) -> Result<O, HookError> {
        self.note(self.run_sync(from))
    }
}

impl<'s, S: ?Sized, T, O: Finish<T>, P, W> Chain<'s, S, T, O, P, W>
where
    P: Fn(&'s S) -> HookResult<T>,
    W: Fn(&'s S, Next<'_, O>) -> HookResult<O>,
{
    /// The chain from wrapper `from` on: the next wrapper taking part,
    /// handed the rest; after the last, the plain implementations.
    fn run_sync(&self, from: usize) -> Result<O, HookError> {
        let ctx = self.ctx;
        if let Some((at, w)) = ctx.wrapper_from(from) {
            let next = Next {
                chain: self,
                index: at + 1,
            };
            return invoke_sync(ctx, w, &self.from_next, || (self.wrap)(&w.plugin, next));
        }
        self.run_all_plain()
    }

    /// The plain implementations, their values kept in the slots that fit
    /// the call ([`Slots`]).
    #[inline]
    fn run_all_plain(&self) -> Result<O, HookError> {
        let ctx = self.ctx;
        let expected = ctx.hook.plain().len();
        if holds_one(self.collect, expected) {
            self.run_plain(Outcomes::<_, _, Option<_>>::new(
                ctx.spec(),
                self.collect,
                expected,
            ))
        } else {
            self.run_plain(Outcomes::<_, _, Vec<_>>::new(
                ctx.spec(),
                self.collect,
                expected,
            ))
        }
    }

    /// The plain implementations, in call order; without a subset, the
    /// loop tests nothing per implementation for it (and keeps one value
    /// fewer across each implementation's call, in a register).
    #[inline]
    fn run_plain(&self, outcomes: Outcomes<T, O, impl Slots<T>>) -> Result<O, HookError> {
        if self.ctx.skip.is_empty() {
            self.run_each(self.ctx.hook.plain().iter(), outcomes)
        } else {
            self.run_each(self.ctx.plain(), outcomes)
        }
    }

    #[inline]
    fn run_each(
        &self,
        impls: impl Iterator<Item = &'s HookImpl<S>>,
        mut outcomes: Outcomes<T, O, impl Slots<T>>,
    ) -> Result<O, HookError> {
        let ctx = self.ctx;
        for imp in impls {
            let outcome = invoke_sync(ctx, imp, &NO_NEXT, || (self.plain)(&imp.plugin));
            if outcomes.take(imp.info.plugin, outcome).is_break() {
                break;
            }
        }
        outcomes.finish()
    }
}

/// Runs one sync implementation under `catch_unwind`.
#[inline]
fn invoke_sync<S: ?Sized, R>(
    ctx: CallCtx<'_, S>,
    imp: &HookImpl<S>,
    from_next: &AtomicU64,
    run: impl FnOnce() -> HookResult<R>,
) -> Result<R, HookError> {
    if ctx.impl_spans {
        return invoke_sync_traced(ctx, imp, from_next, run);
    }
    settle(ctx.spec(), imp, panics::catch(run), from_next)
}

/// [`invoke_sync`] in the implementation's span.
#[inline(never)]
fn invoke_sync_traced<S: ?Sized, R>(
    ctx: CallCtx<'_, S>,
    imp: &HookImpl<S>,
    from_next: &AtomicU64,
    run: impl FnOnce() -> HookResult<R>,
) -> Result<R, HookError> {
    let span = impl_span(ctx.spec(), &imp.info);
    let caught = span.in_scope(|| panics::catch(run));
    let outcome = settle(ctx.spec(), imp, caught, from_next);
    record(&span, &outcome);
    outcome
}

/// Calls a sync hook. Inlined into the caller's one out-of-line function,
/// which takes the snapshot: one frame for the call instead of three, and
/// the context built in place rather than copied from frame to frame
/// (about 60 instructions a call).
#[inline(always)]
pub(crate) fn call_sync<'s, S: ?Sized, T, O: Finish<T>>(
    ctx: CallCtx<'s, S>,
    plain: impl Fn(&'s S) -> HookResult<T>,
    wrap: impl Fn(&'s S, Next<'_, O>) -> HookResult<O>,
    collect: Collect<T, O>,
) -> Result<O, HookError> {
    let (_level, depth) = depth::Level::enter();
    let span = call_span_if_listened(ctx.spec());
    let _entered = span.as_ref().map(tracing::Span::enter);
    let chain = Chain {
        ctx,
        plain,
        wrap,
        collect,
        from_next: AtomicU64::new(0),
    };
    let outcome = begin(&chain.ctx, depth).and_then(|()| {
        // Without wrappers, straight to the plain implementations: no
        // frame of `run_sync`, which wrappers re-enter through `next`.
        let outcome = if ctx.hook.wrappers().is_empty() {
            chain.run_all_plain()
        } else {
            chain.run_sync(0)
        };
        end(&chain.ctx, &outcome);
        outcome
    });
    if let Some(span) = &span {
        record(span, &outcome);
    }
    outcome
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
