//! Documented claims of the engine, checked in edge cases the other test
//! files leave open: each test names the sentence it checks.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hookery::prelude::*;
use hookery::{HookErrorKind, ManagerError, MonitoringHandle};

// ------------------------------------------------------------ helpers

fn run_order(results: &Results<u32>) -> Vec<&'static str> {
    results.plugins().collect()
}

// ---------------------------------------------------- results: empty

/// `Results::is_empty` is documented as "No value.": a subset call that
/// leaves out every implementation has no value.
#[test]
fn a_subset_call_leaving_out_every_implementation_is_empty() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log).value(1), on("run"));
    add(&pm, probe("b", &log).value(2), on("run"));
    let none = pm.subset_hook_caller(&["a", "b"]).unwrap();
    let results = none.run(0).unwrap();
    assert_eq!(results.len(), 0);
    assert_eq!(pairs(&results), []);
    assert!(log.take().is_empty(), "neither ran");
    assert!(results.is_empty(), "no value, so empty: {results:?}");
}

/// The same on an async hook (the `Sequence` driver).
#[tokio::test]
async fn an_async_subset_call_leaving_out_every_implementation_is_empty() {
    let log = Log::new();
    let pm = PluginManager::<dyn AsyncHooks>::new();
    add(&pm, probe("a", &log).value(1), on("run"));
    add(&pm, probe("b", &log).value(2), on("run"));
    let none = pm.subset_hook_caller(&["a", "b"]).unwrap();
    let results = none.run(0).await.unwrap();
    assert_eq!(results.len(), 0);
    assert!(results.is_empty(), "no value, so empty: {results:?}");
}

/// The same claim under `on_error = "continue"` when every
/// implementation fails: errors, and no value.
#[test]
fn a_continue_call_whose_implementations_all_fail_is_empty() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log).act(Act::Fail), on("notify"));
    add(&pm, probe("b", &log).act(Act::Fail), on("notify"));
    let results = pm.hook().notify(0).unwrap();
    assert_eq!(
        blame(results.errors()),
        [("notify", Some("b")), ("notify", Some("a"))]
    );
    assert_eq!(results.len(), 0);
    assert!(results.is_empty(), "no value, so empty: {results:?}");
}

// ------------------------------------------------------- call_extra

/// `call_extra`: "run the `extra` plugins, as if they had been registered
/// last". Checked against really registering them last, across tiers and
/// priorities (in the trylast tier, registered last runs last).
#[test]
fn call_extra_orders_extras_exactly_as_if_registered_last_in_every_tier() {
    let log = Log::new();
    let registered = [
        ("a", on("run")),
        ("t", on("run").trylast()),
        ("f", on("run").tryfirst()),
        ("h", on("run").priority(5)),
        ("w", on("run").wrapper().trylast()),
    ];
    let extras = [
        ("x1", on("run")),
        ("x2", on("run").trylast()),
        ("x3", on("run").tryfirst()),
        ("x4", on("run").priority(5)),
        ("x5", on("run").wrapper().trylast()),
        ("x6", on("run").wrapper()),
    ];
    let pm = PluginManager::<dyn Hooks>::new();
    for (name, decl) in registered {
        add(&pm, probe(name, &log), decl);
    }
    let with_extras = pm
        .call_extra(extras.map(|(name, decl)| (name, probe(name, &log).plugin(&[decl]))))
        .unwrap();
    let results = with_extras.run(0).unwrap();
    let via_extra = log.take();
    assert_eq!(
        run_order(&results),
        ["x3", "f", "x4", "h", "x1", "a", "t", "x2"]
    );
    assert_eq!(
        via_extra,
        [
            "x6:before",
            "w:before",
            "x5:before",
            "x3",
            "f",
            "x4",
            "h",
            "x1",
            "a",
            "t",
            "x2",
            "x5:after",
            "w:after",
            "x6:after",
        ]
    );

    let all = PluginManager::<dyn Hooks>::new();
    for (name, decl) in registered.into_iter().chain(extras) {
        add(&all, probe(name, &log), decl);
    }
    all.hook().run(0).unwrap();
    assert_eq!(via_extra, log.take(), "the same as registering them last");
    assert_eq!(pm.plugin_names(), ["a", "t", "f", "h", "w"]);
}

/// call_extra after plugins came and went (registration numbers with
/// gaps, a monitor taking numbers too): the extras still run as if
/// registered last.
#[test]
fn call_extra_counts_as_registered_last_after_churn_and_monitors() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log).value(1), on("run").trylast());
    add(&pm, probe("gone", &log), on("run"));
    pm.unregister("gone").unwrap();
    let handle = pm.add_hookcall_monitoring(|_| {}, |_, _| {});
    add(&pm, probe("b", &log).value(2), on("run").trylast());
    let relay = pm
        .call_extra([(
            "x",
            probe("x", &log).value(9).plugin(&[on("run").trylast()]),
        )])
        .unwrap();
    assert_eq!(
        pairs(&relay.run(0).unwrap()),
        [("a", 1), ("b", 2), ("x", 9)],
        "trylast tier: registered earlier first, extras last"
    );
    handle.undo();
}

