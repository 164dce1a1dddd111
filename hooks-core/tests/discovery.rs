//! Plugin discovery at link time (`linked_plugin!`, `load_linked_plugins`):
//! each spec gets exactly its own plugins, in name order, skipping names
//! registered or blocked already; two plugins of one name are refused.
//! (examples/discovery tests the same across crates and a real binary.)

use hookery::prelude::*;
use hookery::{LinkedPlugin, ManagerError};

#[hookspec]
pub trait Greet {
    fn greet(&self, who: &str) -> HookResult<String>;
}

#[hookspec]
pub trait Count {
    fn count(&self) -> HookResult<u32>;
}

#[hookspec]
pub trait Twice {
    fn twice(&self) -> HookResult<()>;
}

struct Says(&'static str);

#[hookimpl]
impl Greet for Says {
    fn greet(&self, who: &str) -> HookResult<String> {
        Ok(format!("{} {who}", self.0))
    }
}

#[derive(Default)]
struct One;

#[hookimpl]
impl Count for One {
    fn count(&self) -> HookResult<u32> {
        Ok(1)
    }
}

#[derive(Default)]
struct Quiet;

#[hookimpl]
impl Twice for Quiet {
    fn twice(&self) -> HookResult<()> {
        Ok(())
    }
}

// Declared out of name order: the manager sorts them.
hookery::linked_plugin!(Greet, "zulu", || Says("bye"));
hookery::linked_plugin!(Greet, "alpha", || Says("hello"));
hookery::linked_plugin!(Greet, "mike", || Says("hi"));
hookery::linked_plugin!(Count, "one", One::default);
hookery::linked_plugin!(Twice, "same", Quiet::default);
hookery::linked_plugin!(Twice, "same", Quiet::default);

#[test]
fn a_manager_loads_the_plugins_linked_for_its_spec_in_name_order() {
    let pm = PluginManager::<dyn Greet>::new();
    assert_eq!(pm.load_linked_plugins().unwrap(), ["alpha", "mike", "zulu"]);
    // Registered in that order: the later runs first.
    let greetings = pm.hook().greet("ada").unwrap().into_values();
    assert_eq!(greetings, ["bye ada", "hi ada", "hello ada"]);

    let counts = PluginManager::<dyn Count>::new();
    assert_eq!(counts.load_linked_plugins().unwrap(), ["one"]);
    assert_eq!(counts.hook().count().unwrap().into_values(), [1]);
}

#[test]
fn names_registered_or_blocked_already_are_skipped_and_a_second_load_adds_nothing() {
    let pm = PluginManager::<dyn Greet>::new();
    pm.register("mike", Says("own")).unwrap();
    pm.set_blocked("zulu");
    assert_eq!(pm.load_linked_plugins().unwrap(), ["alpha"]);
    assert_eq!(pm.plugin_names(), ["mike", "alpha"]);
    assert!(pm.load_linked_plugins().unwrap().is_empty());
}

#[test]
fn two_linked_plugins_of_one_name_are_refused_not_one_skipped() {
    let pm = PluginManager::<dyn Twice>::new();
    let error = pm.load_linked_plugins().unwrap_err();
    assert!(
        matches!(&error, ManagerError::DuplicateName(name) if name == "same"),
        "{error}"
    );
    assert_eq!(pm.plugin_names(), ["same"]);
}

#[test]
fn every_declaration_is_listed_with_its_name() {
    let mut names: Vec<_> = inventory_names();
    names.sort_unstable();
    assert_eq!(names, ["alpha", "mike", "one", "same", "same", "zulu"]);
}

fn inventory_names() -> Vec<&'static str> {
    hookery::linked_plugins().map(LinkedPlugin::name).collect()
}
