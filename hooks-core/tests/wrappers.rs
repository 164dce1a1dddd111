//! Wrappers: they get the rest of the chain as `next`, see its outcome
//! (values or error), and may pass it on, replace it, swallow an error or
//! not run the chain at all. A wrapper's own error names the wrapper.

mod common;

use common::*;
use hookery::prelude::*;

/// Wrapper `w` doing `wrap` around plain `a` (answers 1), plain `b`
/// (doing `b`) and plain `c` (answers 3), in that order.
fn around(log: &Log, wrap: Wrap, b: Act) -> PluginManager<dyn Hooks> {
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("c", log).value(3), on("run"));
    add(&pm, probe("b", log).act(b), on("run"));
    add(&pm, probe("a", log).value(1), on("run"));
    add(&pm, probe("w", log).wrap(wrap), on("run").wrapper());
    pm
}

#[test]
fn wrapper_passes_the_outcome_on_unchanged() {
    let log = Log::new();
    let pm = around(&log, Wrap::Pass, Act::Value(2));
    let results = pm.hook().run(0).unwrap();
    assert_eq!(pairs(&results), [("a", 1), ("b", 2), ("c", 3)]);
    assert_eq!(log.take(), ["w:before", "a", "b", "c", "w:after"]);
}

#[test]
fn wrapper_may_add_to_the_results() {
    struct Adds;
    #[hookimpl]
    impl Hooks for Adds {
        #[hookimpl(wrapper)]
        fn run(&self, x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
            let mut results = next.call()?;
            let sum = results.values().sum::<u32>();
            results.push("adds", sum + x);
            Ok(results)
        }
    }
    let log = Log::new();
    let pm = around(&log, Wrap::Pass, Act::Value(2));
    pm.register("adds", Adds).unwrap();
    let results = pm.hook().run(0).unwrap();
    assert_eq!(pairs(&results), [("a", 1), ("b", 2), ("c", 3), ("adds", 6)]);
}

#[test]
fn wrapper_replaces_a_result() {
    let log = Log::new();
    let pm = around(&log, Wrap::Replace(42), Act::Value(2));
    let results = pm.hook().run(0).unwrap();
    assert_eq!(pairs(&results), [("w", 42)]);
    assert_eq!(log.take(), ["w:before", "a", "b", "c", "w:after"]);
}

#[test]
fn wrapper_sees_the_error_and_may_swallow_it() {
    let log = Log::new();
    let pm = around(&log, Wrap::Recover(99), Act::Fail);
    let results = pm.hook().run(0).unwrap();
    assert_eq!(pairs(&results), [("w", 99)]);
    assert!(results.errors().is_empty());
    assert_eq!(
        log.take(),
        ["w:before", "a", "b", "w:after"],
        "c never runs"
    );
}

#[test]
fn error_passed_on_by_a_wrapper_still_names_the_failing_plugin() {
    let log = Log::new();
    let pm = around(&log, Wrap::Pass, Act::Fail);
    let err = pm.hook().run(0).unwrap_err();
    assert_eq!((err.hook(), err.plugin()), ("run", Some("b")));
    assert_eq!(
        err.cause().unwrap().downcast_ref::<Boom>(),
        Some(&Boom("b"))
    );
    assert_eq!(log.take(), ["w:before", "a", "b", "w:after"]);
}

#[test]
fn wrapper_that_does_not_call_next_short_circuits_the_rest() {
    let log = Log::new();
    let pm = around(&log, Wrap::Skip(5), Act::Value(2));
    // An inner wrapper is skipped as well.
    add(&pm, probe("inner", &log), on("run").wrapper().trylast());
    let results = pm.hook().run(0).unwrap();
    assert_eq!(pairs(&results), [("w", 5)]);
    assert_eq!(log.take(), ["w:before"]);
}

