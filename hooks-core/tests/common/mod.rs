//! Shared by the integration tests: two hook specs (sync and async) and
//! `Probe`, one configurable plugin type that implements every hook of
//! both, plainly and as a wrapper. A test builds probes with the behaviour
//! it needs and registers them with `Plugin::from_parts`, declaring per
//! probe which hooks it implements and with which options (so one plugin
//! type covers every combination of tier, priority and wrapper).
//!
//! Every probe writes what it does into a shared `Log`: `name` when a plain
//! implementation runs (async: when it finishes), `name:before` and
//! `name:after` around a wrapper's `next`.

#![allow(dead_code)]

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hookery::prelude::*;
use hookery::{ImplDecl, Implements, ManagerError, Plugin, Spec, Tier};
use tokio::sync::{Barrier, Notify};

/// Sync hooks, one per calling convention.
#[hookspec]
pub trait Hooks {
    /// Default policy (propagate), all results.
    fn run(&self, x: u32) -> HookResult<u32>;
    /// The first `Some` answers.
    #[hookspec(firstresult)]
    fn first(&self, x: u32) -> HookResult<Option<u32>>;
    /// Errors are kept beside the results.
    #[hookspec(on_error = "continue")]
    fn notify(&self, x: u32) -> HookResult<u32>;
    /// Remembered and replayed to plugins registered later.
    #[hookspec(historic)]
    fn configure(&self, x: u32) -> HookResult<u32>;
}

/// Async hooks, one per calling convention.
#[hookspec]
pub trait AsyncHooks {
    /// Default policy (propagate), all results, one at a time.
    async fn run(&self, x: u32) -> HookResult<u32>;
    /// The first `Some` answers.
    #[hookspec(firstresult)]
    async fn first(&self, x: u32) -> HookResult<Option<u32>>;
    /// Errors are kept beside the results.
    #[hookspec(on_error = "continue")]
    async fn notify(&self, x: u32) -> HookResult<u32>;
    /// All plain implementations at once.
    #[hookspec(concurrent)]
    async fn together(&self, x: u32) -> HookResult<u32>;
    /// 50 ms per implementation; an overrun fails the call.
    #[hookspec(timeout_ms = 50)]
    async fn limited(&self, x: u32) -> HookResult<u32>;
    /// 50 ms per implementation; an overrun is kept beside the results.
    #[hookspec(timeout_ms = 50, on_error = "continue")]
    async fn limited_continue(&self, x: u32) -> HookResult<u32>;
}

/// A log shared by the probes of one test.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    /// Everything logged so far, and clears the log.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The typed error a failing probe returns.
#[derive(Debug, PartialEq, Eq)]
pub struct Boom(pub &'static str);

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boom from {}", self.0)
    }
}

impl std::error::Error for Boom {}

/// The panic message of probe `name`.
pub fn panic_text(name: &str) -> String {
    format!("{name} panicked on purpose")
}

/// What a plain implementation does.
#[derive(Clone, Copy, Debug)]
pub enum Act {
    /// `Ok(v + x)`, or `Ok(Some(v + x))` for a firstresult hook.
    Value(u32),
    /// `Ok(None)` for a firstresult hook (`Ok(x)` elsewhere).
    Nothing,
    /// `Err(Boom(name))`.
    Fail,
    /// Panics with [`panic_text`].
    Panic,
}

/// What an async plain implementation awaits before it acts.
#[derive(Clone, Default)]
pub enum Gate {
    /// Nothing.
    #[default]
    Ready,
    /// One `yield_now`, so that what follows happens on a later poll.
    Yield,
    /// Never completes (`std::future::pending`).
    Pending,
    /// Waits at the barrier.
    Barrier(Arc<Barrier>),
    /// Waits for a notification.
    Wait(Arc<Notify>),
    /// Notifies, then goes on.
    Signal(Arc<Notify>),
    /// Notifies `entered`, then waits for `release`.
    Hold {
        entered: Arc<Notify>,
        release: Arc<Notify>,
    },
}

