//! Concurrency: `concurrent` async hooks run every implementation at once;
//! a call works on the snapshot it started with while plugins come and go;
//! many callers and a registering thread never see a half-updated hook.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use hookery::prelude::*;
use hookery::{Implements, Spec, Tier};
use tokio::sync::{Barrier, Notify};

// ------------------------------------------------------ concurrent hooks

#[tokio::test]
async fn concurrent_hook_runs_all_impls_at_once() {
    const N: usize = 5;
    let log = Log::new();
    let pm = PluginManager::<dyn AsyncHooks>::new();
    // Every implementation waits until all N wait: only possible if all
    // of them run at the same time.
    let barrier = Arc::new(Barrier::new(N));
    let names = ["n0", "n1", "n2", "n3", "n4"];
    for (i, name) in names.into_iter().enumerate() {
        add(
            &pm,
            probe(name, &log)
                .value(i as u32)
                .gate(Gate::Barrier(barrier.clone())),
            on("together").priority(i as i32),
        );
    }
    let relay = pm.hook();
    let results = within_rounds(relay.together(0), 100)
        .await
        .expect("the barrier only opens when all implementations wait together")
        .unwrap();
    assert_eq!(
        pairs(&results),
        [("n4", 4), ("n3", 3), ("n2", 2), ("n1", 1), ("n0", 0)]
    );
}

/// Calls `together` on `first` (tryfirst), which can only finish after
/// `second` ran, doing `first_act` and `second_act`: the outcome (`None`
/// if the call could not complete) and the log, in completion order.
async fn first_waits_for_second(
    first_act: Act,
    second_act: Act,
) -> (Option<Result<Results<u32>, HookError>>, Vec<String>) {
    let (log, pm) = (Log::new(), PluginManager::<dyn AsyncHooks>::new());
    let signal = Arc::new(Notify::new());
    let waits = probe("first", &log)
        .act(first_act)
        .gate(Gate::Wait(signal.clone()));
    add(&pm, waits, on("together").tryfirst());
    let signals = probe("second", &log)
        .act(second_act)
        .gate(Gate::Signal(signal));
    add(&pm, signals, on("together"));
    let relay = pm.hook();
    (within_rounds(relay.together(0), 100).await, log.take())
}

#[tokio::test]
async fn concurrent_results_follow_call_order_not_completion_order() {
    let (outcome, log) = first_waits_for_second(Act::Value(1), Act::Value(2)).await;
    let results = outcome.expect("`first` and `second` run at once").unwrap();
    assert_eq!(log, ["second", "first"], "completion order");
    assert_eq!(pairs(&results), [("first", 1), ("second", 2)]);
}

#[tokio::test]
async fn concurrent_hook_reports_the_first_error_in_call_order() {
    let (outcome, log) = first_waits_for_second(Act::Fail, Act::Fail).await;
    let err = outcome
        .expect("`first` and `second` run at once")
        .unwrap_err();
    assert_eq!(err.plugin(), Some("first"));
    assert_eq!(log, ["second", "first"]);
}

// ------------------------------------------------------------- snapshots

/// `gate` (tryfirst, holds the call until released) and `victim` (answers
/// 1, sets `dropped` when dropped).
struct Held {
    log: Log,
    pm: PluginManager<dyn AsyncHooks>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
    dropped: Arc<AtomicBool>,
}

fn held() -> Held {
    let (log, pm) = (Log::new(), PluginManager::<dyn AsyncHooks>::new());
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let dropped = Arc::new(AtomicBool::new(false));
    let hold = Gate::Hold {
        entered: entered.clone(),
        release: release.clone(),
    };
    add(&pm, probe("gate", &log).gate(hold), on("run").tryfirst());
    add(
        &pm,
        probe("victim", &log).value(1).drop_flag(&dropped),
        on("run"),
    );
    Held {
        log,
        pm,
        entered,
        release,
        dropped,
    }
}

impl Held {
    /// Calls `run`; once `gate` holds the call, runs `during`, then
    /// releases it. Returns what the held call returned.
    async fn call_with(&self, during: impl FnOnce()) -> Vec<(&'static str, u32)> {
        let relay = self.pm.hook();
        let (results, ()) = tokio::join!(relay.run(0), async {
            self.entered.notified().await;
            during();
            self.release.notify_one();
        });
        pairs(&results.unwrap())
    }

    /// Calls `run` without holding it.
    async fn call(&self) -> Vec<(&'static str, u32)> {
        self.release.notify_one();
        pairs(&self.pm.hook().run(0).await.unwrap())
    }

    fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn unregister_during_a_call_keeps_the_plugin_until_the_call_ends() {
    let h = held();
    let seen = h
        .call_with(|| {
            let removed = h.pm.unregister("victim").unwrap();
            drop(removed);
            assert!(!h.pm.has_plugin("victim"));
            assert!(!h.dropped(), "the running call still holds `victim`");
        })
        .await;
    assert_eq!(seen, [("gate", 0), ("victim", 1)], "the call's snapshot");
    assert!(h.dropped(), "dropped once the call that held it ended");
    assert_eq!(h.call().await, [("gate", 0)], "the next call");
    assert_eq!(h.log.take(), ["gate", "victim", "gate"]);
}

#[tokio::test]
async fn register_and_block_during_a_call_do_not_change_it() {
    let h = held();
    let seen = h
        .call_with(|| {
            add(&h.pm, probe("newcomer", &h.log).value(2), on("run"));
            h.pm.set_blocked("victim");
        })
        .await;
    assert_eq!(seen, [("gate", 0), ("victim", 1)]);
    assert!(h.dropped());
    assert_eq!(h.call().await, [("gate", 0), ("newcomer", 2)]);
}

/// An async call's plugins are those registered when its future is made
/// (as for a sync call, made and run at once), not when it is first
/// polled: with no implementation then, it answers empty.
#[tokio::test]
async fn an_async_call_runs_on_the_plugins_of_the_moment_it_is_made() {
    let (log, pm) = (Log::new(), PluginManager::<dyn AsyncHooks>::new());
    let relay = pm.hook();
    let made_with_none = relay.run(0);
    add(&pm, probe("first", &log).value(1), on("run"));
    let made_with_one = relay.run(0);
    add(&pm, probe("second", &log).value(2), on("run"));
    assert!(made_with_none.await.unwrap().is_empty());
    assert_eq!(pairs(&made_with_one.await.unwrap()), [("first", 1)]);
    assert_eq!(
        pairs(&relay.run(0).await.unwrap()),
        [("second", 2), ("first", 1)]
    );
    assert_eq!(log.take(), ["first", "second", "first"]);
}

// ------------------------------------------------- callers vs. registrar

/// The plugins that come and go. `p{i}` has tier `i % 3`, priority `i`
/// (so its place in the call order depends on nothing else) and answers
/// `10 * i`. `anchor` stays registered all along.
const CHURN: [&str; 8] = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
const TIERS: [Tier; 3] = [Tier::TryFirst, Tier::Normal, Tier::TryLast];

fn churn_probe<S: Spec + ?Sized>(pm: &PluginManager<S>, log: &Log, hook: &'static str, i: usize)
where
    Probe: Implements<S>,
{
    let decl = on(hook).tier(TIERS[i % 3]).priority(i as i32);
    add(pm, probe(CHURN[i], log).value(10 * i as u32), decl);
}

fn with_anchor<S: Spec + ?Sized>(log: &Log, hook: &'static str) -> PluginManager<S>
where
    Probe: Implements<S>,
{
    let pm = PluginManager::<S>::new();
    add(
        &pm,
        probe("anchor", log).value(1000),
        on(hook).priority(100),
    );
    pm
}

/// Where `plugin` belongs in the call order: (tier, -priority).
fn rank(plugin: &str) -> (usize, i32) {
    match CHURN.iter().position(|p| *p == plugin) {
        Some(i) => (i % 3, -(i as i32)),
        None if plugin == "anchor" => (1, -100),
        None => panic!("unknown plugin `{plugin}` in a result"),
    }
}

/// One call's results must be a consistent snapshot: known plugins, each
/// once, strictly in call order, each with its own value, anchor present.
fn assert_consistent(results: &Results<u32>) {
    assert!(results.errors().is_empty());
    let ranks: Vec<_> = results.plugins().map(rank).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "order: {:?}",
        pairs(results)
    );
    for answer in results.answers() {
        let expected = match CHURN.iter().position(|p| *p == answer.plugin) {
            Some(i) => 10 * i as u32,
            None => 1000,
        };
        assert_eq!(answer.value, expected, "{:?}", pairs(results));
    }
    assert!(results.get("anchor").is_some());
}

/// Registers, unregisters, blocks and unblocks the churn plugins, `rounds` times.
fn churn<S: Spec + ?Sized>(pm: &PluginManager<S>, log: &Log, hook: &'static str, rounds: usize)
where
    Probe: Implements<S>,
{
    for round in 0..rounds {
        let i = round % CHURN.len();
        match (pm.is_blocked(CHURN[i]), pm.has_plugin(CHURN[i])) {
            (true, _) => assert!(pm.unblock(CHURN[i])),
            (false, true) if round % 5 == 0 => pm.set_blocked(CHURN[i]),
            (false, true) => drop(pm.unregister(CHURN[i]).unwrap()),
            (false, false) => churn_probe(pm, log, hook, i),
        }
        log.take();
    }
}

#[test]
fn many_threads_calling_while_another_registers_see_consistent_snapshots() {
    let log = Log::new();
    let pm: PluginManager<dyn Hooks> = with_anchor(&log, "run");
    let start = std::sync::Barrier::new(5);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                start.wait();
                // At least 500 calls, and on until the registrar is done.
                let mut calls = 0;
                while calls < 500 || !done.load(Ordering::SeqCst) {
                    assert_consistent(&pm.hook().run(0).unwrap());
                    calls += 1;
                }
            });
        }
        start.wait();
        churn(&pm, &log, "run", 1000);
        done.store(true, Ordering::SeqCst);
    });
    let all = pm.hook().run(0).unwrap();
    assert_consistent(&all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_calling_while_another_registers_see_consistent_snapshots() {
    let log = Log::new();
    let pm: PluginManager<dyn AsyncHooks> = with_anchor(&log, "run");
    let done = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (pm, done) = (pm.clone(), done.clone());
            tokio::spawn(async move {
                // At least 200 calls, and on until the registrar is done.
                let mut calls = 0;
                while calls < 200 || !done.load(Ordering::SeqCst) {
                    assert_consistent(&pm.hook().run(0).await.unwrap());
                    tokio::task::yield_now().await;
                    calls += 1;
                }
            })
        })
        .collect();
    let registrar = {
        let (pm, log) = (pm.clone(), log.clone());
        tokio::task::spawn_blocking(move || {
            churn(&pm, &log, "run", 1000);
            done.store(true, Ordering::SeqCst);
        })
    };
    for caller in callers {
        caller.await.unwrap();
    }
    registrar.await.unwrap();
}
