//! Historic hooks: every call is remembered and replayed, in order, to
//! plugins registered later; a failing replay refuses the registration.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use hookery::ManagerError;
use hookery::prelude::*;

#[test]
fn historic_calls_are_replayed_in_order_to_later_plugins() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("early", listener("early", &log)).unwrap();
    let results = pm.hook().configure(1).unwrap();
    assert_eq!(pairs(&results), [("early", 1)]);
    pm.hook().configure(2).unwrap();
    assert_eq!(log.take(), ["early:1", "early:2"]);

    pm.register("late", listener("late", &log)).unwrap();
    assert_eq!(
        log.take(),
        ["late:1", "late:2"],
        "replayed to `late` only, in order"
    );

    pm.hook().configure(3).unwrap();
    assert_eq!(log.take(), ["late:3", "early:3"], "later calls reach both");
    pm.register("later", listener("later", &log)).unwrap();
    assert_eq!(log.take(), ["later:1", "later:2", "later:3"]);
}

#[test]
fn nothing_is_replayed_to_plugins_without_the_hook_or_for_other_hooks() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.hook().configure(1).unwrap();
    pm.hook().run(0).unwrap();
    add(&pm, probe("runner", &log), on("run"));
    assert_eq!(log.take(), Vec::<String>::new());
    probe("both", &log)
        .register(&pm, &[on("run"), on("configure")])
        .unwrap();
    assert_eq!(
        log.take(),
        ["both"],
        "only the `configure` call is replayed"
    );
}

#[test]
fn a_failing_replay_refuses_the_registration() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("early", listener("early", &log)).unwrap();
    for x in [1, 2, 3] {
        pm.hook().configure(x).unwrap();
    }
    log.take();
    let picky = Listener {
        fail_on: Some(2),
        ..listener("picky", &log)
    };
    let err = pm.register("picky", picky).unwrap_err();
    assert_eq!(
        log.take(),
        ["picky:1", "picky:2"],
        "the replay stops at the failure"
    );
    match &err {
        ManagerError::HistoricReplay { plugin, error } => {
            assert_eq!(plugin, "picky");
            assert_eq!((error.hook(), error.plugin()), ("configure", Some("picky")));
            assert_eq!(
                error.cause().unwrap().downcast_ref::<Boom>(),
                Some(&Boom("picky"))
            );
        }
        other => panic!("expected HistoricReplay, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "plugin `picky` was not registered: replaying a historic call failed: \
         plugin `picky` failed in hook `configure`: boom from picky"
    );
    assert!(!pm.has_plugin("picky"));
    assert_eq!(pm.plugin_names(), ["early"]);
    pm.hook().configure(4).unwrap();
    assert_eq!(
        log.take(),
        ["early:4"],
        "`picky` does not take part in later calls"
    );
}

#[test]
fn a_refused_plugin_is_dropped_and_its_name_is_free_again() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.hook().configure(1).unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let err = probe("p", &log)
        .act(Act::Fail)
        .drop_flag(&dropped)
        .register(&pm, &[on("configure")])
        .unwrap_err();
    assert!(matches!(err, ManagerError::HistoricReplay { .. }));
    assert!(dropped.load(Ordering::SeqCst));
    add(&pm, probe("p", &log), on("configure"));
    assert!(pm.has_plugin("p"));
}

#[test]
fn a_historic_call_that_fails_is_still_remembered() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("bad", &log).act(Act::Fail), on("configure"));
    let err = pm.hook().configure(7).unwrap_err();
    assert_eq!(err.plugin(), Some("bad"));
    pm.register("late", listener("late", &log)).unwrap();
    assert_eq!(log.take(), ["bad", "late:7"]);
}

#[test]
fn a_historic_result_callback_hears_the_call_now_and_every_replay_to_a_later_plugin() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("early", listener("early", &log)).unwrap();
    let heard = Log::new();
    let sink = heard.clone();
    let results = pm
        .hook()
        .configure_with_results(7, move |answer| {
            sink.push(format!("{}={}", answer.plugin, answer.value))
        })
        .unwrap();
    assert_eq!(
        pairs(&results),
        [("early", 7)],
        "the call still returns its results"
    );
    assert_eq!(heard.take(), ["early=7"]);

    pm.hook().configure(8).unwrap();
    pm.register("late", listener("late", &log)).unwrap();
    assert_eq!(
        heard.take(),
        ["late=7"],
        "the replay of its own call only; the call without a callback has none"
    );
    pm.register("later", listener("later", &log)).unwrap();
    assert_eq!(heard.take(), ["later=7"]);
    pm.register("other", Unrelated).unwrap();
    assert_eq!(
        heard.take(),
        Vec::<String>::new(),
        "no replay, nothing heard"
    );
}

struct Unrelated;
#[hookimpl]
impl Hooks for Unrelated {
    fn run(&self, x: u32) -> HookResult<u32> {
        Ok(x)
    }
}
