//! A pluggy-style hook engine: hook specifications are Rust traits, plugins
//! implement the hooks they care about, and a [`PluginManager`] fans every
//! call out to the implementations in a defined order.
//!
//! # Features
//!
//! Without features the engine runs sync hooks and depends on `anyhow`,
//! `arc-swap` and `tracing` alone. `async` adds `async fn`
//! hooks (with `concurrent` and `timeout_ms`, on Tokio's timer);
//! `discovery` adds `linked_plugin!` and
//! `PluginManager::load_linked_plugins`, pluggy's entry points at link
//! time. The example below uses both async hooks (`features = ["async"]`)
//! and, to run one, the `futures` crate's `block_on` (any executor does).
//!
//! ```
//! use hookery::prelude::*;
//!
//! /// The hooks of our application.
//! #[hookspec]
//! pub trait Events {
//!     /// Every plugin may return a tag for the new user.
//!     fn on_user_created(&self, name: &str) -> HookResult<String>;
//!
//!     /// The first plugin that recognises the token answers.
//!     #[hookspec(firstresult)]
//!     fn authenticate(&self, token: &str) -> HookResult<Option<u32>>;
//!
//!     /// Async hooks are `async fn`.
//!     async fn on_shutdown(&self) -> HookResult<()>;
//! }
//!
//! struct Audit;
//!
//! #[hookimpl]
//! impl Events for Audit {
//!     fn on_user_created(&self, name: &str) -> HookResult<String> {
//!         Ok(format!("audited {name}"))
//!     }
//! }
//!
//! struct Tokens;
//!
//! #[hookimpl]
//! impl Events for Tokens {
//!     #[hookimpl(tryfirst)]
//!     fn on_user_created(&self, name: &str) -> HookResult<String> {
//!         Ok(format!("token for {name}"))
//!     }
//!
//!     fn authenticate(&self, token: &str) -> HookResult<Option<u32>> {
//!         Ok((token == "secret").then_some(42))
//!     }
//!
//!     async fn on_shutdown(&self) -> HookResult<()> {
//!         Ok(())
//!     }
//! }
//!
//! let pm = PluginManager::<dyn Events>::new();
//! pm.register("audit", Audit)?;
//! pm.register("tokens", Tokens)?;
//!
//! // Results come in call order, each with the plugin that returned it.
//! let created = pm.hook().on_user_created("ada")?;
//! assert_eq!(created.plugins().collect::<Vec<_>>(), ["tokens", "audit"]);
//!
//! // firstresult: the first `Some`, and who answered.
//! let who = pm.hook().authenticate("secret")?.unwrap();
//! assert_eq!((who.plugin, who.value), ("tokens", 42));
//!
//! // Async hooks return a future (`futures` is a crate of its own).
//! futures::executor::block_on(pm.hook().on_shutdown())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Specs
//!
//! `#[hookspec]` on a trait makes each method a hook. Each method takes
//! `&self`, then arguments that every implementation receives (references, or
//! values that are `Clone`), and returns [`HookResult<T>`]. A default body is
//! optional: the engine only ever calls the hooks a plugin implements.
//! `#[hookspec]` adds `Send + Sync + 'static` to the trait's supertraits and
//! generates `<Trait>Relay`, the type of [`PluginManager::hook`], with one
//! method per hook (for an async hook, a method returning the call's
//! future, decided when it is made: see "Tracing and monitoring"). Async
//! hooks compile through `#[async_trait]` (so that the trait works as
//! `dyn`); rustdoc shows them as written, `async fn`,
//! when it documents the spec's crate (a `#[cfg(doc)]` form of the trait,
//! whose only addition is `where Self: Sized`). Options on a method,
//! `#[hookspec(...)]`:
//!
//! | option | meaning |
//! |---|---|
//! | `firstresult` | returns `HookResult<Option<T>>`; the call stops at the first `Some` and returns `Option<Answer<T>>` |
//! | `historic` | sync only; arguments owned (`Clone + Send + Sync + 'static`). The call is remembered and replayed to plugins registered later |
//! | `on_error = "continue"` | every implementation runs; errors are logged and kept in [`Results::errors`] (with `firstresult`, logged only: a failing implementation is skipped, and the call answers `None` if all fail). Default `"propagate"` |
//! | `concurrent` | async only: all plain implementations run at once; results still in call order |
//! | `timeout_ms = N` | async only: each plain implementation may take N ms; overrunning is an error ([`HookErrorKind::TimedOut`]): one still pending at the limit is dropped there; the limit is kept between polls, so one that blocks its thread instead of awaiting cannot be stopped, and its answer stands. Needs a Tokio runtime with its time driver, else [`HookErrorKind::NoRuntime`] |
//! | `warn_on_impl = "why"` | implementing the hook is deprecated: registering a plugin that does logs a warning naming plugin and hook |
//!
//! A historic hook `h` also gets `h_with_results(args..., callback)`
//! (pluggy's `call_historic(result_callback=...)`): the callback receives
//! each [`Answer`] of this call and, later, of every replay of it to a
//! newly registered plugin.
//!
//! Results are typed: every implementation that ran gives its value, so a
//! `HookResult<()>` hook returns one `()` per implementation and a
//! `HookResult<Option<T>>` hook one `Option` each (pluggy drops `None`);
//! [`Results::somes`] keeps only the answers.
//!
//! What pluggy refuses is refused at compile time. A hook both historic and
//! firstresult:
//!
//! ```compile_fail
//! # use hookery::prelude::*;
//! #[hookspec]
//! pub trait Events {
//!     #[hookspec(historic, firstresult)]
//!     fn configure(&self, x: u32) -> HookResult<Option<u32>>;
//!     // error: a hook is historic or firstresult, not both
//! }
//! ```
//!
//! A spec without hooks:
//!
//! ```compile_fail
//! # use hookery::prelude::*;
//! #[hookspec]
//! pub trait Nothing {}
//! // error: a hook spec trait needs at least one hook method
//! ```
//!
//! # Impls
//!
//! `#[hookimpl]` on `impl Trait for Plugin` records which hooks the plugin
//! implements (only those are called). Options on a method, `#[hookimpl(...)]`:
//! `priority = N` (i32, higher first, default 0), `tryfirst`, `trylast`,
//! `before = "plugin"` / `before = ["a", "b"]`, `after = ...` (see Call
//! order), and `wrapper`. A wrapper takes one more argument, `next`, the
//! rest of the chain, and returns what the whole call returns:
//!
//! ```
//! # use hookery::prelude::*;
//! # #[hookspec] pub trait Events { fn compute(&self, x: u32) -> HookResult<u32>; }
//! struct Doubler;
//!
//! #[hookimpl]
//! impl Events for Doubler {
//!     #[hookimpl(wrapper)]
//!     fn compute(&self, x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
//!         let mut results = next.call()?;          // run the rest of the chain
//!         results.push("doubler", x * 2);          // observe or change the outcome
//!         Ok(results)
//!     }
//! }
//! # let pm = PluginManager::<dyn Events>::new();
//! # pm.register("doubler", Doubler).unwrap();
//! # assert_eq!(pm.hook().compute(2).unwrap().into_values(), [4]);
//! ```
//!
//! An async wrapper gets `AsyncNext` (feature `async`) and writes
//! `next.await`. `next` can run at most once (it is consumed); a wrapper
//! that returns without running it short-circuits every implementation
//! after it. For a `firstresult` hook, `next` yields `Option<Answer<T>>`.
//!
//! # Call order
//!
#![doc = include_str!("../docs/call-order.md")]
//!
//! # Errors
//!
//! Under the default policy the first failing implementation stops the
//! chain; wrappers already entered see the error from `next` (and may
//! swallow or replace it), and the caller gets a [`HookError`] naming the
//! hook and the plugin. A panic in any implementation is caught and becomes
//! such an error. Nested hook calls are limited in depth
//! ([`PluginManager::set_max_depth`]); past the limit the call fails with an
//! error naming the chain.
//!
//! Mistakes in a plugin are compile errors. An implementation of a hook the
//! spec does not have:
//!
//! ```compile_fail,E0407
//! # use hookery::prelude::*;
//! # #[hookspec] pub trait Events { fn compute(&self, x: u32) -> HookResult<u32>; }
//! struct P;
//! #[hookimpl]
//! impl Events for P {
//!     fn comptue(&self, x: u32) -> HookResult<u32> { Ok(x) }
//!     // error[E0407]: method `comptue` is not a member of trait `Events`
//! }
//! ```
//!
//! An implementation with the wrong signature:
//!
//! ```compile_fail,E0053
//! # use hookery::prelude::*;
//! # #[hookspec] pub trait Events { fn compute(&self, x: u32) -> HookResult<u32>; }
//! struct P;
//! #[hookimpl]
//! impl Events for P {
//!     fn compute(&self, x: String) -> HookResult<u32> { Ok(0) }
//!     // error[E0053]: method `compute` has an incompatible type for trait
//!     //               expected `u32`, found `String`
//! }
//! ```
//!
//! A `&mut` argument is refused: every implementation gets the same
//! argument, so it is shared.
//!
//! ```compile_fail
//! # use hookery::prelude::*;
//! #[hookspec]
//! pub trait Events {
//!     fn collect(&self, into: &mut Vec<String>) -> HookResult<()>;
//!     // error: a hook argument cannot be `&mut`: every implementation
//!     // receives the same argument, so it is shared; take `&RefCell<T>`
//!     // (sync hooks) or `&Mutex<T>` (async hooks, or across threads) ...
//! }
//! ```
//!
//! # Panics
//!
//! A panic in an implementation is caught and returned as a [`HookError`]
//! ([`HookError::is_panic`]); the process goes on. Rust still runs the
//! panic hook at the panic, and the default one prints the report to stderr
//! (with a backtrace under `RUST_BACKTRACE=1`). A host that wants such
//! panics only as errors calls [`quiet_plugin_panics`] at startup.
//!
//! # Plugin names
//!
//! A plugin's name is interned at registration: each distinct name is kept
//! for the life of the process, so that results, errors and spans carry a
//! `&'static str` and a call never copies or counts a name. Registering
//! and unregistering the same names costs nothing more; a host that
//! registers unboundedly many *distinct* names grows by their length.
//!
//! # Tracing and monitoring
//!
//! Every call is a `tracing` span `hook` (DEBUG, fields `hook`, `outcome`)
//! and every implementation a span `hookimpl` (TRACE, fields `hook`,
//! `plugin`, `wrapper`, `outcome`); a subscriber that records span closes
//! gives their durations. [`PluginManager::add_hookcall_monitoring`] adds
//! before/after callbacks.
//!
//! A call of a hook with nothing to do (no implementation, no monitor) is
//! answered by the relay from one atomic load of the hook's entry, without
//! taking the registry's snapshot, unless a subscriber enables DEBUG
//! anywhere (`tracing`'s global level check: then the call takes the full
//! path, to make its span). That holds for the first 64 hooks of a spec; a
//! hook declared past them takes the full path, with the same outcome.
//!
//! An async call is decided when its future is made (the relay method
//! called), not when it is first polled: it runs on the plugins registered
//! then and holds that snapshot until it is dropped; a hook with nothing
//! to do then answers empty, the tracing level judged then too. Its depth,
//! like every call's, is judged where it runs: a call made outside any
//! other and awaited inside one at the depth limit is too deep. Write
//! `async { relay.my_hook(x).await }` for a call decided at its first
//! poll.