// ------------------------------------------------------------ replace

/// `replace`: "The new one takes the old one's place in registration order
/// (the tie-break between implementations of equal rank)." In the trylast
/// tier (earlier first) and among wrappers too.
#[test]
fn replace_keeps_the_place_in_the_trylast_tier_and_among_wrappers() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    for name in ["a", "b", "c"] {
        probe(name, &log)
            .register(&pm, &[on("run").trylast(), on("run").wrapper()])
            .unwrap();
    }
    pm.hook().run(0).unwrap();
    let before = log.take();
    assert_eq!(
        before,
        [
            "c:before", "b:before", "a:before", "a", "b", "c", "a:after", "b:after", "c:after"
        ]
    );
    pm.replace(
        "b",
        probe("b", &log).plugin(&[on("run").trylast(), on("run").wrapper()]),
    )
    .unwrap();
    pm.hook().run(0).unwrap();
    assert_eq!(log.take(), before, "b keeps its place");
    assert_eq!(pm.plugin_names(), ["a", "b", "c"]);
}

/// `replace`, `set_blocked`, `unregister` made from inside a sync call:
/// "calls already running finish with the old one" / "each call works on
/// the snapshot it started with".
#[test]
fn changes_made_inside_a_sync_call_do_not_change_that_call() {
    struct Changer {
        pm: PluginManager<dyn Hooks>,
        log: Log,
        done: AtomicBool,
    }
    #[hookimpl]
    impl Hooks for Changer {
        #[hookimpl(tryfirst)]
        fn run(&self, _x: u32) -> HookResult<u32> {
            if !self.done.swap(true, Ordering::SeqCst) {
                let new_b = probe("b", &self.log).value(20).plugin(&[on("run")]);
                self.pm.replace("b", new_b)?;
                self.pm.set_blocked("c");
                self.pm.unregister("d")?;
                add(&self.pm, probe("e", &self.log).value(5), on("run"));
            }
            Ok(0)
        }
    }
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("b", &log).value(2), on("run"));
    add(&pm, probe("c", &log).value(3), on("run"));
    add(&pm, probe("d", &log).value(4), on("run"));
    let changer = Changer {
        pm: pm.clone(),
        log: log.clone(),
        done: AtomicBool::new(false),
    };
    pm.register("changer", changer).unwrap();
    let first = pm.hook().run(0).unwrap();
    assert_eq!(
        pairs(&first),
        [("changer", 0), ("d", 4), ("c", 3), ("b", 2)],
        "the call in flight finishes on its snapshot"
    );
    let second = pm.hook().run(0).unwrap();
    assert_eq!(pairs(&second), [("changer", 0), ("e", 5), ("b", 20)]);
    // Break the cycle manager -> changer -> manager.
    pm.unregister("changer").unwrap();
}

// ----------------------------------------------------------- historic

/// "The call is remembered and replayed to plugins registered later": a
/// plugin registered by an implementation of the historic call itself,
/// while that call runs, hears it exactly once.
#[test]
fn a_plugin_registered_during_a_historic_call_hears_it_exactly_once() {
    struct Host {
        pm: PluginManager<dyn Hooks>,
        log: Log,
    }
    #[hookimpl]
    impl Hooks for Host {
        fn configure(&self, x: u32) -> HookResult<u32> {
            self.log.push(format!("host:{x}"));
            if x == 1 {
                self.pm.register("guest", listener("guest", &self.log))?;
            }
            Ok(x)
        }
    }
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register(
        "host",
        Host {
            pm: pm.clone(),
            log: log.clone(),
        },
    )
    .unwrap();
    let results = pm.hook().configure(1).unwrap();
    assert_eq!(pairs(&results), [("host", 1)]);
    assert_eq!(log.take(), ["host:1", "guest:1"]);
    pm.hook().configure(2).unwrap();
    assert_eq!(log.take(), ["guest:2", "host:2"]);
    pm.unregister("host").unwrap();
}

