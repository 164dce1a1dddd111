//! Errors: by default the first one stops the call and names hook and
//! plugin; `on_error = "continue"` runs everything and keeps them beside
//! the values; a panic is an error like any other.

use hookery::anyhow;
use hookery::prelude::*;

#[hookspec]
pub trait Events {
    fn saved(&self, id: u32) -> HookResult<u32>;

    #[hookspec(on_error = "continue")]
    fn notify(&self, id: u32) -> HookResult<u32>;
}

struct Good;
#[hookimpl]
impl Events for Good {
    fn saved(&self, id: u32) -> HookResult<u32> {
        Ok(id)
    }
    fn notify(&self, id: u32) -> HookResult<u32> {
        Ok(id)
    }
}

struct Bad;
#[hookimpl]
impl Events for Bad {
    #[hookimpl(tryfirst)]
    fn saved(&self, _id: u32) -> HookResult<u32> {
        Err(anyhow::anyhow!("disk full"))
    }
    #[hookimpl(tryfirst)]
    fn notify(&self, _id: u32) -> HookResult<u32> {
        Err(anyhow::anyhow!("mail server down"))
    }
}

#[test]
fn the_first_error_stops_the_call_and_names_hook_and_plugin() {
    let pm = PluginManager::<dyn Events>::new();
    pm.register("good", Good).unwrap();
    pm.register("bad", Bad).unwrap();
    let error = pm.hook().saved(1).unwrap_err();
    assert_eq!((error.hook(), error.plugin()), ("saved", Some("bad")));
    assert_eq!(error.cause().unwrap().to_string(), "disk full");
}

#[test]
fn continue_runs_everything_and_returns_the_errors_beside_the_values() {
    let pm = PluginManager::<dyn Events>::new();
    pm.register("good", Good).unwrap();
    pm.register("bad", Bad).unwrap();
    let results = pm.hook().notify(3).unwrap();
    assert_eq!(results.values().copied().collect::<Vec<_>>(), [3]);
    assert_eq!(results.errors().len(), 1);
    assert_eq!(results.errors()[0].plugin(), Some("bad"));
}

#[test]
fn a_panic_becomes_an_error() {
    struct Panics;
    #[hookimpl]
    impl Events for Panics {
        fn saved(&self, _id: u32) -> HookResult<u32> {
            panic!("bug")
        }
    }
    let pm = PluginManager::<dyn Events>::new();
    pm.register("panics", Panics).unwrap();
    let error = pm.hook().saved(1).unwrap_err();
    assert!(error.is_panic());
    assert_eq!(error.plugin(), Some("panics"));
    // The manager goes on working.
    pm.register("good", Good).unwrap();
    pm.unregister("panics").unwrap();
    assert_eq!(pm.hook().saved(2).unwrap().into_values(), [2]);
}
