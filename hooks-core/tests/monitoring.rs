//! `add_hookcall_monitoring`: `before` and `after` hear about every call,
//! with the hook, its implementations in call order and the outcome;
//! `undo()` stops them.

mod common;

use common::*;
use hookery::prelude::*;
use hookery::{HookCallInfo, MonitoringHandle};

/// Logs `before <hook> [<plugins>]` and `after <hook> ok|err <plugin>`.
fn monitor<S: hookery::Spec + ?Sized>(pm: &PluginManager<S>, log: &Log) -> MonitoringHandle {
    let describe = |info: &HookCallInfo<'_>| {
        let plugins: Vec<_> = info.impls.iter().map(|i| i.plugin).collect();
        format!("{} {}", info.hook.name, plugins.join(","))
    };
    let (before, after) = (log.clone(), log.clone());
    pm.add_hookcall_monitoring(
        move |info| before.push(format!("before {}", describe(info))),
        move |info, outcome| {
            let outcome = match outcome {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("err {}", e.plugin().unwrap_or("-")),
            };
            after.push(format!("after {} {outcome}", describe(info)));
        },
    )
}

/// Wrapper `w`, then `b` (priority 1), then `a`, all on `run` and `notify`.
fn wab(log: &Log, b: Act) -> PluginManager<dyn Hooks> {
    let pm = PluginManager::<dyn Hooks>::new();
    let hooks = |priority| {
        [
            on("run").priority(priority),
            on("notify").priority(priority),
        ]
    };
    probe("a", log).register(&pm, &hooks(0)).unwrap();
    probe("b", log).act(b).register(&pm, &hooks(1)).unwrap();
    add(&pm, probe("w", log), on("run").wrapper());
    pm
}

/// Calls `hook` on `wab(b)` under a monitor: the log.
fn monitored(b: Act, hook: &str) -> Vec<String> {
    let log = Log::new();
    let pm = wab(&log, b);
    let _handle = monitor(&pm, &log);
    let _ = match hook {
        "run" => pm.hook().run(0),
        _ => pm.hook().notify(0),
    };
    log.take()
}

#[test]
fn monitors_see_hook_impls_in_call_order_and_the_outcome() {
    let expected = [
        "before run w,b,a",
        "w:before",
        "b",
        "a",
        "w:after",
        "after run w,b,a ok",
    ];
    assert_eq!(monitored(Act::Value(2), "run"), expected);
}

#[test]
fn monitors_see_a_failed_call() {
    let expected = [
        "before run w,b,a",
        "w:before",
        "b",
        "w:after",
        "after run w,b,a err b",
    ];
    assert_eq!(monitored(Act::Fail, "run"), expected);
}

#[test]
fn under_continue_monitors_see_a_call_that_succeeded() {
    let expected = ["before notify b,a", "b", "a", "after notify b,a ok"];
    assert_eq!(monitored(Act::Fail, "notify"), expected);
}

#[test]
fn undo_stops_the_monitor() {
    let log = Log::new();
    let pm = wab(&log, Act::Value(2));
    let handle = monitor(&pm, &log);
    pm.hook().notify(0).unwrap();
    assert_eq!(log.take().len(), 4);
    handle.undo();
    pm.hook().notify(0).unwrap();
    assert_eq!(log.take(), ["b", "a"]);
}

#[test]
fn every_monitor_is_called_and_undone_separately() {
    let (log, first, second) = (Log::new(), Log::new(), Log::new());
    let pm = wab(&log, Act::Value(2));
    let one = monitor(&pm, &first);
    let two = monitor(&pm, &second);
    pm.hook().notify(0).unwrap();
    assert_eq!(first.take(), ["before notify b,a", "after notify b,a ok"]);
    assert_eq!(second.take(), ["before notify b,a", "after notify b,a ok"]);
    one.undo();
    pm.hook().notify(0).unwrap();
    assert!(first.take().is_empty());
    assert_eq!(second.take().len(), 2);
    two.undo();
}

#[test]
fn monitors_hear_calls_made_through_call_extra() {
    let log = Log::new();
    let pm = wab(&log, Act::Value(2));
    let _handle = monitor(&pm, &log);
    let extra = [("x", probe("x", &log).plugin(&[on("notify")]))];
    pm.call_extra(extra).unwrap().notify(0).unwrap();
    // `x` has priority 0 like `a` and counts as registered last.
    assert_eq!(
        log.take(),
        [
            "before notify b,x,a",
            "b",
            "x",
            "a",
            "after notify b,x,a ok"
        ]
    );
}

#[test]
fn monitors_of_a_subset_call_see_only_the_impls_it_runs() {
    let log = Log::new();
    let pm = wab(&log, Act::Value(2));
    let _handle = monitor(&pm, &log);
    pm.subset_hook_caller(&["b"]).unwrap().notify(0).unwrap();
    assert_eq!(log.take(), ["before notify a", "a", "after notify a ok"]);
}

#[tokio::test]
async fn monitors_hear_async_calls() {
    let log = Log::new();
    let pm = PluginManager::<dyn AsyncHooks>::new();
    add(&pm, probe("a", &log), on("run"));
    add(
        &pm,
        probe("bad", &log).act(Act::Fail).gate(Gate::Yield),
        on("run").trylast(),
    );
    let _handle = monitor(&pm, &log);
    pm.hook().run(0).await.unwrap_err();
    assert_eq!(
        log.take(),
        ["before run a,bad", "a", "bad", "after run a,bad err bad"]
    );
}