/// What a wrapper does around `next`.
#[derive(Clone, Copy, Debug)]
pub enum Wrap {
    /// Returns the outcome of `next` unchanged.
    Pass,
    /// Fails with `Boom(name)` without running `next`.
    FailBefore,
    /// Runs `next`, then fails with `Boom(name)` whatever it returned.
    FailAfter,
    /// Panics without running `next`.
    PanicBefore,
    /// Runs `next`, then panics.
    PanicAfter,
    /// Returns a result of its own (`v` from this wrapper) without running `next`.
    Skip(u32),
    /// Runs `next`; if it succeeded, returns a result of its own instead.
    Replace(u32),
    /// Runs `next`; if it failed, returns a result of its own instead.
    Recover(u32),
}

/// What a wrapper's own result looks like: `v` answered by the wrapper.
pub trait Output: Sized {
    fn own(plugin: &'static str, value: u32) -> Self;
}

impl Output for Results<u32> {
    fn own(plugin: &'static str, value: u32) -> Self {
        let mut results = Results::default();
        results.push(plugin, value);
        results
    }
}

impl Output for Option<Answer<u32>> {
    fn own(plugin: &'static str, value: u32) -> Self {
        Some(Answer { plugin, value })
    }
}

/// The configurable plugin. Build with [`probe`], register with
/// [`Probe::register`].
pub struct Probe {
    pub name: &'static str,
    log: Log,
    act: Act,
    gate: Gate,
    wrap: Wrap,
    dropped: Option<Arc<AtomicBool>>,
}

/// A probe named `name` (the name it must be registered under) that
/// answers `Act::Value(0)`, awaits nothing and wraps with `Wrap::Pass`.
pub fn probe(name: &'static str, log: &Log) -> Probe {
    Probe {
        name,
        log: log.clone(),
        act: Act::Value(0),
        gate: Gate::Ready,
        wrap: Wrap::Pass,
        dropped: None,
    }
}

impl Probe {
    pub fn act(mut self, act: Act) -> Self {
        self.act = act;
        self
    }

    pub fn value(self, v: u32) -> Self {
        self.act(Act::Value(v))
    }

    pub fn gate(mut self, gate: Gate) -> Self {
        self.gate = gate;
        self
    }

    pub fn wrap(mut self, wrap: Wrap) -> Self {
        self.wrap = wrap;
        self
    }

    /// Sets `flag` when the probe is dropped.
    pub fn drop_flag(mut self, flag: &Arc<AtomicBool>) -> Self {
        self.dropped = Some(flag.clone());
        self
    }

    /// The probe as a plugin of spec `S` declaring exactly `decls`.
    pub fn plugin<S: Spec + ?Sized>(self, decls: &[ImplDecl]) -> Plugin<S>
    where
        Probe: Implements<S>,
    {
        let object = <Probe as Implements<S>>::into_spec(Arc::new(self));
        Plugin::from_parts(object, decls.to_vec())
    }

    /// Registers the probe under its name, declaring exactly `decls`.
    pub fn register<S: Spec + ?Sized>(
        self,
        pm: &PluginManager<S>,
        decls: &[ImplDecl],
    ) -> Result<(), ManagerError>
    where
        Probe: Implements<S>,
    {
        let name = self.name;
        pm.register_plugin(name, self.plugin(decls))
    }

    fn outcome<T>(&self, value: impl FnOnce(u32) -> T, nothing: T) -> HookResult<T> {
        self.log.push(self.name);
        match self.act {
            Act::Value(v) => Ok(value(v)),
            Act::Nothing => Ok(nothing),
            Act::Fail => Err(Boom(self.name).into()),
            Act::Panic => panic!("{}", panic_text(self.name)),
        }
    }

    /// A plain implementation of a hook returning `u32`.
    pub fn answer(&self, x: u32) -> HookResult<u32> {
        self.outcome(|v| v + x, x)
    }

    /// A plain implementation of a firstresult hook.
    pub fn maybe(&self, x: u32) -> HookResult<Option<u32>> {
        self.outcome(|v| Some(v + x), None)
    }

    async fn pass_gate(&self) {
        match &self.gate {
            Gate::Ready => {}
            Gate::Yield => tokio::task::yield_now().await,
            Gate::Pending => std::future::pending::<()>().await,
            Gate::Barrier(barrier) => {
                barrier.wait().await;
            }
            Gate::Wait(notify) => notify.notified().await,
            Gate::Signal(notify) => notify.notify_one(),
            Gate::Hold { entered, release } => {
                entered.notify_one();
                release.notified().await;
            }
        }
    }