#![warn(missing_docs)]

// Modules, each one role, each using only those listed before it:
// names, error, hookspec, hookimpl, order, monitoring, result, depth,
// panics, registry, call_loop, caller, spec, historic, manager, discovery.
mod call_loop;
mod caller;
mod depth;
#[cfg(feature = "discovery")]
mod discovery;
mod error;
mod historic;
mod hookimpl;
mod hookspec;
mod manager;
mod monitoring;
mod names;
mod order;
mod panics;
mod registry;
mod result;
mod spec;

#[cfg(feature = "async")]
pub use call_loop::AsyncNext;
pub use call_loop::Next;
#[cfg(feature = "discovery")]
pub use discovery::{LinkedPlugin, linked_plugins};
pub use error::{HookError, HookErrorKind, HookResult, ManagerError, PluginError};
pub use hookery_macros::{hookimpl, hookspec};
pub use hookimpl::{ImplDecl, ImplInfo, Implements, Placement, Plugin, Tier};
pub use hookspec::{ErrorPolicy, HookSpec};
pub use manager::PluginManager;
pub use monitoring::{HookCallInfo, MonitoringHandle};
pub use panics::quiet_plugin_panics;
pub use registry::DEFAULT_MAX_DEPTH;
pub use result::{Answer, Results};
pub use spec::Spec;

