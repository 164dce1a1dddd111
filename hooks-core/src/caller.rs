//! The caller behind every generated relay: picks the snapshot a call runs
//! on (live, a subset, or a fixed one for `call_extra` and historic replay,
//! see `historic`)
//! and hands it to the call loop.
//!
//! Generated code uses these methods; applications call hooks through the
//! relay (`manager.hook().my_hook(...)`).

#[cfg(feature = "async")]
use std::future::Future;
#[cfg(feature = "async")]
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "async")]
use std::task::{Context, Poll};

#[cfg(feature = "async")]
use futures_util::future::BoxFuture;

#[cfg(feature = "async")]
use crate::call_loop::AsyncNext;
use crate::call_loop::{self, CallCtx, Next};
use crate::depth;
use crate::error::{HookError, HookResult};
use crate::registry::{Shared, Snapshot};
use crate::result::{Collect, Finish, Results};

enum Source<'m, S: ?Sized> {
    Live(&'m Shared<S>),
    Fixed(Arc<Snapshot<S>>),
}

/// Calls hooks of spec `S` on a manager's plugins (or a chosen set of them).
/// Wrapped by the `<Trait>Relay` that `#[hookspec]` generates.
pub struct Caller<'m, S: ?Sized> {
    source: Source<'m, S>,
    /// Interned names of plugins left out, if any (`None` rather than an
    /// empty vector: a relay is made for every call, and this is one word
    /// to write and test instead of three).
    skip: Option<Box<[&'static str]>>,
}

#[cfg(feature = "async")]
pin_project_lite::pin_project! {
    /// An async hook call as the generated relay returns it: the empty
    /// result of a hook that had nothing to do when the call was made, or
    /// the call itself. Why the relay is not an `async fn`: call_loop.rs,
    /// "Why each speed trick exists".
    #[doc(hidden)]
    #[project = AsyncCallProj]
    pub enum AsyncCall<F, T, O> {
        /// Nothing to do: polling gives the empty result or, past the
        /// depth limit, the "too deep" error.
        Idle { call: IdleCall<T, O> },
        /// The call, on the snapshot taken when it was made.
        Called { #[pin] call: OutOfLine<F> },
    }
}

#[cfg(feature = "async")]
impl<F, T, O> Future for AsyncCall<F, T, O>
where
    F: Future<Output = Result<O, HookError>>,
    O: Finish<T>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project() {
            AsyncCallProj::Idle { call } if depth::current() < call.limit => {
                Poll::Ready(Ok(call.collect.finish(Results::default())))
            }
            AsyncCallProj::Idle { call } => Poll::Ready(Err(call.too_deep())),
            AsyncCallProj::Called { call } => poll_call(call.project().inner, cx),
        }
    }
}

/// The full call's poll, out of line so that the idle answer's poll
/// inlines alone into the caller's future.
#[cfg(feature = "async")]
#[inline(never)]
fn poll_call<F: Future>(call: Pin<&mut Option<F>>, cx: &mut Context<'_>) -> Poll<F::Output> {
    let call = call.as_pin_mut();
    call.expect("polled after its call was dropped").poll(cx)
}

/// An async call of a hook that had nothing to do when the call was made.
/// Its depth is judged when it is polled, where it runs, as a full
/// call's is: a call made outside any other and awaited inside one at
/// the depth limit is too deep.
#[cfg(feature = "async")]
#[doc(hidden)]
pub struct IdleCall<T, O> {
    collect: Collect<T, O>,
    /// The manager's depth limit (the hook's idle entry).
    limit: usize,
    hook: &'static str,
}

#[cfg(feature = "async")]
impl<T, O> IdleCall<T, O> {
    /// Out of line, so that the empty answer is written alone (as one
    /// 16-byte store, which the caller's load of it can be forwarded
    /// from; see `Results`).
    #[cold]
    #[inline(never)]
    fn too_deep(&self) -> HookError {
        HookError::too_deep(self.hook, self.limit)
    }
}