/// `set_blocked`: "refuses to register that name until unblock": the
/// refused registration hears no replay; once unblocked, the plugin hears
/// every historic call, including those made while it was blocked.
#[test]
fn a_blocked_plugin_hears_no_replay_until_unblocked_then_all_of_them() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("late", listener("late", &log)).unwrap();
    pm.hook().configure(1).unwrap();
    pm.set_blocked("late");
    pm.hook().configure(2).unwrap();
    assert_eq!(log.take(), ["late:1"]);
    let refused = pm.register("late", listener("late", &log));
    assert!(matches!(refused, Err(ManagerError::Blocked(name)) if name == "late"));
    assert!(log.take().is_empty(), "a refused plugin hears nothing");
    assert!(pm.unblock("late"));
    pm.register("late", listener("late", &log)).unwrap();
    assert_eq!(log.take(), ["late:1", "late:2"]);
}

/// `replace`: "Historic calls made so far are replayed to it."
#[test]
fn a_replacement_hears_the_historic_calls_so_far() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("a", listener("a", &log)).unwrap();
    pm.hook().configure(1).unwrap();
    pm.hook().configure(2).unwrap();
    log.take();
    pm.replace("a", Plugin::new(listener("a2", &log))).unwrap();
    assert_eq!(log.take(), ["a2:1", "a2:2"]);
    pm.hook().configure(3).unwrap();
    assert_eq!(log.take(), ["a2:3"]);
}

/// `replace`: "a failed historic replay puts the old plugin back" — in
/// its place in the call order, still answering.
#[test]
fn a_replacement_whose_replay_fails_puts_the_old_plugin_back_in_its_place() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("a", listener("a", &log)).unwrap();
    pm.register("b", listener("b", &log)).unwrap();
    pm.hook().configure(5).unwrap();
    assert_eq!(log.take(), ["b:5", "a:5"]);
    let failing = Listener {
        fail_on: Some(5),
        ..listener("a2", &log)
    };
    let Err(err) = pm.replace("a", Plugin::new(failing)) else {
        panic!("the replacement's replay fails");
    };
    assert!(
        matches!(&err, ManagerError::HistoricReplay { plugin, .. } if plugin == "a"),
        "{err:?}"
    );
    assert_eq!(log.take(), ["a2:5"]);
    assert_eq!(pm.plugin_names(), ["a", "b"]);
    let results = pm.hook().configure(6).unwrap();
    assert_eq!(pairs(&results), [("b", 6), ("a", 6)]);
    assert_eq!(log.take(), ["b:6", "a:6"], "the old `a`, in its place");
}

/// historic.rs, step 3: "A call on a fixed snapshot (`call_extra`) is not
/// remembered."
#[test]
fn a_historic_call_through_call_extra_is_not_remembered() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("a", listener("a", &log)).unwrap();
    let extra = pm
        .call_extra([("x", Plugin::new(listener("x", &log)))])
        .unwrap();
    let results = extra.configure(7).unwrap();
    assert_eq!(pairs(&results), [("x", 7), ("a", 7)]);
    assert_eq!(log.take(), ["x:7", "a:7"]);
    pm.register("late", listener("late", &log)).unwrap();
    assert!(log.take().is_empty(), "nothing to replay");
}

// ------------------------------------------------------------- errors

/// README, Errors and safety: "A panic in any implementation, wrapper or
/// async future is caught and becomes such an error", under `on_error =
/// "continue"` too, where "every implementation runs": the plain ones all
/// run (one failing), then the wrapper's panic fails the call, and an
/// outer wrapper sees that panic as an error from `next`.
#[test]
fn under_continue_a_wrapper_panic_after_next_is_an_error_and_every_impl_ran() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log).act(Act::Fail), on("notify"));
    add(&pm, probe("b", &log).value(2), on("notify"));
    add(
        &pm,
        probe("inner", &log).wrap(Wrap::PanicAfter),
        on("notify").wrapper(),
    );
    let err = pm.hook().notify(0).unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!((err.hook(), err.plugin()), ("notify", Some("inner")));
    assert_eq!(log.take(), ["inner:before", "b", "a", "inner:after"]);

    add(
        &pm,
        probe("outer", &log).wrap(Wrap::Recover(9)),
        on("notify").wrapper().tryfirst(),
    );
    let recovered = pm.hook().notify(0).unwrap();
    assert_eq!(pairs(&recovered), [("outer", 9)]);
    assert_eq!(
        log.take(),
        [
            "outer:before",
            "inner:before",
            "b",
            "a",
            "inner:after",
            "outer:after"
        ]
    );
}

