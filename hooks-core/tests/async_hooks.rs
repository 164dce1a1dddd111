//! Async hooks: the same rules as sync ones (order, results, firstresult,
//! wrappers, errors), plus the per-implementation time limit.

mod common;

use common::*;
use hookery::HookErrorKind;
use hookery::prelude::*;

/// `a` (tryfirst) answers 1, `b` does `b`, `c` (trylast) answers 3; all
/// implement `hook`, and each yields once before acting.
fn abc(log: &Log, hook: &'static str, b: Act, gate: Gate) -> PluginManager<dyn AsyncHooks> {
    let pm = PluginManager::<dyn AsyncHooks>::new();
    let yielding = |name| probe(name, log).gate(Gate::Yield);
    add(&pm, yielding("a").value(1), on(hook).tryfirst());
    add(&pm, probe("b", log).act(b).gate(gate), on(hook));
    add(&pm, yielding("c").value(3), on(hook).trylast());
    pm
}

#[tokio::test]
async fn async_results_come_in_call_order_with_their_plugins() {
    let log = Log::new();
    let pm = abc(&log, "run", Act::Value(2), Gate::Yield);
    let results = pm.hook().run(10).await.unwrap();
    assert_eq!(pairs(&results), [("a", 11), ("b", 12), ("c", 13)]);
    assert_eq!(log.take(), ["a", "b", "c"]);
}

#[tokio::test]
async fn async_subset_call_leaves_plugins_out_of_a_call_that_resumes() {
    let log = Log::new();
    let pm = abc(&log, "run", Act::Value(2), Gate::Yield);
    // Every implementation yields once: the call resumes after each, and
    // must resume past the one left out.
    let results = pm.subset_hook_caller(&["b"]).unwrap().run(10).await;
    assert_eq!(pairs(&results.unwrap()), [("a", 11), ("c", 13)]);
    assert_eq!(log.take(), ["a", "c"]);
    let results = pm.subset_hook_caller(&["a", "c"]).unwrap().run(10).await;
    assert_eq!(pairs(&results.unwrap()), [("b", 12)]);
    assert_eq!(log.take(), ["b"]);
}

#[tokio::test]
async fn async_impls_run_one_after_another_by_default() {
    let log = Log::new();
    // `b` waits for a signal; `c` (after it) only yields once. Had `c`
    // started while `b` waits, it would have logged by now.
    let signal = std::sync::Arc::new(tokio::sync::Notify::new());
    let pm = abc(&log, "run", Act::Value(2), Gate::Wait(signal.clone()));
    let relay = pm.hook();
    let call = relay.run(0);
    tokio::pin!(call);
    let early = within_rounds(call.as_mut(), 10).await;
    assert!(early.is_none(), "`b` cannot finish before it is signalled");
    assert_eq!(log.take(), ["a"], "`c` must not start while `b` waits");
    signal.notify_one();
    assert_eq!(call.await.unwrap().len(), 3);
    assert_eq!(log.take(), ["b", "c"]);
}

#[tokio::test]
async fn async_firstresult_stops_at_the_first_some() {
    let log = Log::new();
    let pm = abc(&log, "first", Act::Value(2), Gate::Yield);
    pm.unregister("a").unwrap();
    let answer = pm.hook().first(0).await.unwrap();
    assert_eq!(answer, some("b", 2));
    assert_eq!(log.take(), ["b"], "`c` must not run");
}

#[tokio::test]
async fn async_firstresult_with_only_nones_or_no_impls_returns_none() {
    let log = Log::new();
    let pm = PluginManager::<dyn AsyncHooks>::new();
    assert_eq!(pm.hook().first(0).await.unwrap(), None);
    assert!(pm.hook().run(0).await.unwrap().is_empty());
    add(&pm, probe("no", &log).act(Act::Nothing), on("first"));
    assert_eq!(pm.hook().first(0).await.unwrap(), None);
    assert_eq!(log.take(), ["no"]);
}

#[tokio::test]
async fn async_first_error_stops_the_chain() {
    let log = Log::new();
    let pm = abc(&log, "run", Act::Fail, Gate::Yield);
    let err = pm.hook().run(0).await.unwrap_err();
    assert_eq!((err.hook(), err.plugin()), ("run", Some("b")));
    assert_eq!(
        err.cause().unwrap().downcast_ref::<Boom>(),
        Some(&Boom("b"))
    );
    assert_eq!(log.take(), ["a", "b"]);
}

#[tokio::test]
async fn async_continue_policy_runs_everything() {
    let log = Log::new();
    let pm = abc(&log, "notify", Act::Fail, Gate::Yield);
    let results = pm.hook().notify(0).await.unwrap();
    assert_eq!(pairs(&results), [("a", 1), ("c", 3)]);
    assert_eq!(blame(results.errors()), [("notify", Some("b"))]);
}