#[test]
fn wrapper_own_error_names_the_wrapper_before_or_after_next() {
    let before = ["w:before"];
    let after = ["w:before", "a", "b", "c", "w:after"];
    for (wrap, log_expected) in [
        (Wrap::FailBefore, &before[..]),
        (Wrap::FailAfter, &after[..]),
    ] {
        let log = Log::new();
        let pm = around(&log, wrap, Act::Value(2));
        let err = pm.hook().run(0).unwrap_err();
        assert_eq!((err.hook(), err.plugin()), ("run", Some("w")));
        assert_eq!(
            err.cause().unwrap().downcast_ref::<Boom>(),
            Some(&Boom("w"))
        );
        assert_eq!(
            err.to_string(),
            "plugin `w` failed in hook `run`: boom from w"
        );
        assert_eq!(log.take(), log_expected);
    }
}

#[test]
fn outer_wrapper_sees_an_inner_wrappers_error() {
    let log = Log::new();
    let pm = around(&log, Wrap::FailAfter, Act::Value(2));
    add(
        &pm,
        probe("outer", &log).wrap(Wrap::Recover(7)),
        on("run").wrapper().tryfirst(),
    );
    let results = pm.hook().run(0).unwrap();
    assert_eq!(pairs(&results), [("outer", 7)]);
    let expected = [
        "outer:before",
        "w:before",
        "a",
        "b",
        "c",
        "w:after",
        "outer:after",
    ];
    assert_eq!(log.take(), expected);
}

#[test]
fn wrapper_sees_continue_policy_errors_beside_values() {
    struct Counts(Log);
    #[hookimpl]
    impl Hooks for Counts {
        #[hookimpl(wrapper)]
        fn notify(&self, _x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
            let results = next.call()?;
            let seen = (results.len(), blame(results.errors()));
            self.0.push(format!("{seen:?}"));
            Ok(results)
        }
    }
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("ok", &log), on("notify"));
    add(&pm, probe("bad", &log).act(Act::Fail), on("notify"));
    pm.register("counts", Counts(log.clone())).unwrap();
    let results = pm.hook().notify(0).unwrap();
    assert_eq!(results.errors().len(), 1);
    assert_eq!(
        log.take(),
        ["bad", "ok", r#"(1, [("notify", Some("bad"))])"#]
    );
}

/// `first` through wrapper `w` doing `wrap` around `a` (answers 1): the
/// answer, and the log.
fn first_through(wrap: Wrap) -> (Option<Answer<u32>>, Vec<String>) {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log).value(1), on("first"));
    add(&pm, probe("w", &log).wrap(wrap), on("first").wrapper());
    (pm.hook().first(0).unwrap(), log.take())
}

#[test]
fn firstresult_wrapper_sees_and_may_replace_the_answer() {
    let full = ["w:before", "a", "w:after"];
    assert_eq!(first_through(Wrap::Pass), (some("a", 1), strings(&full)));
    assert_eq!(
        first_through(Wrap::Replace(9)),
        (some("w", 9), strings(&full))
    );
}

#[test]
fn firstresult_wrapper_short_circuits_with_its_own_answer() {
    assert_eq!(
        first_through(Wrap::Skip(3)),
        (some("w", 3), strings(&["w:before"]))
    );
}

/// Adds context to whatever error the rest of the chain returns.
struct Explains;
#[hookimpl]
impl Hooks for Explains {
    #[hookimpl(wrapper)]
    fn run(&self, _x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
        use hookery::anyhow::Context;
        next.call().context("while explaining")
    }
}

#[test]
fn context_a_wrapper_adds_to_a_passed_on_error_is_kept() {
    let log = Log::new();
    let pm = around(&log, Wrap::Pass, Act::Fail);
    pm.register("explains", Explains).unwrap();
    let err = pm.hook().run(0).unwrap_err();
    let mut messages = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        messages.push(s.to_string());
        source = s.source();
    }
    assert!(
        messages.iter().any(|m| m.contains("while explaining")),
        "{messages:?}"
    );
}