/// A firstresult hook with wrappers: "the call stops at the first Some";
/// an implementation after it, which would fail, never runs, and every
/// wrapper sees the answer.
#[test]
fn firstresult_with_wrappers_stops_before_a_failing_implementation() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("fails", &log).act(Act::Fail), on("first"));
    add(&pm, probe("none", &log).act(Act::Nothing), on("first"));
    add(&pm, probe("answers", &log).value(3), on("first").trylast());
    add(
        &pm,
        probe("zero", &log).act(Act::Nothing),
        on("first").tryfirst(),
    );
    add(&pm, probe("w1", &log), on("first").wrapper());
    add(&pm, probe("w2", &log), on("first").wrapper().trylast());
    // Plain order: zero (tryfirst), none, fails (normal: later first) ...
    // so `fails` fails before `answers` (trylast) is reached.
    let err = pm.hook().first(1).unwrap_err();
    assert_eq!(err.plugin(), Some("fails"));
    assert_eq!(
        log.take(),
        [
            "w1:before",
            "w2:before",
            "zero",
            "none",
            "fails",
            "w2:after",
            "w1:after"
        ]
    );
    // With `fails` out of the way through a subset, `answers` answers.
    let subset = pm.subset_hook_caller(&["fails"]).unwrap();
    assert_eq!(subset.first(1).unwrap(), some("answers", 4));
    assert_eq!(
        log.take(),
        [
            "w1:before",
            "w2:before",
            "zero",
            "none",
            "answers",
            "w2:after",
            "w1:after"
        ]
    );
}

// ---------------------------------------------------------- monitoring

/// `MonitoringHandle::undo`: "Stops calling this monitor's callbacks (from
/// the next call on)". Undone inside a call: that call's `after` is still
/// heard (its `before` was), a call made after the undo, even nested in
/// it, is not.
#[test]
fn a_monitor_undone_during_a_call_hears_that_calls_end_and_nothing_after() {
    struct Undoer {
        pm: PluginManager<dyn Hooks>,
        handle: Mutex<Option<MonitoringHandle>>,
    }
    #[hookimpl]
    impl Hooks for Undoer {
        fn run(&self, x: u32) -> HookResult<u32> {
            if let Some(handle) = self.handle.lock().unwrap().take() {
                handle.undo();
            }
            self.pm.hook().notify(x)?;
            Ok(x)
        }
    }
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("n", &log), on("notify"));
    let undoer = Arc::new(Undoer {
        pm: pm.clone(),
        handle: Mutex::new(None),
    });
    pm.register_plugin("undoer", Plugin::from_arc(undoer.clone()))
        .unwrap();
    let heard = Log::new();
    let (b, a) = (heard.clone(), heard.clone());
    let handle = pm.add_hookcall_monitoring(
        move |call| b.push(format!("before {}", call.hook.name)),
        move |call, outcome| a.push(format!("after {} {}", call.hook.name, outcome.is_ok())),
    );
    *undoer.handle.lock().unwrap() = Some(handle);
    pm.hook().run(1).unwrap();
    assert_eq!(heard.take(), ["before run", "after run true"]);
    pm.hook().run(2).unwrap();
    assert!(heard.take().is_empty());
    pm.unregister("undoer").unwrap();
}

/// `add_hookcall_monitoring`: "Calls `before` ahead of every hook call and
/// `after` once it ended". Added inside a call: the nested calls made
/// after it are heard whole; the call running is not heard at all (no
/// `after` without a `before`).
#[test]
fn a_monitor_added_during_a_call_hears_only_calls_made_after_it() {
    struct Adder {
        pm: PluginManager<dyn Hooks>,
        heard: Log,
        handle: Mutex<Option<MonitoringHandle>>,
    }
    #[hookimpl]
    impl Hooks for Adder {
        fn run(&self, x: u32) -> HookResult<u32> {
            let mut handle = self.handle.lock().unwrap();
            if handle.is_none() {
                let (b, a) = (self.heard.clone(), self.heard.clone());
                *handle = Some(self.pm.add_hookcall_monitoring(
                    move |call| b.push(format!("before {}", call.hook.name)),
                    move |call, _| a.push(format!("after {}", call.hook.name)),
                ));
                drop(handle);
                // `first` has no implementation: idle, unless a monitor listens.
                self.pm.hook().first(x)?;
            }
            Ok(x)
        }
    }
    let heard = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    let adder = Arc::new(Adder {
        pm: pm.clone(),
        heard: heard.clone(),
        handle: Mutex::new(None),
    });
    pm.register_plugin("adder", Plugin::from_arc(adder.clone()))
        .unwrap();
    pm.hook().run(1).unwrap();
    assert_eq!(heard.take(), ["before first", "after first"]);
    pm.hook().run(2).unwrap();
    assert_eq!(heard.take(), ["before run", "after run"]);
    adder.handle.lock().unwrap().take().unwrap().undo();
    pm.unregister("adder").unwrap();
}

// --------------------------------------------------------------- depth