    /// The part of a wrapper before `next`: `Some` to return early.
    fn before<O: Output>(&self) -> Option<HookResult<O>> {
        self.log.push(format!("{}:before", self.name));
        match self.wrap {
            Wrap::FailBefore => Some(Err(Boom(self.name).into())),
            Wrap::PanicBefore => panic!("{}", panic_text(self.name)),
            Wrap::Skip(v) => Some(Ok(O::own(self.name, v))),
            _ => None,
        }
    }

    /// The part of a wrapper after `next`.
    fn after<O: Output>(&self, outcome: Result<O, HookError>) -> HookResult<O> {
        self.log.push(format!("{}:after", self.name));
        match self.wrap {
            Wrap::FailAfter => Err(Boom(self.name).into()),
            Wrap::PanicAfter => panic!("{}", panic_text(self.name)),
            Wrap::Replace(v) => outcome.map(|_| O::own(self.name, v)).map_err(Into::into),
            Wrap::Recover(v) => Ok(outcome.unwrap_or_else(|_| O::own(self.name, v))),
            _ => Ok(outcome?),
        }
    }

    /// A sync wrapper.
    pub fn wrap_sync<O: Output>(&self, next: Next<'_, O>) -> HookResult<O> {
        match self.before() {
            Some(early) => early,
            None => self.after(next.call()),
        }
    }