#[cfg(feature = "async")]
pin_project_lite::pin_project! {
    /// The full call inside [`AsyncCall`], dropped out of line: the drop
    /// of an `AsyncCall` is then small enough to inline into the caller's
    /// future, where the idle answer has nothing to drop. (Inline, the
    /// call's drop made it a function call per idle call: 4.5 to 7 ns in
    /// a plain `async` loop.)
    #[doc(hidden)]
    pub struct OutOfLine<F> {
        #[pin]
        inner: Option<F>,
    }
    impl<F> PinnedDrop for OutOfLine<F> {
        fn drop(this: Pin<&mut Self>) {
            drop_call(this.project().inner)
        }
    }
}

#[cfg(feature = "async")]
impl<F> OutOfLine<F> {
    #[doc(hidden)]
    pub fn new(call: F) -> Self {
        OutOfLine { inner: Some(call) }
    }
}

/// Drops the call in place (it is pinned), out of line.
#[cfg(feature = "async")]
#[inline(never)]
fn drop_call<F>(mut call: Pin<&mut Option<F>>) {
    call.set(None)
}

/// The snapshot an async call holds while it runs (see [`Caller::call_async`]).
#[cfg(feature = "async")]
pub struct CallSnapshot<S: ?Sized>(SnapshotRef<S>);

#[cfg(feature = "async")]
enum SnapshotRef<S: ?Sized> {
    /// arc-swap's guard: no reference count touched on the way in or out.
    Live(arc_swap::Guard<Arc<Snapshot<S>>>),
    Fixed(Arc<Snapshot<S>>),
}

#[cfg(feature = "async")]
impl<S: ?Sized> CallSnapshot<S> {
    fn get(&self) -> &Snapshot<S> {
        match &self.0 {
            SnapshotRef::Live(guard) => guard,
            SnapshotRef::Fixed(arc) => arc,
        }
    }
}

impl<'m, S: ?Sized + Send + Sync> Caller<'m, S> {
    pub(crate) fn live(shared: &'m Shared<S>) -> Self {
        Caller {
            source: Source::Live(shared),
            skip: None,
        }
    }

    pub(crate) fn fixed(snapshot: Arc<Snapshot<S>>) -> Self {
        Caller {
            source: Source::Fixed(snapshot),
            skip: None,
        }
    }

    /// The manager's registry this caller calls on, if it calls on the
    /// live plugins (not on a fixed snapshot).
    pub(crate) fn shared(&self) -> Option<&'m Shared<S>> {
        match &self.source {
            Source::Live(shared) => Some(shared),
            Source::Fixed(_) => None,
        }
    }

    /// This caller, leaving out the plugins `other` leaves out.
    pub(crate) fn skipping_as(mut self, other: &Caller<'_, S>) -> Self {
        self.skip = other.skip.clone();
        self
    }

    pub(crate) fn skipping(mut self, skip: Vec<&'static str>) -> Self {
        self.skip = (!skip.is_empty()).then(|| skip.into_boxed_slice());
        self
    }

    /// The interned names of the plugins left out of calls, if any.
    #[inline(always)]
    fn skip(&self) -> &[&'static str] {
        self.skip.as_deref().unwrap_or_default()
    }

    /// A call of async hook number `hook` (named `name`) if it has nothing
    /// to do: no implementation, no monitor, nobody tracing calls.
    /// Answered from a few atomic loads, without taking the snapshot;
    /// `None` on a fixed snapshot (`call_extra`, replays) and while a
    /// change awaits publishing (the full call publishes it).
    #[cfg(feature = "async")]
    #[doc(hidden)]
    #[inline]
    pub fn idle_async<T, O>(
        &self,
        hook: usize,
        name: &'static str,
        collect: Collect<T, O>,
    ) -> Option<IdleCall<T, O>> {
        let limit = match &self.source {
            Source::Live(shared) => shared.idle_limit(hook),
            Source::Fixed(_) => 0,
        };
        (limit != 0 && !tracing::level_enabled!(tracing::Level::DEBUG)).then_some(IdleCall {
            collect,
            limit,
            hook: name,
        })
    }

    /// Calls sync hook number `hook`: `plain` invokes a plain
    /// implementation, `wrap` a wrapper.
    #[doc(hidden)]
    #[inline]
    pub fn call<T, O: Finish<T>>(
        &self,
        hook: usize,
        plain: impl Fn(&S) -> HookResult<T>,
        wrap: impl Fn(&S, Next<'_, O>) -> HookResult<O>,
        collect: Collect<T, O>,
    ) -> Result<O, HookError> {
        // One out-of-line function per source, given its parts: the live
        // call does not test the source again nor reload it from the relay
        // (10 instructions of a one-implementation call).
        match &self.source {
            Source::Live(shared) => {
                if idle(shared, hook) {
                    return Ok(collect.finish(Results::default()));
                }
                call_live(shared, self.skip(), hook, plain, wrap, collect)
            }
            Source::Fixed(snapshot) => {
                call_fixed(snapshot, self.skip(), hook, plain, wrap, collect)
            }
        }
    }

    /// The snapshot an async call will run on; the call borrows it.
    #[cfg(feature = "async")]
    #[doc(hidden)]
    pub fn snapshot(&self) -> CallSnapshot<S> {
        CallSnapshot(match &self.source {
            Source::Live(shared) => SnapshotRef::Live(shared.load()),
            Source::Fixed(snapshot) => SnapshotRef::Fixed(snapshot.clone()),
        })
    }

    /// Calls async hook number `hook` on `snapshot`.
    #[cfg(feature = "async")]
    #[doc(hidden)]
    #[inline]
    pub fn call_async<'s, T, O>(
        &'s self,
        snapshot: &'s CallSnapshot<S>,
        hook: usize,
        plain: impl Fn(&'s S) -> BoxFuture<'s, HookResult<T>> + Send + Sync + 's,
        wrap: impl Fn(&'s S, AsyncNext<'s, O>) -> BoxFuture<'s, HookResult<O>> + Send + Sync + 's,
        collect: Collect<T, O>,
    ) -> impl Future<Output = Result<O, HookError>> + Send + 's
    where
        T: Send + 's,
        O: Send + Finish<T> + 's,
    {
        let snapshot = snapshot.get();
        call_loop::call_async(
            snapshot,
            &snapshot.hooks[hook],
            self.skip(),
            plain,
            wrap,
            collect,
        )
    }
}