#[hookspec]
pub trait Nest {
    /// Calls `inner` (sync) from an async implementation.
    async fn outer(&self, pm: PluginManager<dyn Nest>, levels: u32) -> HookResult<u32>;
    /// The same, `concurrent` (the general async driver).
    #[hookspec(concurrent)]
    async fn outer_together(&self, pm: PluginManager<dyn Nest>, levels: u32) -> HookResult<u32>;
    /// Recurses `levels` more times.
    fn inner(&self, pm: PluginManager<dyn Nest>, levels: u32) -> HookResult<u32>;
    /// Something to await.
    async fn leaf(&self, x: u32) -> HookResult<u32>;
}

struct Diver;

fn dive(pm: &PluginManager<dyn Nest>, levels: u32) -> HookResult<u32> {
    Ok(pm
        .hook()
        .inner(pm.clone(), levels)?
        .into_values()
        .iter()
        .sum())
}

#[hookimpl]
impl Nest for Diver {
    async fn outer(&self, pm: PluginManager<dyn Nest>, levels: u32) -> HookResult<u32> {
        // On a later poll than the first.
        tokio::task::yield_now().await;
        dive(&pm, levels)
    }

    async fn outer_together(&self, pm: PluginManager<dyn Nest>, levels: u32) -> HookResult<u32> {
        tokio::task::yield_now().await;
        dive(&pm, levels)
    }

    fn inner(&self, pm: PluginManager<dyn Nest>, levels: u32) -> HookResult<u32> {
        if levels == 0 {
            return Ok(1);
        }
        Ok(dive(&pm, levels - 1)? + 1)
    }

    async fn leaf(&self, x: u32) -> HookResult<u32> {
        Ok(x)
    }
}

fn chain_of(err: &HookError) -> (usize, Vec<(&'static str, &'static str)>) {
    match err.kind() {
        HookErrorKind::TooDeep { limit, chain } => (*limit, chain.clone()),
        other => panic!("not a depth error: {other:?} ({err:?})"),
    }
}

/// depth.rs: "A sync hook called from inside an async implementation
/// counts on the same scale" (and "past the limit the call fails with an
/// error naming the chain"), after the implementation yielded, through
/// both async drivers.
#[tokio::test]
async fn sync_calls_inside_async_implementations_count_toward_the_depth_limit() {
    let pm = PluginManager::<dyn Nest>::new();
    pm.register("diver", Diver).unwrap();
    pm.set_max_depth(4);
    // outer (1) -> inner (2) -> inner (3) -> inner (4): within the limit.
    assert_eq!(
        pm.hook().outer(pm.clone(), 2).await.unwrap().into_values(),
        [3]
    );
    assert_eq!(
        pm.hook()
            .outer_together(pm.clone(), 2)
            .await
            .unwrap()
            .into_values(),
        [3]
    );
    // One more level: inner at depth 5.
    for (outer, err) in [
        ("outer", pm.hook().outer(pm.clone(), 3).await.unwrap_err()),
        (
            "outer_together",
            pm.hook().outer_together(pm.clone(), 3).await.unwrap_err(),
        ),
    ] {
        assert!(err.is_too_deep(), "{err:?}");
        let (limit, chain) = chain_of(&err);
        assert_eq!(limit, 4);
        assert_eq!(
            chain,
            [
                (outer, "diver"),
                ("inner", "diver"),
                ("inner", "diver"),
                ("inner", "diver")
            ]
        );
    }
}

/// lib.rs, async calls: "Its depth, like every call's, is judged where it
/// runs: a call made outside any other and awaited inside one at the depth
/// limit is too deep." For a hook with an implementation (not idle).
#[tokio::test]
async fn a_busy_async_call_made_outside_and_awaited_at_the_limit_is_too_deep() {
    type Pending = futures::future::BoxFuture<'static, Result<Results<u32>, HookError>>;
    struct Awaiter {
        made: Mutex<Option<Pending>>,
    }
    #[hookimpl]
    impl Nest for Awaiter {
        async fn outer(&self, _pm: PluginManager<dyn Nest>, _levels: u32) -> HookResult<u32> {
            let made = self.made.lock().unwrap().take().expect("a call to await");
            Ok(made.await?.into_values().iter().sum())
        }
    }
    let pm: &'static PluginManager<dyn Nest> = Box::leak(Box::new(PluginManager::new()));
    let relay: &'static NestRelay<'static> = Box::leak(Box::new(pm.hook()));
    pm.register("diver", Diver).unwrap();
    let awaiter = Arc::new(Awaiter {
        made: Mutex::new(None),
    });
    pm.register_plugin("awaiter", Plugin::from_arc(awaiter.clone()))
        .unwrap();

    pm.set_max_depth(2);
    *awaiter.made.lock().unwrap() = Some(Box::pin(relay.leaf(7)));
    let results = pm.hook().outer(pm.clone(), 0).await;
    // `diver`'s outer also runs (registered earlier: after `awaiter`).
    assert_eq!(results.unwrap().into_values(), [7, 1]);

    pm.set_max_depth(1);
    *awaiter.made.lock().unwrap() = Some(Box::pin(relay.leaf(7)));
    let err = pm.hook().outer(pm.clone(), 0).await.unwrap_err();
    // A depth error blames no plugin (`HookError::plugin`), it names the chain.
    assert_eq!((err.hook(), err.plugin()), ("leaf", None), "{err:?}");
    let (limit, chain) = chain_of(&err);
    assert_eq!((limit, chain), (1, vec![("outer", "awaiter")]));
}

