//! A panic in any implementation is caught and becomes a `HookError`
//! naming plugin and hook; the process and the manager carry on.

mod common;

use common::*;
use hookery::prelude::*;
use hookery::{HookErrorKind, ImplDecl};

/// Checks that `err` is the caught panic of `plugin` in `hook`.
fn assert_panic(err: &HookError, hook: &str, plugin: &'static str) {
    assert!(err.is_panic(), "{err:?}");
    assert_eq!((err.hook(), err.plugin()), (hook, Some(plugin)));
    assert!(err.cause().is_none());
    match err.kind() {
        HookErrorKind::Panicked(message) => assert_eq!(*message, panic_text(plugin)),
        other => panic!("expected a panic, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&panic_text(plugin)), "{text}");
    assert!(text.contains(&format!("`{plugin}`")) && text.contains(&format!("`{hook}`")));
}

/// `before` (runs first), the probe `p` declared as `decl`, and `after`
/// (runs last), all on `hook`.
fn sandwich<S>(log: &Log, p: Probe, decl: ImplDecl) -> PluginManager<S>
where
    S: hookery::Spec + ?Sized,
    Probe: hookery::Implements<S>,
{
    let pm = PluginManager::<S>::new();
    add(&pm, probe("after", log), on(decl.hook).trylast());
    p.register(&pm, &[decl]).unwrap();
    add(&pm, probe("before", log), on(decl.hook).tryfirst());
    pm
}

/// `p` plays the panicking part; `decl` says where.
type Part = (fn(&Log) -> Probe, ImplDecl);

/// A plain implementation that panics (on a later poll when async).
fn panicking_impl() -> Part {
    (
        |log| probe("p", log).act(Act::Panic).gate(Gate::Yield),
        on("run"),
    )
}

/// A wrapper doing `wrap` (PanicBefore / PanicAfter).
fn panicking_wrapper(wrap: Wrap) -> Part {
    let make: fn(&Log) -> Probe = match wrap {
        Wrap::PanicBefore => |log| probe("w", log).wrap(Wrap::PanicBefore),
        _ => |log| probe("w", log).wrap(Wrap::PanicAfter),
    };
    (make, on("run").wrapper())
}

/// Calls sync `run` on a `sandwich` around `part`: the manager, the
/// error and the log.
fn sync_call((make, decl): Part) -> (PluginManager<dyn Hooks>, HookError, Vec<String>) {
    let log = Log::new();
    let pm: PluginManager<dyn Hooks> = sandwich(&log, make(&log), decl);
    let err = pm.hook().run(0).unwrap_err();
    (pm, err, log.take())
}

/// The same, async.
async fn async_call((make, decl): Part) -> (PluginManager<dyn AsyncHooks>, HookError, Vec<String>) {
    let log = Log::new();
    let pm: PluginManager<dyn AsyncHooks> = sandwich(&log, make(&log), decl);
    let err = pm.hook().run(0).await.unwrap_err();
    (pm, err, log.take())
}

const WRAPPED_ALL: [&str; 4] = ["w:before", "before", "after", "w:after"];

#[test]
fn sync_impl_panic_becomes_an_error() {
    let (pm, err, log) = sync_call(panicking_impl());
    assert_panic(&err, "run", "p");
    assert_eq!(log, ["before", "p"], "the chain stops at the panic");
    // The manager still works.
    pm.unregister("p").unwrap();
    assert_eq!(pm.hook().run(0).unwrap().len(), 2);
}

#[test]
fn sync_wrapper_panic_before_next_becomes_an_error() {
    let (_, err, log) = sync_call(panicking_wrapper(Wrap::PanicBefore));
    assert_panic(&err, "run", "w");
    assert_eq!(log, ["w:before"]);
}

#[test]
fn sync_wrapper_panic_after_next_becomes_an_error() {
    let (_, err, log) = sync_call(panicking_wrapper(Wrap::PanicAfter));
    assert_panic(&err, "run", "w");
    assert_eq!(log, WRAPPED_ALL);
}

#[test]
fn outer_wrapper_sees_a_panic_as_an_error_from_next() {
    let log = Log::new();
    let pm: PluginManager<dyn Hooks> = sandwich(&log, probe("p", &log).act(Act::Panic), on("run"));
    add(
        &pm,
        probe("w", &log).wrap(Wrap::Recover(1)),
        on("run").wrapper(),
    );
    let results = pm.hook().run(0).unwrap();
    assert_eq!(pairs(&results), [("w", 1)]);
}

#[tokio::test]
async fn async_impl_panic_becomes_an_error() {
    let (pm, err, log) = async_call(panicking_impl()).await;
    assert_panic(&err, "run", "p");
    assert_eq!(log, ["before", "p"]);
    pm.unregister("p").unwrap();
    assert_eq!(pm.hook().run(0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn async_wrapper_panic_before_next_becomes_an_error() {
    let (_, err, log) = async_call(panicking_wrapper(Wrap::PanicBefore)).await;
    assert_panic(&err, "run", "w");
    assert_eq!(log, ["w:before"]);
}

#[tokio::test]
async fn async_wrapper_panic_after_next_becomes_an_error() {
    let (_, err, log) = async_call(panicking_wrapper(Wrap::PanicAfter)).await;
    assert_panic(&err, "run", "w");
    assert_eq!(log, WRAPPED_ALL);
}

#[tokio::test]
async fn async_continue_policy_keeps_a_panic_beside_values() {
    let log = Log::new();
    let p = probe("p", &log).act(Act::Panic).gate(Gate::Yield);
    let pm: PluginManager<dyn AsyncHooks> = sandwich(&log, p, on("notify"));
    let results = pm.hook().notify(0).await.unwrap();
    assert_eq!(results.plugins().collect::<Vec<_>>(), ["before", "after"]);
    assert_eq!(results.errors().len(), 1);
    assert_panic(&results.errors()[0], "notify", "p");
}

struct PanicsWithAnyValue;
#[hookimpl]
impl Hooks for PanicsWithAnyValue {
    fn run(&self, _x: u32) -> HookResult<u32> {
        std::panic::panic_any(42_u8)
    }
}

#[test]
fn panic_with_a_non_string_payload_is_still_caught() {
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("odd", PanicsWithAnyValue).unwrap();
    let err = pm.hook().run(0).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.plugin(), Some("odd"));
}