    /// An async wrapper.
    pub async fn wrap_async<'n, O: Output + Send + 'n>(
        &self,
        next: AsyncNext<'n, O>,
    ) -> HookResult<O> {
        match self.before() {
            Some(early) => early,
            None => self.after(next.await),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(flag) = &self.dropped {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

type SyncNext<'n, T> = Next<'n, Results<T>>;
type SyncFirst<'n, T> = Next<'n, Option<Answer<T>>>;

#[hookimpl]
impl Hooks for Probe {
    fn run(&self, x: u32) -> HookResult<u32> {
        self.answer(x)
    }

    #[hookimpl(wrapper)]
    fn run(&self, _x: u32, next: SyncNext<'_, u32>) -> HookResult<Results<u32>> {
        self.wrap_sync(next)
    }

    fn first(&self, x: u32) -> HookResult<Option<u32>> {
        self.maybe(x)
    }

    #[hookimpl(wrapper)]
    fn first(&self, _x: u32, next: SyncFirst<'_, u32>) -> HookResult<Option<Answer<u32>>> {
        self.wrap_sync(next)
    }

    fn notify(&self, x: u32) -> HookResult<u32> {
        self.answer(x)
    }

    #[hookimpl(wrapper)]
    fn notify(&self, _x: u32, next: SyncNext<'_, u32>) -> HookResult<Results<u32>> {
        self.wrap_sync(next)
    }

    fn configure(&self, x: u32) -> HookResult<u32> {
        self.answer(x)
    }
}

type AsyncAll<'n> = AsyncNext<'n, Results<u32>>;
type AsyncFirst<'n> = AsyncNext<'n, Option<Answer<u32>>>;

#[hookimpl]
impl AsyncHooks for Probe {
    async fn run(&self, x: u32) -> HookResult<u32> {
        self.pass_gate().await;
        self.answer(x)
    }

    #[hookimpl(wrapper)]
    async fn run(&self, _x: u32, next: AsyncAll<'_>) -> HookResult<Results<u32>> {
        self.wrap_async(next).await
    }

    async fn first(&self, x: u32) -> HookResult<Option<u32>> {
        self.pass_gate().await;
        self.maybe(x)
    }

    #[hookimpl(wrapper)]
    async fn first(&self, _x: u32, next: AsyncFirst<'_>) -> HookResult<Option<Answer<u32>>> {
        self.wrap_async(next).await
    }

    async fn notify(&self, x: u32) -> HookResult<u32> {
        self.pass_gate().await;
        self.answer(x)
    }

    async fn together(&self, x: u32) -> HookResult<u32> {
        self.pass_gate().await;
        self.answer(x)
    }

    async fn limited(&self, x: u32) -> HookResult<u32> {
        self.pass_gate().await;
        self.answer(x)
    }

    async fn limited_continue(&self, x: u32) -> HookResult<u32> {
        self.pass_gate().await;
        self.answer(x)
    }
}

/// Registers `probe` under its name, implementing exactly `decl`; panics
/// if the manager refuses.
pub fn add<S: Spec + ?Sized>(pm: &PluginManager<S>, probe: Probe, decl: ImplDecl)
where
    Probe: Implements<S>,
{
    probe.register(pm, &[decl]).unwrap();
}

/// A plain implementation of `hook` with default options.
pub fn on(hook: &'static str) -> ImplDecl {
    ImplDecl::new(hook)
}

/// Builders for [`ImplDecl`].
pub trait DeclExt {
    fn priority(self, priority: i32) -> Self;
    fn tier(self, tier: Tier) -> Self;
    fn tryfirst(self) -> Self;
    fn trylast(self) -> Self;
    fn wrapper(self) -> Self;
    fn before(self, plugins: &'static [&'static str]) -> Self;
    fn after(self, plugins: &'static [&'static str]) -> Self;
}

impl DeclExt for ImplDecl {
    fn priority(self, priority: i32) -> Self {
        ImplDecl { priority, ..self }
    }
    fn tier(self, tier: Tier) -> Self {
        ImplDecl { tier, ..self }
    }
    fn tryfirst(self) -> Self {
        self.tier(Tier::TryFirst)
    }
    fn trylast(self) -> Self {
        self.tier(Tier::TryLast)
    }
    fn wrapper(self) -> Self {
        ImplDecl {
            wrapper: true,
            ..self
        }
    }
    fn before(self, before: &'static [&'static str]) -> Self {
        ImplDecl { before, ..self }
    }
    fn after(self, after: &'static [&'static str]) -> Self {
        ImplDecl { after, ..self }
    }
}

/// `[(plugin, value)]` of a result, for one-line comparisons.
pub fn pairs(results: &Results<u32>) -> Vec<(&'static str, u32)> {
    results
        .answers()
        .iter()
        .map(|a| (a.plugin, a.value))
        .collect()
}

/// The answer of a firstresult call: `value` from `plugin`.
pub fn some(plugin: &'static str, value: u32) -> Option<Answer<u32>> {
    Some(Answer { plugin, value })
}

/// `(hook, plugin)` of each error, for one-line comparisons.
pub fn blame(errors: &[HookError]) -> Vec<(&'static str, Option<&'static str>)> {
    errors.iter().map(|e| (e.hook(), e.plugin())).collect()
}

/// Converts a `&[&str]` to the `Vec<String>` a [`Log`] holds.
pub fn strings(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|s| s.to_string()).collect()
}

/// Polls `future` alongside a `yield_now` at most `rounds` times: its
/// output if it completed by then, `None` if it is still waiting. For
/// futures that can only complete through other futures of the same task,
/// this turns "hangs forever" into a failed assertion, without a clock.
pub async fn within_rounds<F: std::future::Future>(future: F, rounds: usize) -> Option<F::Output> {
    tokio::pin!(future);
    for _ in 0..rounds {
        tokio::select! {
            biased;
            output = &mut future => return Some(output),
            _ = tokio::task::yield_now() => {}
        }
    }
    None
}

/// What a `tracing_subscriber::fmt` writer wrote, shared with the test
/// (`.with_writer(move || capture.clone())`).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The same, line by line.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }
}

/// Logs `name:x` for every `configure(x)` it sees; fails on `fail_on`.
pub struct Listener {
    pub name: &'static str,
    pub log: Log,
    pub fail_on: Option<u32>,
}

#[hookimpl]
impl Hooks for Listener {
    fn configure(&self, x: u32) -> HookResult<u32> {
        self.log.push(format!("{}:{x}", self.name));
        if Some(x) == self.fail_on {
            return Err(Boom(self.name).into());
        }
        Ok(x)
    }
}

pub fn listener(name: &'static str, log: &Log) -> Listener {
    Listener {
        name,
        log: log.clone(),
        fail_on: None,
    }
}
