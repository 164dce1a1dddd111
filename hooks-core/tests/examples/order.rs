//! Call order (the rule: `docs/call-order.md`).

use std::sync::{Arc, Mutex};

use hookery::prelude::*;

#[hookspec]
pub trait Events {
    fn saved(&self, id: u32) -> HookResult<&'static str>;
}

struct First;
#[hookimpl]
impl Events for First {
    #[hookimpl(tryfirst)]
    fn saved(&self, _id: u32) -> HookResult<&'static str> {
        Ok("first")
    }
}

struct Last;
#[hookimpl]
impl Events for Last {
    #[hookimpl(trylast)]
    fn saved(&self, _id: u32) -> HookResult<&'static str> {
        Ok("last")
    }
}

struct Plain(&'static str);
#[hookimpl]
impl Events for Plain {
    fn saved(&self, _id: u32) -> HookResult<&'static str> {
        Ok(self.0)
    }
}

struct Urgent;
#[hookimpl]
impl Events for Urgent {
    #[hookimpl(priority = 10)]
    fn saved(&self, _id: u32) -> HookResult<&'static str> {
        Ok("urgent")
    }
}

#[test]
fn tryfirst_then_priority_then_later_registered_first_then_trylast() {
    let pm = PluginManager::<dyn Events>::new();
    pm.register("last", Last).unwrap();
    pm.register("a", Plain("a")).unwrap();
    pm.register("first", First).unwrap();
    pm.register("b", Plain("b")).unwrap();
    pm.register("urgent", Urgent).unwrap();
    let order = pm.hook().saved(1).unwrap().into_values();
    // `b` registered after `a`: at equal priority it runs first.
    assert_eq!(order, ["first", "urgent", "b", "a", "last"]);
}

#[test]
fn after_moves_a_plugin_within_its_tier_only() {
    struct Cache;
    #[hookimpl]
    impl Events for Cache {
        #[hookimpl(after = "audit")]
        fn saved(&self, _id: u32) -> HookResult<&'static str> {
            Ok("cache")
        }
    }
    let pm = PluginManager::<dyn Events>::new();
    pm.register("audit", Plain("audit")).unwrap();
    pm.register("cache", Cache).unwrap();
    pm.register("first", First).unwrap();
    let order = pm.hook().saved(1).unwrap().into_values();
    // Without the constraint `cache` (registered later) would run before
    // `audit`; `first` stays ahead, in its own tier.
    assert_eq!(order, ["first", "audit", "cache"]);
}

#[test]
fn wrappers_are_outermost() {
    type Log = Arc<Mutex<Vec<&'static str>>>;
    struct Around(Log);
    #[hookimpl]
    impl Events for Around {
        #[hookimpl(wrapper, trylast)]
        fn saved(
            &self,
            _id: u32,
            next: Next<'_, Results<&'static str>>,
        ) -> HookResult<Results<&'static str>> {
            self.0.lock().unwrap().push("around: before");
            let results = next.call()?;
            self.0.lock().unwrap().push("around: after");
            Ok(results)
        }
    }
    struct Logged(Log);
    #[hookimpl]
    impl Events for Logged {
        #[hookimpl(tryfirst)]
        fn saved(&self, _id: u32) -> HookResult<&'static str> {
            self.0.lock().unwrap().push("plain");
            Ok("plain")
        }
    }
    let log = Log::default();
    let pm = PluginManager::<dyn Events>::new();
    pm.register("plain", Logged(log.clone())).unwrap();
    pm.register("around", Around(log.clone())).unwrap();
    pm.hook().saved(1).unwrap();
    // A trylast wrapper still runs around a tryfirst plain implementation.
    assert_eq!(
        *log.lock().unwrap(),
        ["around: before", "plain", "around: after"]
    );
}
