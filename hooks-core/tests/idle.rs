//! A call of a hook with nothing to do (no implementation, no monitor,
//! nobody tracing at DEBUG) is answered by the relay from the hook's idle
//! entry, without taking the snapshot. These check that this shortcut
//! keeps every rule of a full call: the depth limit (0 refuses every
//! call), monitors and plugins added later, blocked plugins, `call_extra`,
//! and hooks past the ones that have an entry at all.

mod common;

use common::*;
use hookery::HookErrorKind;
use hookery::prelude::*;

/// The depth limit and the (empty) chain of a depth error.
fn too_deep(err: &HookError) -> (usize, usize) {
    match err.kind() {
        HookErrorKind::TooDeep { limit, chain } => (*limit, chain.len()),
        other => panic!("expected a depth error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_limit_of_0_refuses_a_call_with_nothing_to_do() {
    let (sync, asynchronous) = (
        PluginManager::<dyn Hooks>::new(),
        PluginManager::<dyn AsyncHooks>::new(),
    );
    assert!(sync.hook().run(0).unwrap().is_empty());
    assert!(asynchronous.hook().run(0).await.unwrap().is_empty());
    sync.set_max_depth(0);
    asynchronous.set_max_depth(0);
    assert_eq!(too_deep(&sync.hook().run(0).unwrap_err()), (0, 0));
    assert_eq!(too_deep(&sync.hook().first(0).unwrap_err()), (0, 0));
    assert_eq!(
        too_deep(&asynchronous.hook().run(0).await.unwrap_err()),
        (0, 0)
    );
    assert_eq!(
        too_deep(&asynchronous.hook().first(0).await.unwrap_err()),
        (0, 0)
    );
    sync.set_max_depth(1);
    asynchronous.set_max_depth(1);
    assert!(sync.hook().run(0).unwrap().is_empty());
    assert!(asynchronous.hook().first(0).await.unwrap().is_none());
}

#[hookspec]
pub trait Nest {
    /// Calls `inner` on the manager the plugin holds: that call's outcome.
    fn outer(&self) -> HookResult<Result<usize, (usize, usize)>>;
    fn inner(&self) -> HookResult<u32>;
    async fn outer_async(&self) -> HookResult<Result<usize, (usize, usize)>>;
    async fn inner_async(&self) -> HookResult<u32>;
}

/// Implements the outer hooks; calls the inner ones on its own manager,
/// where nothing implements them.
struct Outer(PluginManager<dyn Nest>);
#[hookimpl]
impl Nest for Outer {
    fn outer(&self) -> HookResult<Result<usize, (usize, usize)>> {
        Ok(self
            .0
            .hook()
            .inner()
            .map(|r| r.len())
            .map_err(|e| too_deep(&e)))
    }
    async fn outer_async(&self) -> HookResult<Result<usize, (usize, usize)>> {
        let inner = self.0.hook().inner_async().await;
        Ok(inner.map(|r| r.len()).map_err(|e| too_deep(&e)))
    }
}

/// The depth counts every manager's calls on the thread (or task): an
/// idle call nested one deeper than its own manager allows is refused.
#[tokio::test]
async fn an_idle_call_nested_deeper_than_its_limit_is_refused() {
    let inner = PluginManager::<dyn Nest>::new();
    let pm = PluginManager::<dyn Nest>::new();
    pm.register("outer", Outer(inner.clone())).unwrap();
    let outcome = |results: Results<Result<usize, (usize, usize)>>| results.into_values();
    // The nested call is at depth 2.
    inner.set_max_depth(2);
    assert_eq!(outcome(pm.hook().outer().unwrap()), [Ok(0)]);
    assert_eq!(outcome(pm.hook().outer_async().await.unwrap()), [Ok(0)]);
    inner.set_max_depth(1);
    assert_eq!(outcome(pm.hook().outer().unwrap()), [Err((1, 0))]);
    assert_eq!(
        outcome(pm.hook().outer_async().await.unwrap()),
        [Err((1, 0))]
    );
    // At the top, within the limit, the same hooks answer.
    assert!(inner.hook().inner().unwrap().is_empty());
    assert!(inner.hook().inner_async().await.unwrap().is_empty());
}

/// Logs `before <hook>` and `after <hook>`.
fn monitor<S: hookery::Spec + ?Sized>(
    pm: &PluginManager<S>,
    log: &Log,
) -> hookery::MonitoringHandle {
    let (before, after) = (log.clone(), log.clone());
    pm.add_hookcall_monitoring(
        move |info| before.push(format!("before {}", info.hook.name)),
        move |info, _| after.push(format!("after {}", info.hook.name)),
    )
}

#[tokio::test]
async fn a_monitor_added_later_hears_a_hook_that_was_idle() {
    let log = Log::new();
    let (sync, asynchronous) = (
        PluginManager::<dyn Hooks>::new(),
        PluginManager::<dyn AsyncHooks>::new(),
    );
    sync.hook().run(0).unwrap();
    asynchronous.hook().run(0).await.unwrap();
    let handles = [monitor(&sync, &log), monitor(&asynchronous, &log)];
    // Twice: the first call after a change publishes it, the second finds
    // it published.
    for _ in 0..2 {
        sync.hook().run(0).unwrap();
        asynchronous.hook().run(0).await.unwrap();
        assert_eq!(
            log.take(),
            ["before run", "after run", "before run", "after run"]
        );
    }
    for handle in handles {
        handle.undo();
    }
    for _ in 0..2 {
        sync.hook().run(0).unwrap();
        asynchronous.hook().run(0).await.unwrap();
    }
    assert!(log.take().is_empty(), "idle again");
}

#[tokio::test]
async fn plugins_registered_blocked_or_added_for_one_call_are_heard_by_an_idle_hook() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    let apm = PluginManager::<dyn AsyncHooks>::new();
    assert!(pm.hook().run(0).unwrap().is_empty());
    assert!(apm.hook().run(0).await.unwrap().is_empty());
    // `call_extra` runs the extra plugin though the hook is idle.
    let extra = probe("x", &log).plugin(&[on("run")]);
    let results = pm.call_extra([("x", extra)]).unwrap().run(0).unwrap();
    assert_eq!(results.plugins().collect::<Vec<_>>(), ["x"]);
    assert_eq!(log.take(), ["x"]);
    // Registered: every call runs it (twice: the first call after a
    // change publishes it); blocked, so unregistered: idle again.
    add(&pm, probe("a", &log), on("run"));
    add(&apm, probe("a", &log), on("run"));
    for _ in 0..2 {
        assert_eq!(pm.hook().run(0).unwrap().len(), 1);
        assert_eq!(apm.hook().run(0).await.unwrap().len(), 1);
        assert_eq!(log.take(), ["a", "a"]);
    }
    pm.set_blocked("a");
    apm.set_blocked("a");
    for _ in 0..2 {
        assert!(pm.hook().run(0).unwrap().is_empty());
        assert!(apm.hook().run(0).await.unwrap().is_empty());
    }
    assert!(log.take().is_empty());
}

/// More hooks than have an idle entry (64): the ones past them take the
/// whole way, with the same outcome.
macro_rules! wide {
    ($($hook:ident)*) => {
        #[hookspec]
        pub trait Wide {
            $(fn $hook(&self) -> HookResult<u32>;)*
        }

        struct Everywhere;
        #[hookimpl]
        impl Wide for Everywhere {
            $(fn $hook(&self) -> HookResult<u32> { Ok(1) })*
        }
    };
}
wide!(h00 h01 h02 h03 h04 h05 h06 h07 h08 h09 h10 h11 h12 h13 h14 h15 h16 h17 h18 h19 h20 h21 h22 h23 h24 h25 h26 h27 h28 h29 h30 h31 h32 h33 h34 h35 h36 h37 h38 h39 h40 h41 h42 h43 h44 h45 h46 h47 h48 h49 h50 h51 h52 h53 h54 h55 h56 h57 h58 h59 h60 h61 h62 h63 h64 h65 );

#[test]
fn hooks_past_the_idle_entries_follow_the_same_rules() {
    let pm = PluginManager::<dyn Wide>::new();
    assert_eq!(<dyn Wide as hookery::Spec>::HOOKS.len(), 66);
    // The first, the last with an entry, the first without, the last:
    // outcomes only (both paths give the same; that is what is checked).
    type Call = fn(&PluginManager<dyn Wide>) -> Result<Vec<u32>, HookError>;
    let calls: [Call; 4] = [
        |pm| pm.hook().h00().map(|r| r.into_values()),
        |pm| pm.hook().h63().map(|r| r.into_values()),
        |pm| pm.hook().h64().map(|r| r.into_values()),
        |pm| pm.hook().h65().map(|r| r.into_values()),
    ];
    for call in calls {
        assert!(call(&pm).unwrap().is_empty());
    }
    pm.set_max_depth(0);
    for call in calls {
        assert_eq!(too_deep(&call(&pm).unwrap_err()), (0, 0));
    }
    pm.set_max_depth(1);
    pm.register("everywhere", Everywhere).unwrap();
    for call in calls {
        assert_eq!(call(&pm).unwrap(), [1]);
    }
}
