//! What a call returns: every value in call order with its plugin;
//! `firstresult` stops at the first `Some` and says who answered.

mod common;

use common::*;
use hookery::prelude::*;

/// `a` (priority 2) answers 1, `b` (priority 1) declines, `c` (priority 0)
/// answers 3, `d` (priority -1) answers 4.
fn abcd(log: &Log) -> PluginManager<dyn Hooks> {
    let pm = PluginManager::<dyn Hooks>::new();
    let hooks = |priority| [on("run").priority(priority), on("first").priority(priority)];
    probe("a", log).value(1).register(&pm, &hooks(2)).unwrap();
    probe("b", log)
        .act(Act::Nothing)
        .register(&pm, &hooks(1))
        .unwrap();
    probe("c", log).value(3).register(&pm, &hooks(0)).unwrap();
    probe("d", log).value(4).register(&pm, &hooks(-1)).unwrap();
    pm
}

#[test]
fn results_come_in_call_order_each_with_its_plugin() {
    let log = Log::new();
    let pm = abcd(&log);
    let results = pm.hook().run(10).unwrap();
    // `b` declines only firstresult hooks; elsewhere it echoes x.
    assert_eq!(
        pairs(&results),
        [("a", 11), ("b", 10), ("c", 13), ("d", 14)]
    );
    assert_eq!(results.plugins().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    assert_eq!(
        results.values().copied().collect::<Vec<_>>(),
        [11, 10, 13, 14]
    );
    assert_eq!(results.get("c"), Some(&13));
    assert_eq!(results.get("nobody"), None);
    assert_eq!(results.len(), 4);
    assert!(!results.is_empty());
    assert!(results.errors().is_empty());
    let by_ref: Vec<_> = (&results).into_iter().map(|a| a.plugin).collect();
    assert_eq!(by_ref, ["a", "b", "c", "d"]);
    let owned: Vec<_> = results.into_iter().map(|a| (a.plugin, a.value)).collect();
    assert_eq!(owned, [("a", 11), ("b", 10), ("c", 13), ("d", 14)]);
}

#[test]
fn every_impl_receives_the_arguments() {
    let log = Log::new();
    let pm = abcd(&log);
    assert_eq!(
        pm.hook().run(100).unwrap().into_values(),
        [101, 100, 103, 104]
    );
}

#[test]
fn firstresult_returns_the_first_some_with_its_plugin() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(
        &pm,
        probe("early", &log).act(Act::Nothing),
        on("first").tryfirst(),
    );
    add(&pm, probe("answers", &log).value(7), on("first"));
    let answer = pm.hook().first(1).unwrap().unwrap();
    assert_eq!(
        answer,
        Answer {
            plugin: "answers",
            value: 8
        }
    );
    assert_eq!(log.take(), ["early", "answers"]);
}

#[test]
fn firstresult_stops_at_the_first_some() {
    let log = Log::new();
    let pm = abcd(&log);
    let answer = pm.hook().first(0).unwrap();
    assert_eq!(answer, some("a", 1));
    assert_eq!(log.take(), ["a"], "b, c and d must not run");

    pm.unregister("a").unwrap();
    let answer = pm.hook().first(0).unwrap();
    assert_eq!(answer, some("c", 3));
    assert_eq!(log.take(), ["b", "c"], "d must not run");
}

#[test]
fn firstresult_with_only_nones_returns_none_after_running_all() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    for name in ["x", "y", "z"] {
        add(&pm, probe(name, &log).act(Act::Nothing), on("first"));
    }
    assert_eq!(pm.hook().first(0).unwrap(), None);
    assert_eq!(log.take(), ["z", "y", "x"]);
}

#[test]
fn no_impls_give_empty_results_and_no_answer() {
    let pm = PluginManager::<dyn Hooks>::new();
    let results = pm.hook().run(0).unwrap();
    assert!(results.is_empty());
    assert_eq!(results.len(), 0);
    assert!(results.errors().is_empty());
    assert_eq!(pm.hook().first(0).unwrap(), None);
    assert!(pm.hook().notify(0).unwrap().is_empty());
}

#[test]
fn plugins_without_an_impl_of_the_hook_are_not_called() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("runs", &log), on("run"));
    add(&pm, probe("firsts", &log), on("first"));
    let results = pm.hook().run(0).unwrap();
    assert_eq!(results.plugins().collect::<Vec<_>>(), ["runs"]);
    assert_eq!(log.take(), ["runs"]);
    assert!(
        pm.get_hookimpls("run")
            .unwrap()
            .iter()
            .all(|i| i.plugin == "runs")
    );
}

/// A hook with borrowed and owned arguments, and a non-`Copy` value.
#[hookspec]
pub trait Greet {
    fn greet(&self, name: &str, tags: Vec<String>) -> HookResult<String>;
}

struct Hello;
#[hookimpl]
impl Greet for Hello {
    fn greet(&self, name: &str, mut tags: Vec<String>) -> HookResult<String> {
        tags.push("hello".into());
        Ok(format!("hello {name} {tags:?}"))
    }
}

struct Bye;
#[hookimpl]
impl Greet for Bye {
    fn greet(&self, name: &str, mut tags: Vec<String>) -> HookResult<String> {
        tags.push("bye".into());
        Ok(format!("bye {name} {tags:?}"))
    }
}

#[test]
fn each_impl_gets_its_own_copy_of_owned_arguments() {
    let pm = PluginManager::<dyn Greet>::new();
    pm.register("hello", Hello).unwrap();
    pm.register("bye", Bye).unwrap();
    let results = pm.hook().greet("ada", vec!["t".into()]).unwrap();
    assert_eq!(
        results.into_values(),
        [r#"bye ada ["t", "bye"]"#, r#"hello ada ["t", "hello"]"#]
    );
}
