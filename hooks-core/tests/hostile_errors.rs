//! No plugin can take the host down by its error's formatting: an error
//! whose `Display` and `Debug` panic (or fail) is written as a note
//! wherever the engine formats it (the error's own `Display` and `Debug`,
//! the call and implementation spans' `outcome`, the `on_error =
//! "continue"` warning), under every subscriber setup.

mod common;

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use common::*;
use hookery::prelude::*;
use tracing_subscriber::fmt::format::FmtSpan;

/// An error whose formatting panics.
struct Hostile;

impl fmt::Display for Hostile {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Display of a hostile error")
    }
}

impl fmt::Debug for Hostile {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Debug of a hostile error")
    }
}

impl std::error::Error for Hostile {}

/// An error whose formatting reports `fmt::Error` (which makes
/// `to_string()` panic).
#[derive(Debug)]
struct Failing;

impl fmt::Display for Failing {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Err(fmt::Error)
    }
}

impl std::error::Error for Failing {}

struct Plugin(fn() -> PluginError);

#[hookimpl]
impl Hooks for Plugin {
    fn run(&self, _x: u32) -> HookResult<u32> {
        Err((self.0)())
    }
    fn notify(&self, _x: u32) -> HookResult<u32> {
        Err((self.0)())
    }
}

#[hookimpl]
impl AsyncHooks for Plugin {
    async fn run(&self, _x: u32) -> HookResult<u32> {
        Err((self.0)())
    }
    async fn notify(&self, _x: u32) -> HookResult<u32> {
        Err((self.0)())
    }
}

const PANICKED: &str = "plugin `hostile` failed in hook `run`: \
                        (the plugin's error panicked while being formatted)";
const FAILED: &str = "plugin `hostile` failed in hook `run`: (the plugin's error failed to format)";

/// Calls both hooks, sync and async, on a plugin failing with `error`;
/// checks that the calls return the error, formatted as a note.
fn survive(error: fn() -> PluginError, expected: &str) {
    let pm = PluginManager::<dyn Hooks>::new();
    pm.register("hostile", Plugin(error)).unwrap();
    let err = pm.hook().run(0).unwrap_err();
    assert_eq!(err.plugin(), Some("hostile"));
    assert_eq!(err.to_string(), expected);
    assert!(format!("{err:?}").starts_with("HookError {"));
    let kept = pm.hook().notify(0).unwrap();
    assert_eq!(kept.errors().len(), 1);
    assert!(
        kept.errors()[0]
            .to_string()
            .ends_with(expected.split(": ").nth(1).unwrap())
    );

    let pm = PluginManager::<dyn AsyncHooks>::new();
    pm.register("hostile", Plugin(error)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt.block_on(pm.hook().run(0)).unwrap_err();
    assert_eq!(err.to_string(), expected);
    let kept = rt.block_on(pm.hook().notify(0)).unwrap();
    assert_eq!(kept.errors().len(), 1);
}

fn hostile() -> PluginError {
    Hostile.into()
}

fn failing() -> PluginError {
    Failing.into()
}

/// One subscriber setup at a time: callsite interest is global.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// `survive` under tracing-subscriber's fmt subscriber with `spans`
/// events, at TRACE; returns what it wrote.
fn survive_under_fmt(spans: FmtSpan, error: fn() -> PluginError, expected: &str) -> String {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(spans)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || survive(error, expected));
    capture.text()
}

#[test]
fn a_panicking_display_is_a_note_with_no_subscriber() {
    let _one = one_at_a_time();
    // Explicitly none, whether or not another test set a global one.
    let none = tracing::subscriber::NoSubscriber::default();
    tracing::subscriber::with_default(none, || {
        survive(hostile, PANICKED);
        survive(failing, FAILED);
    });
}

#[test]
fn a_panicking_display_is_a_note_in_span_close_events() {
    let _one = one_at_a_time();
    let text = survive_under_fmt(FmtSpan::NEW | FmtSpan::CLOSE, hostile, PANICKED);
    let closes: Vec<_> = text
        .lines()
        .filter(|l| l.contains("close") && l.contains("panicked while being formatted"))
        .collect();
    // The call span and the implementation span of `run`, sync and async.
    assert!(closes.len() >= 4, "{text}");
    let text = survive_under_fmt(FmtSpan::CLOSE, failing, FAILED);
    assert!(text.contains("failed to format"), "{text}");
}

#[test]
fn a_panicking_display_is_a_note_in_the_continue_policy_warning() {
    let _one = one_at_a_time();
    let text = survive_under_fmt(FmtSpan::NONE, hostile, PANICKED);
    let warnings: Vec<_> = text
        .lines()
        .filter(|l| l.contains("hook implementation failed; continuing"))
        .collect();
    assert_eq!(warnings.len(), 2, "sync and async: {text}");
    assert!(
        warnings
            .iter()
            .all(|w| w.contains("panicked while being formatted"))
    );
}

#[test]
fn a_panicking_display_is_a_note_under_a_global_subscriber_with_every_span_event() {
    let _one = one_at_a_time();
    // Also as the process-wide default, as an application installs it.
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    survive(hostile, PANICKED);
    survive(failing, FAILED);
    assert!(capture.text().contains("panicked while being formatted"));
}