// --------------------------------------------------------- time limits

#[hookspec]
pub trait Timed {
    /// All at once, 50 ms each.
    #[hookspec(concurrent, timeout_ms = 50)]
    async fn together(&self, x: u32) -> HookResult<u32>;
    /// One after another, 50 ms each.
    #[hookspec(timeout_ms = 50)]
    async fn limited(&self, x: u32) -> HookResult<u32>;
}

/// Answers `x + value`, or never (`hang`); as a wrapper, sleeps `nap`
/// before running `next`.
struct Slow {
    value: u32,
    hang: bool,
    nap: Duration,
}

fn slow(value: u32) -> Slow {
    Slow {
        value,
        hang: false,
        nap: Duration::ZERO,
    }
}

impl Slow {
    async fn answer(&self, x: u32) -> HookResult<u32> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(x + self.value)
    }
}

#[hookimpl]
impl Timed for Slow {
    async fn together(&self, x: u32) -> HookResult<u32> {
        self.answer(x).await
    }

    async fn limited(&self, x: u32) -> HookResult<u32> {
        self.answer(x).await
    }

    #[hookimpl(wrapper)]
    async fn limited(
        &self,
        _x: u32,
        next: AsyncNext<'_, Results<u32>>,
    ) -> HookResult<Results<u32>> {
        tokio::time::sleep(self.nap).await;
        Ok(next.await?)
    }
}

/// `timeout_ms = N`: "each plain implementation may take N ms; overrunning
/// is an error", for a `concurrent` hook too: the one that hangs is
/// blamed, the others' answers do not save the call.
#[tokio::test]
async fn a_concurrent_hook_with_a_time_limit_blames_the_implementation_that_hangs() {
    let pm = PluginManager::<dyn Timed>::new();
    pm.register("quick", slow(1)).unwrap();
    pm.register(
        "hangs",
        Slow {
            hang: true,
            ..slow(2)
        },
    )
    .unwrap();
    pm.register("also_quick", slow(3)).unwrap();
    let err = pm.hook().together(10).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!((err.hook(), err.plugin()), ("together", Some("hangs")));
    assert!(
        matches!(err.kind(), HookErrorKind::TimedOut(limit) if *limit == Duration::from_millis(50))
    );
    pm.unregister("hangs").unwrap();
    let results = pm.hook().together(10).await.unwrap();
    assert_eq!(pairs(&results), [("also_quick", 13), ("quick", 11)]);
}

/// `timeout_ms = N` limits "each plain implementation": a wrapper that
/// takes longer than N ms before running `next` is not cut off.
#[tokio::test]
async fn a_time_limit_does_not_cut_off_a_slow_wrapper() {
    let pm = PluginManager::<dyn Timed>::new();
    pm.register("plain", slow(1)).unwrap();
    let wrapper = Slow {
        nap: Duration::from_millis(120),
        ..slow(0)
    };
    let plugin = Plugin::from_parts(
        Arc::new(wrapper) as Arc<dyn Timed>,
        vec![on("limited").wrapper()],
    );
    pm.register_plugin("napper", plugin).unwrap();
    let results = pm.hook().limited(5).await.unwrap();
    assert_eq!(pairs(&results), [("plain", 6)]);
}

// ------------------------------------------------------ more: manager

/// `call_extra`: "# Errors: As register for each extra plugin": a blocked
/// name, a name twice among the extras, and an object registered already
/// are refused as `register` refuses them.
#[test]
fn call_extra_refuses_what_register_refuses() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    let shared = Arc::new(probe("a", &log));
    pm.register_plugin(
        "a",
        Plugin::from_parts(shared.clone() as Arc<dyn Hooks>, vec![on("run")]),
    )
    .unwrap();
    pm.set_blocked("banned");

    let blocked = pm.call_extra([("banned", probe("banned", &log).plugin(&[on("run")]))]);
    assert!(matches!(blocked, Err(ManagerError::Blocked(name)) if name == "banned"));

    let twice = pm.call_extra([
        ("x", probe("x", &log).plugin(&[on("run")])),
        ("x", probe("x", &log).plugin(&[on("run")])),
    ]);
    assert!(matches!(twice, Err(ManagerError::DuplicateName(name)) if name == "x"));

    let again = pm.call_extra([(
        "alias",
        Plugin::from_parts(shared as Arc<dyn Hooks>, vec![on("run")]),
    )]);
    assert!(
        matches!(&again, Err(ManagerError::AlreadyRegistered { plugin, registered_as }) if plugin == "alias" && registered_as == "a")
    );
    assert_eq!(pm.plugin_names(), ["a"]);
}