/// `anyhow`, for building [`PluginError`]s (`anyhow::anyhow!`, `bail!`, `Context`).
pub use anyhow;
/// The `#[async_trait]` attribute the macros apply to async hooks.
#[cfg(feature = "async")]
pub use async_trait::async_trait;

/// What a spec crate or a plugin needs in scope: the macros, the manager,
/// and the types hook signatures use.
pub mod prelude {
    #[cfg(feature = "async")]
    pub use crate::AsyncNext;
    pub use crate::{
        Answer, HookError, HookResult, Next, Plugin, PluginError, PluginManager, Results, hookimpl,
        hookspec,
    };
    // The macros' expansions name `hookery::...`: this makes that path
    // resolve in crates that reach the engine through a re-export or under
    // another name (as a renamed dependency).
    #[doc(hidden)]
    pub use crate as hookery;
}

/// The README's examples, compiled and run as doc tests (the workspace's
/// README shows the same, checked by hookspecs/tests/docs.rs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// What only the code `#[hookspec]` generates uses: not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::caller::Caller;
    #[cfg(feature = "async")]
    pub use crate::caller::{AsyncCall, CallSnapshot, IdleCall, OutOfLine};
    #[cfg(feature = "discovery")]
    pub use crate::discovery::__erase as erase;
    pub use crate::result::{Collect, Finish};
    #[cfg(feature = "async")]
    pub use futures_util::future::BoxFuture;
    #[cfg(feature = "discovery")]
    pub use inventory;

    /// `#[hookimpl]`'s check that an implementation of `hook` is async
    /// exactly when the spec's hook is: fails the build with `write_async`
    /// or `write_sync`. A hook the spec lacks is rustc's to report (E0407).
    pub const fn check_asyncness<S: crate::Spec + ?Sized>(
        hook: &str,
        is_async: bool,
        write_async: &'static str,
        write_sync: &'static str,
    ) {
        let mut i = 0;
        while i < S::HOOKS.len() {
            let spec = &S::HOOKS[i];
            if same(spec.name, hook) {
                if spec.is_async && !is_async {
                    panic!("{}", write_async);
                }
                if !spec.is_async && is_async {
                    panic!("{}", write_sync);
                }
            }
            i += 1;
        }
    }

    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// The body `#[hookspec]` gives a hook method without a default: the
    /// engine never calls it.
    #[track_caller]
    pub fn not_implemented(spec: &str, hook: &str) -> ! {
        panic!(
            "hook `{spec}::{hook}` called on a plugin that does not implement it; \
             call hooks through PluginManager::hook()"
        )
    }
}