#[tokio::test]
async fn async_wrappers_nest_around_the_plain_impls() {
    let log = Log::new();
    let pm = abc(&log, "run", Act::Value(2), Gate::Yield);
    add(&pm, probe("outer", &log), on("run").wrapper().priority(1));
    add(&pm, probe("inner", &log), on("run").wrapper());
    let results = pm.hook().run(0).await.unwrap();
    assert_eq!(results.len(), 3);
    let expected = [
        "outer:before",
        "inner:before",
        "a",
        "b",
        "c",
        "inner:after",
        "outer:after",
    ];
    assert_eq!(log.take(), expected);
}

#[tokio::test]
async fn async_wrapper_swallows_replaces_or_short_circuits() {
    let log = Log::new();
    let pm = abc(&log, "run", Act::Fail, Gate::Yield);
    let wrapper = |wrap| probe("w", &log).wrap(wrap).plugin(&[on("run").wrapper()]);

    pm.register_plugin("w", wrapper(Wrap::Recover(9))).unwrap();
    assert_eq!(pairs(&pm.hook().run(0).await.unwrap()), [("w", 9)]);
    assert_eq!(log.take(), ["w:before", "a", "b", "w:after"]);

    pm.unregister("w").unwrap();
    pm.register_plugin("w", wrapper(Wrap::Skip(5))).unwrap();
    assert_eq!(pairs(&pm.hook().run(0).await.unwrap()), [("w", 5)]);
    assert_eq!(log.take(), ["w:before"]);

    pm.unregister("b").unwrap();
    pm.unregister("w").unwrap();
    pm.register_plugin("w", wrapper(Wrap::Replace(4))).unwrap();
    assert_eq!(pairs(&pm.hook().run(0).await.unwrap()), [("w", 4)]);
    assert_eq!(log.take(), ["w:before", "a", "c", "w:after"]);
}

#[tokio::test]
async fn async_wrapper_own_error_names_the_wrapper() {
    let log = Log::new();
    let pm = abc(&log, "run", Act::Value(2), Gate::Yield);
    add(
        &pm,
        probe("w", &log).wrap(Wrap::FailAfter),
        on("run").wrapper(),
    );
    let err = pm.hook().run(0).await.unwrap_err();
    assert_eq!((err.hook(), err.plugin()), ("run", Some("w")));
}

#[tokio::test]
async fn async_firstresult_wrapper_sees_the_answer() {
    let log = Log::new();
    let pm = abc(&log, "first", Act::Nothing, Gate::Yield);
    add(&pm, probe("w", &log), on("first").wrapper());
    let answer = pm.hook().first(0).await.unwrap();
    assert_eq!(answer, some("a", 1));
    assert_eq!(log.take(), ["w:before", "a", "w:after"]);
}

// ------------------------------------------------------------ time limit

#[tokio::test]
async fn an_impl_that_overruns_its_time_limit_fails_the_call() {
    let log = Log::new();
    let pm = abc(&log, "limited", Act::Value(2), Gate::Pending);
    let err = pm.hook().limited(0).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(!err.is_panic());
    assert_eq!((err.hook(), err.plugin()), ("limited", Some("b")));
    assert!(matches!(
        err.kind(),
        HookErrorKind::TimedOut(limit) if limit.as_millis() == 50
    ));
    let text = err.to_string();
    assert!(text.contains("`b`") && text.contains("`limited`") && text.contains("time limit"));
    assert_eq!(log.take(), ["a"], "`c` does not run after the overrun");
}

#[tokio::test]
async fn under_continue_the_others_still_run_beside_a_timeout() {
    let log = Log::new();
    let pm = abc(&log, "limited_continue", Act::Value(2), Gate::Pending);
    let results = pm.hook().limited_continue(0).await.unwrap();
    assert_eq!(pairs(&results), [("a", 1), ("c", 3)]);
    assert_eq!(results.errors().len(), 1);
    let err = &results.errors()[0];
    assert!(err.is_timeout());
    assert_eq!((err.hook(), err.plugin()), ("limited_continue", Some("b")));
    assert_eq!(log.take(), ["a", "c"]);
}

#[tokio::test]
async fn impls_that_finish_within_the_limit_are_not_affected() {
    let log = Log::new();
    let pm = abc(&log, "limited", Act::Value(2), Gate::Yield);
    let results = pm.hook().limited(0).await.unwrap();
    assert_eq!(pairs(&results), [("a", 1), ("b", 2), ("c", 3)]);
}

/// A time limit needs Tokio's timer. Called under another executor, the
/// call fails at once with an error that names the hook and blames no
/// plugin, and no implementation runs (rather than running unguarded).
#[test]
fn time_limited_hook_outside_a_tokio_runtime_fails_clearly() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let log = Log::new();
    let pm = PluginManager::<dyn AsyncHooks>::new();
    add(&pm, probe("fast", &log).value(1), on("limited"));
    let relay = pm.hook();
    let call = std::pin::pin!(relay.limited(0));
    let Poll::Ready(outcome) = call.poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("refusing needs no waiting");
    };
    let err = outcome.unwrap_err();
    assert_eq!((err.hook(), err.plugin()), ("limited", None));
    assert!(
        matches!(err.kind(), hookery::HookErrorKind::NoRuntime(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
    assert!(log.take().is_empty(), "no implementation may run");
}