/// "A historic hook `h` also gets `h_with_results(args..., callback)`: the
/// callback receives each Answer of this call and, later, of every replay
/// of it to a newly registered plugin": a plugin put in by `replace`
/// ("Historic calls made so far are replayed to it") included.
#[test]
fn a_historic_result_callback_hears_replays_to_registered_and_replacing_plugins() {
    let log = Log::new();
    let heard = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("a", listener("a", &log)).unwrap();
    let h = heard.clone();
    let results = pm
        .hook()
        .configure_with_results(4, move |answer| {
            h.push(format!("{}={}", answer.plugin, answer.value))
        })
        .unwrap();
    assert_eq!(pairs(&results), [("a", 4)]);
    assert_eq!(heard.take(), ["a=4"]);
    pm.register("b", listener("b", &log)).unwrap();
    assert_eq!(heard.take(), ["b=4"]);
    pm.replace("a", Plugin::new(listener("a2", &log))).unwrap();
    assert_eq!(heard.take(), ["a=4"], "the replacement, registered as `a`");
    assert_eq!(log.take(), ["a:4", "b:4", "a2:4"]);
}

/// A historic call through a subset caller: "call all but those" now,
/// and "remembered and replayed to plugins registered later".
#[test]
fn a_historic_call_through_a_subset_caller_skips_now_and_is_replayed_later() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("a", listener("a", &log)).unwrap();
    pm.register("b", listener("b", &log)).unwrap();
    let but_b = pm.subset_hook_caller(&["b"]).unwrap();
    assert_eq!(pairs(&but_b.configure(3).unwrap()), [("a", 3)]);
    assert_eq!(log.take(), ["a:3"]);
    pm.register("c", listener("c", &log)).unwrap();
    assert_eq!(log.take(), ["c:3"]);
}

/// lib.rs, Errors: "Nested hook calls are limited in depth": a historic
/// replay run by a `register` made inside a hook call is nested in it; at
/// the limit, the replay is too deep and the registration is refused
/// (`register`: "Refused, with the manager left as it was, ... when
/// replaying a historic call to it fails").
#[test]
fn a_replay_inside_a_hook_call_at_the_depth_limit_refuses_the_registration() {
    struct Registrar {
        pm: PluginManager<dyn Hooks>,
        log: Log,
        outcome: Mutex<Option<Result<(), ManagerError>>>,
    }
    #[hookimpl]
    impl Hooks for Registrar {
        fn run(&self, x: u32) -> HookResult<u32> {
            let outcome = self.pm.register("late", listener("late", &self.log));
            *self.outcome.lock().unwrap() = Some(outcome);
            Ok(x)
        }
    }
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.hook().configure(1).unwrap();
    let registrar = Arc::new(Registrar {
        pm: pm.clone(),
        log: log.clone(),
        outcome: Mutex::new(None),
    });
    pm.register_plugin("registrar", Plugin::from_arc(registrar.clone()))
        .unwrap();
    pm.set_max_depth(1);
    pm.hook().run(0).unwrap();
    let outcome = registrar.outcome.lock().unwrap().take().unwrap();
    match outcome {
        Err(ManagerError::HistoricReplay { plugin, error }) => {
            assert_eq!(plugin, "late");
            assert!(error.is_too_deep(), "{error:?}");
        }
        other => panic!("expected a refused replay, got {other:?}"),
    }
    assert!(log.take().is_empty(), "too deep: `late` never ran");
    assert!(!pm.has_plugin("late"));
    assert_eq!(pm.plugin_names(), ["registrar"]);

    pm.set_max_depth(2);
    pm.hook().run(0).unwrap();
    assert!(matches!(
        registrar.outcome.lock().unwrap().take(),
        Some(Ok(()))
    ));
    assert_eq!(log.take(), ["late:1"]);
    pm.unregister("registrar").unwrap();
}