/// Whether a sync call of `hook` on the live registry has nothing to do
/// and is within the depth limit. The idle entry first: it alone decides
/// for a hook with implementations (its entry is 0), before the depth and
/// the tracing level are read.
#[inline(always)]
fn idle<S: ?Sized>(shared: &Shared<S>, hook: usize) -> bool {
    shared.idle(hook, depth::current()) && !tracing::level_enabled!(tracing::Level::DEBUG)
}

/// [`Caller::call`] past the idle check, on the live registry: out of
/// line, so that the idle check inlines into the relay without the whole
/// call's frame.
#[inline(never)]
fn call_live<S: ?Sized + Send + Sync, T, O: Finish<T>>(
    shared: &Shared<S>,
    skip: &[&'static str],
    hook: usize,
    plain: impl Fn(&S) -> HookResult<T>,
    wrap: impl Fn(&S, Next<'_, O>) -> HookResult<O>,
    collect: Collect<T, O>,
) -> Result<O, HookError> {
    call_on_snapshot(&shared.load(), skip, hook, plain, wrap, collect)
}

/// [`Caller::call`] on a fixed snapshot (`call_extra`, historic replay).
#[inline(never)]
fn call_fixed<S: ?Sized + Send + Sync, T, O: Finish<T>>(
    snapshot: &Snapshot<S>,
    skip: &[&'static str],
    hook: usize,
    plain: impl Fn(&S) -> HookResult<T>,
    wrap: impl Fn(&S, Next<'_, O>) -> HookResult<O>,
    collect: Collect<T, O>,
) -> Result<O, HookError> {
    call_on_snapshot(snapshot, skip, hook, plain, wrap, collect)
}

/// A sync call on `snapshot`.
#[inline(always)]
fn call_on_snapshot<S: ?Sized + Send + Sync, T, O: Finish<T>>(
    snapshot: &Snapshot<S>,
    skip: &[&'static str],
    hook: usize,
    plain: impl Fn(&S) -> HookResult<T>,
    wrap: impl Fn(&S, Next<'_, O>) -> HookResult<O>,
    collect: Collect<T, O>,
) -> Result<O, HookError> {
    let impl_spans = tracing::enabled!(tracing::Level::TRACE);
    let ctx = CallCtx::new(snapshot, &snapshot.hooks[hook], skip, impl_spans);
    call_loop::call_sync(ctx, plain, wrap, collect)
}
