//! Re-entrancy: an implementation may call hooks again through a manager
//! it holds; a depth limit turns runaway recursion into an error naming
//! the chain, for sync and async hooks alike.

mod common;

use common::within_rounds;
use hookery::prelude::*;
use hookery::{DEFAULT_MAX_DEPTH, HookErrorKind};
use std::sync::{Arc, Mutex};

#[hookspec]
pub trait Recurse {
    /// `down(n)` calls `down(n - 1)` until 0: n + 1 nested calls.
    fn down(&self, n: u32) -> HookResult<u32>;
    /// The same, async.
    async fn down_async(&self, n: u32) -> HookResult<u32>;
    /// `ping` calls `pong`, which calls `ping`, ...
    fn ping(&self, n: u32) -> HookResult<u32>;
    fn pong(&self, n: u32) -> HookResult<u32>;
    /// Recursed into by a wrapper instead of running `next`.
    fn spin(&self, n: u32) -> HookResult<u32>;
}

/// Holds the manager it is registered with (a deliberate `Arc` cycle).
struct Diver(PluginManager<dyn Recurse>);

fn sum(results: Results<u32>) -> u32 {
    results.into_values().into_iter().sum()
}

#[hookimpl]
impl Recurse for Diver {
    fn down(&self, n: u32) -> HookResult<u32> {
        match n {
            0 => Ok(0),
            _ => Ok(sum(self.0.hook().down(n - 1)?) + 1),
        }
    }

    async fn down_async(&self, n: u32) -> HookResult<u32> {
        match n {
            0 => Ok(0),
            _ => Ok(sum(self.0.hook().down_async(n - 1).await?) + 1),
        }
    }
}

struct Pinger(PluginManager<dyn Recurse>);
#[hookimpl]
impl Recurse for Pinger {
    fn ping(&self, n: u32) -> HookResult<u32> {
        Ok(sum(self.0.hook().pong(n)?))
    }
}

struct Ponger(PluginManager<dyn Recurse>);
#[hookimpl]
impl Recurse for Ponger {
    fn pong(&self, n: u32) -> HookResult<u32> {
        Ok(sum(self.0.hook().ping(n)?))
    }
}

/// A wrapper that calls its own hook again instead of `next`.
struct Spinner(PluginManager<dyn Recurse>);
#[hookimpl]
impl Recurse for Spinner {
    #[hookimpl(wrapper)]
    fn spin(&self, n: u32, _next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
        Ok(self.0.hook().spin(n)?)
    }
}

/// Fails `pong`.
struct Refuses;
#[hookimpl]
impl Recurse for Refuses {
    fn pong(&self, _n: u32) -> HookResult<u32> {
        hookery::anyhow::bail!("no pong today")
    }
}

fn divers() -> PluginManager<dyn Recurse> {
    let pm = PluginManager::<dyn Recurse>::new();
    pm.register("diver", Diver(pm.clone())).unwrap();
    pm
}

/// Checks a depth error: its limit, and a chain of `links` calls of
/// `hook` by `diver`.
fn assert_too_deep(err: &HookError, hook: &str, limit: usize, links: usize) {
    assert_too_deep_in(err, hook, "diver", limit, links);
}

/// Checks a depth error: its limit, and a chain of `links` calls of
/// `hook` by `plugin`.
fn assert_too_deep_in(err: &HookError, hook: &str, plugin: &str, limit: usize, links: usize) {
    assert!(err.is_too_deep(), "{err:?}");
    assert_eq!(err.hook(), hook);
    assert_eq!(err.plugin(), None);
    match err.kind() {
        HookErrorKind::TooDeep { limit: l, chain } => {
            assert_eq!(*l, limit);
            assert_eq!(chain.len(), links);
            assert!(
                chain.iter().all(|link| *link == (hook, plugin)),
                "{chain:?}"
            );
        }
        other => panic!("expected a depth error, got {other:?}"),
    }
    let link = format!("{hook} (in plugin `{plugin}`) -> ");
    let expected = format!(
        "hook calls nested deeper than the limit of {limit}: {}{hook}",
        link.repeat(links)
    );
    assert_eq!(err.to_string(), expected);
}

#[test]
fn sync_recursion_within_the_limit_works() {
    let pm = divers();
    assert_eq!(pm.max_depth(), DEFAULT_MAX_DEPTH);
    assert_eq!(sum(pm.hook().down(10).unwrap()), 10);
    // DEFAULT_MAX_DEPTH nested calls in all.
    let deepest = DEFAULT_MAX_DEPTH as u32 - 1;
    assert_eq!(sum(pm.hook().down(deepest).unwrap()), deepest);
}

