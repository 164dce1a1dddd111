//! `firstresult`: the first `Some` answers, and the rest do not run.

use std::sync::atomic::{AtomicBool, Ordering};

use hookery::prelude::*;

#[hookspec]
pub trait Auth {
    #[hookspec(firstresult)]
    fn authenticate(&self, token: &str) -> HookResult<Option<u32>>;
}

/// Knows one token.
struct Tokens(&'static str, u32);
#[hookimpl]
impl Auth for Tokens {
    fn authenticate(&self, token: &str) -> HookResult<Option<u32>> {
        Ok((token == self.0).then_some(self.1))
    }
}

#[test]
fn the_first_some_answers_and_says_who() {
    let pm = PluginManager::<dyn Auth>::new();
    pm.register("staff", Tokens("s3cret", 1)).unwrap();
    pm.register("guests", Tokens("guest", 2)).unwrap();
    let who = pm.hook().authenticate("s3cret").unwrap().unwrap();
    assert_eq!((who.plugin, who.value), ("staff", 1));
}

#[test]
fn nobody_recognising_it_gives_none() {
    let pm = PluginManager::<dyn Auth>::new();
    pm.register("staff", Tokens("s3cret", 1)).unwrap();
    assert!(pm.hook().authenticate("nope").unwrap().is_none());
}

#[test]
fn implementations_after_the_answer_do_not_run() {
    static ASKED: AtomicBool = AtomicBool::new(false);
    struct Fallback;
    #[hookimpl]
    impl Auth for Fallback {
        #[hookimpl(trylast)]
        fn authenticate(&self, _token: &str) -> HookResult<Option<u32>> {
            ASKED.store(true, Ordering::SeqCst);
            Ok(Some(0))
        }
    }
    let pm = PluginManager::<dyn Auth>::new();
    pm.register("fallback", Fallback).unwrap();
    pm.register("staff", Tokens("s3cret", 1)).unwrap();
    assert_eq!(pm.hook().authenticate("s3cret").unwrap().unwrap().value, 1);
    assert!(!ASKED.load(Ordering::SeqCst));
    assert_eq!(
        pm.hook().authenticate("other").unwrap().unwrap().plugin,
        "fallback"
    );
    assert!(ASKED.load(Ordering::SeqCst));
}