/// `replace`: "calls in flight finish on the old one", for an async call
/// held between two implementations.
#[tokio::test]
async fn an_async_call_in_flight_finishes_on_the_plugin_replaced_meanwhile() {
    let log = Log::new();
    let pm = PluginManager::<dyn AsyncHooks>::new();
    let (entered, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let hold = Gate::Hold {
        entered: entered.clone(),
        release: release.clone(),
    };
    add(&pm, probe("victim", &log).value(1), on("run"));
    add(&pm, probe("gate", &log).gate(hold), on("run").tryfirst());
    let relay = pm.hook();
    let (results, ()) = tokio::join!(relay.run(0), async {
        entered.notified().await;
        pm.replace(
            "victim",
            probe("victim", &log).value(2).plugin(&[on("run")]),
        )
        .unwrap();
        release.notify_one();
    });
    assert_eq!(pairs(&results.unwrap()), [("gate", 0), ("victim", 1)]);
    // The next call: the gate holds again; release it at once.
    release.notify_one();
    assert_eq!(
        pairs(&pm.hook().run(0).await.unwrap()),
        [("gate", 0), ("victim", 2)]
    );
}

// ------------------------------------------- more: concurrent answers

#[hookspec]
pub trait Race {
    /// All at once; the first `Some` in call order answers.
    #[hookspec(concurrent, firstresult)]
    async fn pick(&self, x: u32) -> HookResult<Option<u32>>;
}

/// Answers `Some(value)` or `None`, after waiting for `wait` (if any);
/// notifies `done` (if any) once it answered.
struct Racer {
    value: Option<u32>,
    wait: Option<Arc<tokio::sync::Notify>>,
    done: Option<Arc<tokio::sync::Notify>>,
    log: Log,
    name: &'static str,
}

#[hookimpl]
impl Race for Racer {
    async fn pick(&self, _x: u32) -> HookResult<Option<u32>> {
        if let Some(wait) = &self.wait {
            wait.notified().await;
        }
        self.log.push(self.name);
        if let Some(done) = &self.done {
            done.notify_one();
        }
        Ok(self.value)
    }
}

/// `concurrent`: "all plain implementations run at once; results still in
/// call order", with `firstresult`: the answer is the first `Some` in call
/// order, not the first to finish.
#[tokio::test]
async fn a_concurrent_firstresult_answers_in_call_order_not_completion_order() {
    let log = Log::new();
    let signal = Arc::new(tokio::sync::Notify::new());
    let pm = PluginManager::<dyn Race>::new();
    let racer = |name, value, wait: Option<&Arc<_>>, done: Option<&Arc<_>>| Racer {
        value,
        wait: wait.cloned(),
        done: done.cloned(),
        log: log.clone(),
        name,
    };
    // Call order (at equal rank, registered later first): slow, fast, none.
    pm.register("none", racer("none", None, None, None))
        .unwrap();
    pm.register("fast", racer("fast", Some(2), None, Some(&signal)))
        .unwrap();
    pm.register("slow", racer("slow", Some(1), Some(&signal), None))
        .unwrap();
    let answer = pm.hook().pick(0).await.unwrap();
    assert_eq!(answer, some("slow", 1));
    let finished = log.take();
    assert_eq!(finished.len(), 3, "all ran: {finished:?}");
    assert!(
        finished.iter().position(|n| n == "fast") < finished.iter().position(|n| n == "slow"),
        "fast finished first: {finished:?}"
    );
}

// --------------------------------------------- firstresult and continue

#[hookspec]
pub trait Lookup {
    #[hookspec(firstresult, on_error = "continue")]
    fn find(&self, key: u32) -> HookResult<Option<u32>>;
}

/// Fails for keys it does not know; answers the others.
struct Finder(&'static str, u32);
#[hookimpl]
impl Lookup for Finder {
    fn find(&self, key: u32) -> HookResult<Option<u32>> {
        if key == self.1 {
            Ok(Some(key * 10))
        } else {
            Err(Boom(self.0).into())
        }
    }
}

/// `on_error = "continue"` with `firstresult`: "the call stops at the
/// first `Some`", a failing implementation is skipped (its error logged:
/// one answer has nowhere to keep errors), and when all fail the call
/// answers `None`.
#[test]
fn a_firstresult_continue_call_skips_the_implementations_that_fail() {
    let pm = PluginManager::<dyn Lookup>::new();
    pm.register("knows_1", Finder("knows_1", 1)).unwrap();
    pm.register("knows_2", Finder("knows_2", 2)).unwrap();
    // `knows_2`, registered later, runs first and fails for key 1.
    let answer = pm.hook().find(1).unwrap().unwrap();
    assert_eq!((answer.plugin, answer.value), ("knows_1", 10));
    let answer = pm.hook().find(2).unwrap().unwrap();
    assert_eq!((answer.plugin, answer.value), ("knows_2", 20));
    assert!(pm.hook().find(3).unwrap().is_none(), "every one failed");
}
