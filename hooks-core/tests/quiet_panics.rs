//! `quiet_plugin_panics`: the panic hook hears nothing of panics the engine
//! catches in implementations (sync, and async at start and while
//! polled), and still hears every other panic. One test in its own binary:
//! the panic hook is the process's.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hookery::prelude::*;

#[hookspec]
pub trait Events {
    fn compute(&self, x: u32) -> HookResult<u32>;
    async fn later(&self) -> HookResult<()>;
}

struct Faulty;

#[hookimpl]
impl Events for Faulty {
    fn compute(&self, x: u32) -> HookResult<u32> {
        panic!("faulty cannot count to {x}")
    }

    async fn later(&self) -> HookResult<()> {
        tokio::task::yield_now().await;
        panic!("faulty fails after a poll")
    }
}

#[tokio::test]
async fn caught_plugin_panics_stay_quiet_and_every_other_panic_is_reported() {
    // The "previous" hook: counts what would have been printed.
    let reported = Arc::new(AtomicUsize::new(0));
    let counter = reported.clone();
    std::panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    hookery::quiet_plugin_panics();
    hookery::quiet_plugin_panics(); // a second call changes nothing

    let pm = PluginManager::<dyn Events>::new();
    pm.register("faulty", Faulty).unwrap();
    let sync = pm.hook().compute(3).unwrap_err();
    assert!(sync.is_panic(), "{sync}");
    let later = pm.hook().later().await.unwrap_err();
    assert!(
        later.to_string().contains("faulty fails after a poll"),
        "{later}"
    );
    assert_eq!(reported.load(Ordering::SeqCst), 0, "caught panics reported");

    // A panic outside any implementation goes to the previous hook.
    let outside = catch_unwind(AssertUnwindSafe(|| panic!("the host's own bug")));
    assert!(outside.is_err());
    assert_eq!(reported.load(Ordering::SeqCst), 1);

    let _ = std::panic::take_hook();
}