#[test]
fn sync_runaway_recursion_is_an_error_naming_the_chain() {
    let pm = divers();
    let err = pm.hook().down(u32::MAX).unwrap_err();
    assert_too_deep(&err, "down", DEFAULT_MAX_DEPTH, DEFAULT_MAX_DEPTH);
    // The depth count is back to zero afterwards.
    let deepest = DEFAULT_MAX_DEPTH as u32 - 1;
    assert_eq!(sum(pm.hook().down(deepest).unwrap()), deepest);
}

#[test]
fn set_max_depth_moves_the_limit() {
    let pm = divers();
    pm.set_max_depth(5);
    assert_eq!(pm.max_depth(), 5);
    assert_eq!(
        sum(pm.hook().down(4).unwrap()),
        4,
        "5 nested calls are allowed"
    );
    let err = pm.hook().down(5).unwrap_err();
    assert_too_deep(&err, "down", 5, 5);

    pm.set_max_depth(100);
    assert_eq!(sum(pm.hook().down(99).unwrap()), 99);
    assert_too_deep(&pm.hook().down(u32::MAX).unwrap_err(), "down", 100, 100);
}

#[test]
fn depth_error_chain_names_every_hook_and_plugin() {
    let pm = PluginManager::<dyn Recurse>::new();
    pm.register("pinger", Pinger(pm.clone())).unwrap();
    pm.register("ponger", Ponger(pm.clone())).unwrap();
    pm.set_max_depth(4);
    let err = pm.hook().ping(0).unwrap_err();
    assert!(err.is_too_deep());
    assert_eq!(
        err.to_string(),
        "hook calls nested deeper than the limit of 4: ping (in plugin `pinger`) -> \
         pong (in plugin `ponger`) -> ping (in plugin `pinger`) -> \
         pong (in plugin `ponger`) -> ping"
    );
}

#[test]
fn depth_error_chain_names_a_wrapper_that_recursed() {
    let pm = PluginManager::<dyn Recurse>::new();
    pm.register("spinner", Spinner(pm.clone())).unwrap();
    pm.set_max_depth(3);
    let err = pm.hook().spin(0).unwrap_err();
    assert_too_deep_in(&err, "spin", "spinner", 3, 3);
}

#[test]
fn an_error_from_a_nested_call_is_the_cause_of_the_outer_one() {
    let pm = PluginManager::<dyn Recurse>::new();
    pm.register("pinger", Pinger(pm.clone())).unwrap();
    pm.register("refuses", Refuses).unwrap();
    let err = pm.hook().ping(0).unwrap_err();
    assert_eq!((err.hook(), err.plugin()), ("ping", Some("pinger")));
    let nested = err.cause().unwrap().downcast_ref::<HookError>().unwrap();
    assert_eq!((nested.hook(), nested.plugin()), ("pong", Some("refuses")));
    let innermost = err.innermost();
    assert_eq!(
        (innermost.hook(), innermost.plugin()),
        ("pong", Some("refuses"))
    );
    assert_eq!(
        err.to_string(),
        "plugin `pinger` failed in hook `ping`: plugin `refuses` failed in hook `pong`: no pong today"
    );
}

#[tokio::test]
async fn async_recursion_within_the_limit_works() {
    let pm = divers();
    assert_eq!(sum(pm.hook().down_async(10).await.unwrap()), 10);
    let deepest = DEFAULT_MAX_DEPTH as u32 - 1;
    assert_eq!(sum(pm.hook().down_async(deepest).await.unwrap()), deepest);
}

#[tokio::test]
async fn async_runaway_recursion_is_an_error_naming_the_chain() {
    let pm = divers();
    let err = pm.hook().down_async(u32::MAX).await.unwrap_err();
    assert_too_deep(&err, "down_async", DEFAULT_MAX_DEPTH, DEFAULT_MAX_DEPTH);
    assert_eq!(sum(pm.hook().down_async(3).await.unwrap()), 3);
}

#[tokio::test]
async fn async_set_max_depth_moves_the_limit() {
    let pm = divers();
    pm.set_max_depth(5);
    assert_eq!(sum(pm.hook().down_async(4).await.unwrap()), 4);
    assert_too_deep(
        &pm.hook().down_async(5).await.unwrap_err(),
        "down_async",
        5,
        5,
    );
}

