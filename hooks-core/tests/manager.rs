//! The manager: registration and its refusals (which change nothing),
//! blocking, lookup and listing, subset callers, call_extra, and the
//! checks on declared implementations.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use hookery::prelude::*;
use hookery::{ErrorPolicy, ManagerError, Plugin};

/// `a` answers 1, `b` answers 2, `c` answers 3, registered in that order,
/// each implementing `run` and `first`.
fn abc(log: &Log) -> PluginManager<dyn Hooks> {
    let pm = PluginManager::<dyn Hooks>::new();
    for (name, value) in [("a", 1), ("b", 2), ("c", 3)] {
        probe(name, log)
            .value(value)
            .register(&pm, &[on("run"), on("first")])
            .unwrap();
    }
    pm
}

fn run_pairs(relay: HooksRelay<'_>) -> Vec<(&'static str, u32)> {
    pairs(&relay.run(0).unwrap())
}

/// What the manager looks like from outside: names, and who answers `run`.
fn state(pm: &PluginManager<dyn Hooks>) -> (Vec<&'static str>, Vec<(&'static str, u32)>) {
    (pm.plugin_names(), run_pairs(pm.hook()))
}

#[test]
fn lookup_and_listing_follow_registration_order() {
    let pm = abc(&Log::new());
    assert_eq!(pm.plugin_names(), ["a", "b", "c"]);
    let listed: Vec<_> = pm
        .list_plugins()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(listed, ["a", "b", "c"]);
    assert!(pm.has_plugin("b"));
    assert!(!pm.has_plugin("d"));
    assert!(pm.get_plugin("d").is_none());
    // The object returned is the registered plugin: calling it directly
    // runs that plugin's implementation.
    assert_eq!(pm.get_plugin("b").unwrap().run(10).unwrap(), 12);
    assert_eq!(
        format!("{pm:?}"),
        r#"PluginManager { spec: "Hooks", plugins: ["a", "b", "c"] }"#
    );
}

#[test]
fn get_plugin_returns_the_very_object_registered() {
    let object = Arc::new(probe("shared", &Log::new()));
    let pm = PluginManager::<dyn Hooks>::new();
    let plugin = Plugin::<dyn Hooks>::from_arc(object.clone());
    pm.register_plugin("shared", plugin).unwrap();
    let got = pm.get_plugin("shared").unwrap();
    assert!(std::ptr::addr_eq(Arc::as_ptr(&got), Arc::as_ptr(&object)));
}

