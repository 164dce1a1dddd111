//! Errors: under the default policy the first error stops the chain and
//! the caller's `HookError` names hook and plugin; under `continue` every
//! implementation runs and errors come back beside the values.

mod common;

use common::*;
use hookery::HookErrorKind;
use hookery::prelude::*;

/// `ok1` (priority 3), `bad` (2, fails), `ok2` (1), `bad2` (0, fails),
/// `ok3` (-1), all implementing `hook`.
fn mixed(log: &Log, hook: &'static str) -> PluginManager<dyn Hooks> {
    let pm = PluginManager::<dyn Hooks>::new();
    let plugins = [
        ("ok1", Act::Value(1)),
        ("bad", Act::Fail),
        ("ok2", Act::Value(2)),
        ("bad2", Act::Fail),
        ("ok3", Act::Value(3)),
    ];
    for (priority, (name, act)) in (-1..=3).rev().zip(plugins) {
        add(&pm, probe(name, log).act(act), on(hook).priority(priority));
    }
    pm
}

#[test]
fn first_error_stops_the_chain() {
    let log = Log::new();
    let pm = mixed(&log, "run");
    let err = pm.hook().run(0).unwrap_err();
    assert_eq!(log.take(), ["ok1", "bad"], "nothing after `bad` runs");
    assert_eq!(err.hook(), "run");
    assert_eq!(err.plugin(), Some("bad"));
}

#[test]
fn hook_error_display_names_plugin_hook_and_cause() {
    let pm = mixed(&Log::new(), "run");
    let err = pm.hook().run(0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `bad` failed in hook `run`: boom from bad"
    );
    assert!(!err.is_panic() && !err.is_timeout() && !err.is_too_deep());
    assert!(matches!(err.kind(), HookErrorKind::Failed(_)));
}

#[test]
fn typed_error_is_recovered_by_downcasting_the_cause() {
    let pm = mixed(&Log::new(), "run");
    let err = pm.hook().run(0).unwrap_err();
    let cause = err.cause().expect("an implementation's own error");
    assert_eq!(cause.downcast_ref::<Boom>(), Some(&Boom("bad")));
    let source = std::error::Error::source(&err).expect("the cause is the source");
    assert_eq!(source.to_string(), "boom from bad");
}

#[test]
fn firstresult_error_stops_the_chain_too() {
    let log = Log::new();
    let pm = mixed(&log, "first");
    // `ok1` answers first, so the call stops there without error ...
    assert_eq!(pm.hook().first(0).unwrap(), some("ok1", 1));
    assert_eq!(log.take(), ["ok1"]);
    // ... until it is gone: then `bad` fails the call and `ok2` never runs.
    pm.unregister("ok1").unwrap();
    let err = pm.hook().first(0).unwrap_err();
    assert_eq!((err.hook(), err.plugin()), ("first", Some("bad")));
    assert_eq!(log.take(), ["bad"]);
}

#[test]
fn continue_policy_runs_everything_and_returns_errors_beside_values() {
    let log = Log::new();
    let pm = mixed(&log, "notify");
    let results = pm.hook().notify(0).unwrap();
    assert_eq!(log.take(), ["ok1", "bad", "ok2", "bad2", "ok3"]);
    assert_eq!(pairs(&results), [("ok1", 1), ("ok2", 2), ("ok3", 3)]);
    assert_eq!(
        blame(results.errors()),
        [("notify", Some("bad")), ("notify", Some("bad2"))]
    );
    let causes: Vec<_> = results
        .errors()
        .iter()
        .map(|e| e.cause().unwrap().downcast_ref::<Boom>().unwrap())
        .collect();
    assert_eq!(causes, [&Boom("bad"), &Boom("bad2")]);
}

#[test]
fn continue_policy_keeps_panics_beside_values() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("ok", &log).value(1), on("notify"));
    add(&pm, probe("panics", &log).act(Act::Panic), on("notify"));
    let results = pm.hook().notify(0).unwrap();
    assert_eq!(pairs(&results), [("ok", 1)]);
    assert_eq!(blame(results.errors()), [("notify", Some("panics"))]);
    assert!(results.errors()[0].is_panic());
}

/// A plugin whose hook fails with an error of the caller's choosing.
struct Refuses;
#[hookimpl]
impl Hooks for Refuses {
    fn run(&self, x: u32) -> HookResult<u32> {
        match x {
            0 => hookery::anyhow::bail!("zero is not allowed"),
            _ => Err(std::io::Error::other("disk full").into()),
        }
    }
}

#[test]
fn any_error_type_reaches_the_caller() {
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("refuses", Refuses).unwrap();
    let err = pm.hook().run(0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `refuses` failed in hook `run`: zero is not allowed"
    );
    let err = pm.hook().run(1).unwrap_err();
    let io = err
        .cause()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(io.to_string(), "disk full");
}

#[test]
fn the_manager_works_normally_after_a_failed_call() {
    let log = Log::new();
    let pm = mixed(&log, "run");
    pm.hook().run(0).unwrap_err();
    pm.unregister("bad").unwrap();
    pm.unregister("bad2").unwrap();
    log.take();
    assert_eq!(pm.hook().run(0).unwrap().into_values(), [1, 2, 3]);
}
