//! Wrappers: they get the rest of the chain as `next` and decide what the
//! call returns.

use hookery::anyhow;
use hookery::prelude::*;

#[hookspec]
pub trait Compute {
    fn compute(&self, x: u32) -> HookResult<u32>;
}

struct Double;
#[hookimpl]
impl Compute for Double {
    fn compute(&self, x: u32) -> HookResult<u32> {
        Ok(x * 2)
    }
}

struct Fails;
#[hookimpl]
impl Compute for Fails {
    fn compute(&self, _x: u32) -> HookResult<u32> {
        Err(anyhow::anyhow!("out of order"))
    }
}

#[test]
fn a_wrapper_sees_and_may_change_the_outcome() {
    struct AddOne;
    #[hookimpl]
    impl Compute for AddOne {
        #[hookimpl(wrapper)]
        fn compute(&self, x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
            let mut results = next.call()?;
            results.push("add_one", x + 1);
            Ok(results)
        }
    }
    let pm = PluginManager::<dyn Compute>::new();
    pm.register("double", Double).unwrap();
    pm.register("add_one", AddOne).unwrap();
    let results = pm.hook().compute(5).unwrap();
    assert_eq!(results.plugins().collect::<Vec<_>>(), ["double", "add_one"]);
    assert_eq!(results.into_values(), [10, 6]);
}

#[test]
fn a_wrapper_may_swallow_an_error() {
    struct Forgiving;
    #[hookimpl]
    impl Compute for Forgiving {
        #[hookimpl(wrapper)]
        fn compute(&self, _x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
            match next.call() {
                Ok(results) => Ok(results),
                Err(error) => {
                    assert_eq!(error.plugin(), Some("fails"));
                    Ok(Results::default())
                }
            }
        }
    }
    let pm = PluginManager::<dyn Compute>::new();
    pm.register("fails", Fails).unwrap();
    pm.register("forgiving", Forgiving).unwrap();
    assert!(pm.hook().compute(1).unwrap().is_empty());
}

#[test]
fn a_wrapper_that_never_runs_next_short_circuits_the_chain() {
    struct Cached;
    #[hookimpl]
    impl Compute for Cached {
        #[hookimpl(wrapper)]
        fn compute(&self, x: u32, _next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
            // `_next` is never called: nothing after this wrapper runs.
            let mut cached = Results::default();
            cached.push("cached", x);
            Ok(cached)
        }
    }
    let pm = PluginManager::<dyn Compute>::new();
    pm.register("fails", Fails).unwrap();
    pm.register("cached", Cached).unwrap();
    // `fails` never ran, so the call succeeds.
    assert_eq!(pm.hook().compute(7).unwrap().into_values(), [7]);
}