#[test]
fn duplicate_name_is_refused_and_nothing_changes() {
    let log = Log::new();
    let pm = abc(&log);
    let before = state(&pm);
    let impls_before = pm.get_hookimpls("run");
    let err = probe("b", &log)
        .value(99)
        .register(&pm, &[on("run").tryfirst()])
        .unwrap_err();
    assert!(
        matches!(&err, ManagerError::DuplicateName(name) if name == "b"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "a plugin named `b` is already registered: register this one under another name, \
         or `replace` or `unregister` that one first"
    );
    assert_eq!(state(&pm), before, "the original `b` still answers");
    assert_eq!(pm.get_hookimpls("run"), impls_before);
}

#[test]
fn blocked_name_cannot_be_registered_until_unblocked() {
    let log = Log::new();
    let pm = abc(&log);
    assert!(!pm.is_blocked("x"));
    pm.set_blocked("x");
    assert!(pm.is_blocked("x"));
    let before = state(&pm);
    let err = probe("x", &log).register(&pm, &[on("run")]).unwrap_err();
    assert!(
        matches!(&err, ManagerError::Blocked(name) if name == "x"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "plugin name `x` is blocked");
    assert_eq!(state(&pm), before);

    assert!(pm.unblock("x"));
    assert!(!pm.is_blocked("x"));
    assert!(!pm.unblock("x"), "no longer blocked");
    add(&pm, probe("x", &log).value(9), on("run"));
    assert_eq!(run_pairs(pm.hook())[0], ("x", 9));
}

#[test]
fn set_blocked_unregisters_and_drops_an_existing_plugin() {
    let log = Log::new();
    let pm = abc(&log);
    let dropped = Arc::new(AtomicBool::new(false));
    add(&pm, probe("x", &log).drop_flag(&dropped), on("run"));
    pm.hook().run(0).unwrap();
    pm.set_blocked("x");
    assert!(pm.is_blocked("x"));
    assert!(!pm.has_plugin("x"));
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(
        state(&pm),
        (vec!["a", "b", "c"], vec![("c", 3), ("b", 2), ("a", 1)])
    );
}

#[test]
fn unregister_returns_the_plugin_and_it_no_longer_runs() {
    let log = Log::new();
    let pm = abc(&log);
    let removed = pm.unregister("b").unwrap();
    assert_eq!(removed.impls(), [on("run"), on("first")]);
    assert_eq!(
        removed.object().run(0).unwrap(),
        2,
        "the returned object is `b`"
    );
    assert_eq!(state(&pm), (vec!["a", "c"], vec![("c", 3), ("a", 1)]));
    assert!(
        pm.get_hookimpls("run")
            .unwrap()
            .iter()
            .all(|i| i.plugin != "b")
    );
}

#[test]
fn unregister_unknown_name_is_refused_and_nothing_changes() {
    let pm = abc(&Log::new());
    let before = state(&pm);
    let err = pm.unregister("nope").err().unwrap();
    assert!(matches!(&err, ManagerError::UnknownPlugin(name) if name == "nope"));
    assert_eq!(err.to_string(), "no plugin named `nope` is registered");
    assert_eq!(state(&pm), before);
}

#[test]
fn subset_hook_caller_with_an_unknown_name_is_refused() {
    let pm = abc(&Log::new());
    let err = pm.subset_hook_caller(&["a", "nope"]).err().unwrap();
    assert!(matches!(&err, ManagerError::UnknownPlugin(name) if name == "nope"));
}

#[test]
fn subset_hook_caller_leaves_out_the_named_plugins() {
    let log = Log::new();
    let pm = abc(&log);
    add(
        &pm,
        probe("w", &log).wrap(Wrap::Replace(0)),
        on("run").wrapper(),
    );
    let subset = pm.subset_hook_caller(&["b", "w"]).unwrap();
    assert_eq!(run_pairs(subset), [("c", 3), ("a", 1)]);
    assert_eq!(log.take(), ["c", "a"], "neither `b` nor the wrapper ran");
    let subset = pm.subset_hook_caller(&["c"]).unwrap();
    assert_eq!(subset.first(0).unwrap(), some("b", 2));
    assert_eq!(
        run_pairs(pm.hook()),
        [("w", 0)],
        "the full relay is unchanged"
    );
}

#[test]
fn subset_hook_caller_sees_later_registrations() {
    let log = Log::new();
    let pm = abc(&log);
    let subset = pm.subset_hook_caller(&["a"]).unwrap();
    add(&pm, probe("d", &log).value(4), on("run"));
    pm.unregister("c").unwrap();
    assert_eq!(run_pairs(subset), [("d", 4), ("b", 2)]);
}

#[test]
fn call_extra_runs_extra_plugins_first_at_equal_priority_without_registering_them() {
    let log = Log::new();
    let pm = abc(&log);
    let extra = [
        ("x", probe("x", &log).value(7).plugin(&[on("run")])),
        (
            "y",
            probe("y", &log).value(8).plugin(&[on("run").trylast()]),
        ),
    ];
    let relay = pm.call_extra(extra).unwrap();
    assert_eq!(
        run_pairs(relay),
        [("x", 7), ("c", 3), ("b", 2), ("a", 1), ("y", 8)]
    );
    assert_eq!(pm.plugin_names(), ["a", "b", "c"]);
    assert!(!pm.has_plugin("x"));
    assert_eq!(run_pairs(pm.hook()), [("c", 3), ("b", 2), ("a", 1)]);
}

#[test]
fn call_extra_with_a_registered_name_is_refused() {
    let log = Log::new();
    let pm = abc(&log);
    let extra = [("a", probe("a", &log).plugin(&[on("run")]))];
    let err = pm.call_extra(extra).err().unwrap();
    assert!(matches!(&err, ManagerError::DuplicateName(name) if name == "a"));
    assert_eq!(pm.plugin_names(), ["a", "b", "c"]);
}

/// Checks an `InvalidImpl` refusal.
fn assert_invalid(err: &ManagerError, plugin: &str, hook: &str, reason: &str) {
    match err {
        ManagerError::InvalidImpl {
            plugin: p,
            hook: h,
            spec,
            reason: r,
        } => {
            assert_eq!(
                (p.as_str(), h.as_str(), *spec, *r),
                (plugin, hook, "Hooks", reason)
            );
        }
        other => panic!("expected InvalidImpl, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.starts_with(&format!(
        "plugin `{plugin}` cannot implement hook `{hook}` of `Hooks`"
    )));
}

#[test]
fn declaring_a_hook_the_spec_lacks_is_refused() {
    let log = Log::new();
    let pm = abc(&log);
    let before = state(&pm);
    let err = probe("odd", &log)
        .register(&pm, &[on("run"), on("no_such_hook")])
        .unwrap_err();
    assert_invalid(&err, "odd", "no_such_hook", "the spec has no such hook");
    assert!(!pm.has_plugin("odd"));
    assert_eq!(state(&pm), before);
}

#[test]
fn declaring_a_hook_twice_is_refused() {
    let log = Log::new();
    let pm = abc(&log);
    let err = probe("twice", &log)
        .register(&pm, &[on("run"), on("run").priority(3)])
        .unwrap_err();
    assert_invalid(&err, "twice", "run", "the hook is declared twice");
    assert!(!pm.has_plugin("twice"));
}

#[test]
fn a_plugin_may_both_wrap_and_implement_a_hook() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    probe("both", &log)
        .value(5)
        .register(&pm, &[on("run"), on("run").wrapper()])
        .unwrap();
    assert_eq!(run_pairs(pm.hook()), [("both", 5)]);
    assert_eq!(log.take(), ["both:before", "both", "both:after"]);
}