/// At the innermost level of `down_async` (n = 0), waits forever.
struct Sinks;
#[hookimpl]
impl Recurse for Sinks {
    #[hookimpl(trylast)]
    async fn down_async(&self, n: u32) -> HookResult<u32> {
        if n == 0 {
            std::future::pending::<()>().await;
        }
        Ok(0)
    }
}

#[tokio::test]
async fn a_dropped_async_call_leaves_no_depth_behind() {
    let pm = divers();
    pm.set_max_depth(3);
    pm.register("sinks", Sinks).unwrap();
    let relay = pm.hook();
    // Three nested calls deep, the innermost waits forever; then dropped.
    assert!(within_rounds(relay.down_async(2), 10).await.is_none());
    pm.unregister("sinks").unwrap();
    assert_eq!(
        sum(pm.hook().down(2).unwrap()),
        2,
        "3 nested sync calls still fit"
    );
    assert_eq!(sum(pm.hook().down_async(2).await.unwrap()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_recursion_depth_is_counted_per_task_on_a_thread_pool() {
    let pm = divers();
    pm.set_max_depth(8);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let pm = pm.clone();
            tokio::spawn(async move {
                let ok = sum(pm.hook().down_async(7).await.unwrap());
                let err = pm.hook().down_async(8).await.unwrap_err();
                (ok, err.is_too_deep())
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), (7, true));
    }
}

// ------------------------------- an async call's depth, judged where it is polled

#[hookspec]
pub trait Nest {
    async fn outer(&self) -> HookResult<()>;
    /// Implemented by no one: a call of it has nothing to do.
    async fn idle(&self) -> HookResult<()>;
}

type PendingIdle =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Results<()>, HookError>> + Send>>;

/// The number of answers, or whether the error was "too deep" and the hook
/// it names.
type Outcome = Result<usize, (bool, &'static str)>;

/// In `outer`, at the depth limit, awaits a call of `idle` made before
/// `outer` ran, then makes and awaits one of its own; notes their outcomes.
struct Nester {
    pm: &'static PluginManager<dyn Nest>,
    made_before: Arc<Mutex<Option<PendingIdle>>>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
}

#[hookimpl]
impl Nest for Nester {
    async fn outer(&self) -> HookResult<()> {
        let made_before = self.made_before.lock().unwrap().take().unwrap();
        let made_before = made_before.await;
        let relay = self.pm.hook();
        let made_here = relay.idle().await;
        for outcome in [made_before, made_here] {
            let outcome = outcome
                .map(|r| r.len())
                .map_err(|e| (e.is_too_deep(), e.hook()));
            self.outcomes.lock().unwrap().push(outcome);
        }
        Ok(())
    }
}

/// Registers nothing of its own: its registration is a change that awaits
/// publishing.
struct Bystander;
#[hookimpl]
impl Nest for Bystander {}

#[tokio::test]
async fn an_async_call_of_an_idle_hook_is_judged_at_the_depth_where_it_runs() {
    let pm: &'static PluginManager<dyn Nest> = Box::leak(Box::new(PluginManager::new()));
    pm.set_max_depth(1);
    let (made_before, outcomes) = (Arc::default(), Arc::default());
    let nester = Nester {
        pm,
        made_before: Arc::clone(&made_before),
        outcomes: Arc::clone(&outcomes),
    };
    pm.register("nester", nester).unwrap();
    let relay = Box::leak(Box::new(pm.hook()));
    // Made at depth 0 and awaited inside `outer`, where any call is one
    // too deep: first with the registry published (the call is answered
    // without the snapshot), then with a change awaiting publishing (the
    // call takes the snapshot); the same either way.
    pm.hook().idle().await.unwrap();
    for pending_change in [false, true] {
        if pending_change {
            pm.register("bystander", Bystander).unwrap();
        }
        *made_before.lock().unwrap() = Some(Box::pin(relay.idle()));
        pm.hook().outer().await.unwrap();
        assert_eq!(
            std::mem::take(&mut *outcomes.lock().unwrap()),
            [Err((true, "idle")), Err((true, "idle"))],
            "made outside or inside, a call awaited inside `outer` is too deep \
             (pending change: {pending_change})"
        );
    }
    assert!(relay.idle().await.unwrap().is_empty());
}
