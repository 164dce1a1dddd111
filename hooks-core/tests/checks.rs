//! What pluggy checks, and what the engine owes beside it: one plugin
//! object is one registration, deprecated hooks warn their implementors,
//! `Option` results give their answers, and an error's identity is never
//! confused with another's.

mod common;

use std::sync::Arc;

use common::*;
use hookery::prelude::*;
use hookery::{HookErrorKind, ManagerError, Plugin};

#[test]
fn the_same_plugin_object_cannot_be_registered_under_a_second_name() {
    let pm = PluginManager::<dyn Hooks>::new();
    let shared = Arc::new(Counter);
    pm.register_plugin("one", Plugin::from_arc(shared.clone()))
        .unwrap();
    let err = pm
        .register_plugin("two", Plugin::from_arc(shared.clone()))
        .unwrap_err();
    assert!(
        matches!(&err, ManagerError::AlreadyRegistered { plugin, registered_as }
            if plugin == "two" && registered_as == "one"),
        "{err:?}"
    );
    assert_eq!(pm.plugin_names(), ["one"]);
    assert_eq!(pm.hook().run(1).unwrap().len(), 1, "its hook runs once");
    // Another object of the same type is another plugin; and once "one"
    // is gone the object may come back under any name.
    pm.register("three", Counter).unwrap();
    pm.unregister("one").unwrap();
    pm.register_plugin("two", Plugin::from_arc(shared)).unwrap();
    assert_eq!(pm.plugin_names(), ["three", "two"]);
}

struct Counter;
#[hookimpl]
impl Hooks for Counter {
    fn run(&self, x: u32) -> HookResult<u32> {
        Ok(x)
    }
    fn first(&self, x: u32) -> HookResult<Option<u32>> {
        Ok((x > 0).then_some(x))
    }
}

// ------------------------------------------------------------ warn_on_impl

#[hookspec]
pub trait Evolving {
    /// Still supported, but on its way out.
    #[hookspec(warn_on_impl = "implement on_user_saved instead")]
    fn on_user_stored(&self, id: u32) -> HookResult<()>;
    fn on_user_saved(&self, id: u32) -> HookResult<()>;
}

struct OldStyle;
#[hookimpl]
impl Evolving for OldStyle {
    fn on_user_stored(&self, _id: u32) -> HookResult<()> {
        Ok(())
    }
}

struct NewStyle;
#[hookimpl]
impl Evolving for NewStyle {
    fn on_user_saved(&self, _id: u32) -> HookResult<()> {
        Ok(())
    }
}

#[test]
fn registering_an_implementation_of_a_deprecated_hook_warns_naming_plugin_and_hook() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let pm = PluginManager::<dyn Evolving>::new();
        pm.register("new_style", NewStyle).unwrap();
        assert_eq!(capture.lines(), Vec::<String>::new());
        pm.register("old_style", OldStyle).unwrap();
        pm.hook().on_user_stored(1).unwrap();
        let lines = capture.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(" WARN"), "{}", lines[0]);
        assert!(
            lines[0].contains(
                "plugin `old_style` implements deprecated hook `on_user_stored`: \
                 implement on_user_saved instead"
            ),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains(r#"plugin="old_style" hook="on_user_stored""#));
    });
}

// ------------------------------------------------------------ Option results

struct Declines;
#[hookimpl]
impl Hooks for Declines {
    fn first(&self, _x: u32) -> HookResult<Option<u32>> {
        Ok(None)
    }
}

#[hookspec]
pub trait Opinions {
    fn opinion(&self) -> HookResult<Option<&'static str>>;
}

struct Yes;
#[hookimpl]
impl Opinions for Yes {
    fn opinion(&self) -> HookResult<Option<&'static str>> {
        Ok(Some("yes"))
    }
}

struct Abstains;
#[hookimpl]
impl Opinions for Abstains {
    fn opinion(&self) -> HookResult<Option<&'static str>> {
        Ok(None)
    }
}

#[test]
fn option_results_keep_every_none_and_somes_gives_only_the_answers() {
    let pm = PluginManager::<dyn Opinions>::new();
    pm.register("yes", Yes).unwrap();
    pm.register("abstains", Abstains).unwrap();
    pm.register("also_yes", Yes).unwrap();
    let results = pm.hook().opinion().unwrap();
    assert_eq!(
        results.len(),
        3,
        "typed results: one value per implementation"
    );
    let somes: Vec<_> = results.somes().map(|a| (a.plugin, *a.value)).collect();
    assert_eq!(somes, [("also_yes", "yes"), ("yes", "yes")]);
    assert_eq!(results.into_somes(), ["yes", "yes"]);
    // firstresult hooks still stop at the first Some.
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("counter", Counter).unwrap();
    pm.register("declines", Declines).unwrap();
    assert_eq!(pm.hook().first(4).unwrap(), some("counter", 4));
}

// ------------------------------------------------------------ error identity

/// Fails `run` with a plain error.
struct Fails;
#[hookimpl]
impl Hooks for Fails {
    fn run(&self, _x: u32) -> HookResult<u32> {
        Err(Boom("fails").into())
    }
}

/// Wraps `run`: drops the error `next` gave, then fails with a new hook
/// error of its own, allocated right after that one was freed, so that it
/// most likely lands at the very same address.
struct Rewraps {
    nested: PluginManager<dyn Hooks>,
}
#[hookimpl]
impl Hooks for Rewraps {
    #[hookimpl(wrapper)]
    fn run(&self, _x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
        let from_next = next.call().unwrap_err();
        drop(from_next);
        // Nested one level deeper than `nested` allows: a depth error, one
        // allocation, its own.
        let own = self.nested.hook().run(0).unwrap_err();
        Err(own.into())
    }
}

#[test]
fn a_wrappers_own_new_error_is_never_taken_for_the_one_its_next_gave_even_at_the_same_address() {
    let nested = PluginManager::<dyn Hooks>::new();
    nested.set_max_depth(1);
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("fails", Fails).unwrap();
    pm.register("rewraps", Rewraps { nested }).unwrap();
    for _ in 0..20 {
        let err = pm.hook().run(0).unwrap_err();
        // Its own error, so the chain gains the wrapper's link; the error
        // from `next` passed on as it is would have an empty chain.
        match err.kind() {
            HookErrorKind::TooDeep { limit, chain } => {
                assert_eq!(*limit, 1);
                assert_eq!(chain, &[("run", "rewraps")]);
            }
            other => panic!("expected the depth error, got {other:?}"),
        }
    }
}