struct WrapsHistoric;
#[hookimpl]
impl Hooks for WrapsHistoric {
    #[hookimpl(wrapper)]
    fn configure(&self, _x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
        Ok(next.call()?)
    }
}

#[test]
fn a_wrapper_on_a_historic_hook_is_refused() {
    let pm = abc(&Log::new());
    let before = state(&pm);
    let err = pm.register("wraps", WrapsHistoric).unwrap_err();
    assert_invalid(
        &err,
        "wraps",
        "configure",
        "a historic hook cannot be wrapped",
    );
    assert_eq!(state(&pm), before);
}

#[test]
fn hookspecs_describe_each_hook_as_declared() {
    let pm = PluginManager::<dyn Hooks>::new();
    let summary: Vec<_> = pm
        .hookspecs()
        .iter()
        .map(|h| (h.name, h.is_async, h.firstresult, h.historic, h.on_error))
        .collect();
    use ErrorPolicy::*;
    assert_eq!(
        summary,
        [
            ("run", false, false, false, Propagate),
            ("first", false, true, false, Propagate),
            ("notify", false, false, false, Continue),
            ("configure", false, false, true, Propagate),
        ]
    );
    let pm = PluginManager::<dyn AsyncHooks>::new();
    let summary: Vec<_> = pm
        .hookspecs()
        .iter()
        .map(|h| {
            (
                h.name,
                h.is_async,
                h.concurrent,
                h.timeout.map(|t| t.as_millis()),
                h.on_error,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("run", true, false, None, Propagate),
            ("first", true, false, None, Propagate),
            ("notify", true, false, None, Continue),
            ("together", true, true, None, Propagate),
            ("limited", true, false, Some(50), Propagate),
            ("limited_continue", true, false, Some(50), Continue),
        ]
    );
}

#[test]
fn clones_share_one_registry() {
    let log = Log::new();
    let pm = abc(&log);
    let clone = pm.clone();
    clone.unregister("a").unwrap();
    add(&clone, probe("d", &log), on("run"));
    assert_eq!(pm.plugin_names(), ["b", "c", "d"]);
}

#[test]
fn replace_swaps_a_plugin_in_its_place_with_its_new_hooks() {
    let log = Log::new();
    let pm = abc(&log);
    // `b` comes back answering 20, implementing `run` only: same place in
    // registration order (later runs first: c, b, a), `first` gone.
    let old = pm
        .replace("b", probe("b", &log).value(20).plugin(&[on("run")]))
        .unwrap();
    assert_eq!(old.impls().len(), 2, "the old plugin is returned");
    assert_eq!(
        state(&pm),
        (vec!["a", "b", "c"], vec![("c", 3), ("b", 20), ("a", 1)])
    );
    let first: Vec<&str> = pm
        .get_hookimpls("first")
        .unwrap()
        .iter()
        .map(|i| i.plugin)
        .collect();
    assert_eq!(first, ["c", "a"], "in call order");
    let unknown = pm.replace("d", probe("d", &log).plugin(&[on("run")]));
    assert!(matches!(unknown, Err(ManagerError::UnknownPlugin(name)) if name == "d"));
}

#[test]
fn a_refused_replacement_leaves_the_old_plugin_in_place() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    probe("a", &log)
        .value(1)
        .register(&pm, &[on("run").before(&["b"])])
        .unwrap();
    probe("b", &log)
        .value(2)
        .register(&pm, &[on("run")])
        .unwrap();
    let before = state(&pm);
    let cycle = pm.replace(
        "b",
        probe("b", &log)
            .value(3)
            .plugin(&[on("run").before(&["a"])]),
    );
    let error = cycle.err();
    assert!(
        matches!(error, Some(ManagerError::OrderCycle { .. })),
        "{error:?}"
    );
    assert_eq!(state(&pm), before);
}
