//! Tracing: every call is a `hook` span (DEBUG) and every implementation a
//! `hookimpl` span (TRACE) inside it, with hook, plugin, wrapper and
//! outcome fields. Captured with tracing-subscriber's fmt layer writing
//! span creations and closes into a buffer.

mod common;

use std::sync::{Mutex, MutexGuard};

use common::*;
use hookery::prelude::*;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Span events (`new` / `close`) while the returned guard lives, at `level`
/// and above, on this thread.
struct Spans<Guard> {
    capture: Capture,
    _guard: Guard,
    _one_at_a_time: MutexGuard<'static, ()>,
}

/// The tests of this file install their subscribers one at a time, so that
/// no callsite's interest is ever decided by another test's level filter.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn record_spans(level: LevelFilter) -> Spans<impl Sized> {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(move || writer.clone())
        .finish();
    Spans {
        _one_at_a_time: ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()),
        capture,
        _guard: subscriber.set_default(),
    }
}

impl<Guard> Spans<Guard> {
    /// One line per span event: `new <path>` with the path of nested spans
    /// (`hook{..}:hookimpl{..}`), or `close <span>` with the closed span
    /// and all its fields.
    fn events(&self) -> Vec<String> {
        let text = self.capture.text();
        text.lines()
            .map(|line| {
                let (_level, rest) = line.split_once(' ').unwrap();
                let (path, event) = rest.rsplit_once(": ").unwrap();
                match event {
                    "new" => format!("new {path}"),
                    "close" => format!("close {}", path.rsplit("}:").next().unwrap()),
                    other => panic!("unexpected span event {other}"),
                }
            })
            .collect()
    }
}

const HOOK: &str = r#"hook{hook="run"}"#;
const W: &str = r#"hookimpl{hook="run" plugin="w" wrapper=true"#;
const A: &str = r#"hookimpl{hook="run" plugin="a" wrapper=false"#;
const B: &str = r#"hookimpl{hook="run" plugin="b" wrapper=false"#;
const FAILED: &str = "outcome=plugin `b` failed in hook `run`: boom from b}";

/// Wrapper `w` around `a` then `b` (which does `b`).
fn wab<S: hookery::Spec + ?Sized>(b: Act) -> PluginManager<S>
where
    Probe: hookery::Implements<S>,
{
    let (log, pm) = (Log::new(), PluginManager::<S>::new());
    add(&pm, probe("a", &log), on("run"));
    add(&pm, probe("b", &log).act(b), on("run").trylast());
    add(&pm, probe("w", &log), on("run").wrapper());
    pm
}

/// The events of a `run` call through `wab` that fails in `b`.
fn failing_call_events() -> Vec<String> {
    vec![
        format!("new {HOOK}"),
        format!("new {HOOK}:{W}}}"),
        format!("new {HOOK}:{W}}}:{A}}}"),
        format!(r#"close {A} outcome="ok"}}"#),
        format!("new {HOOK}:{W}}}:{B}}}"),
        format!("close {B} {FAILED}"),
        format!("close {W} {FAILED}"),
        format!(r#"close hook{{hook="run" {FAILED}"#),
    ]
}

#[test]
fn a_call_is_a_hook_span_with_one_hookimpl_span_per_impl() {
    let pm: PluginManager<dyn Hooks> = wab(Act::Value(2));
    let spans = record_spans(LevelFilter::TRACE);
    pm.hook().run(0).unwrap();
    let ok = r#"outcome="ok"}"#;
    let expected = [
        format!("new {HOOK}"),
        format!("new {HOOK}:{W}}}"),
        format!("new {HOOK}:{W}}}:{A}}}"),
        format!("close {A} {ok}"),
        format!("new {HOOK}:{W}}}:{B}}}"),
        format!("close {B} {ok}"),
        format!("close {W} {ok}"),
        format!(r#"close hook{{hook="run" {ok}"#),
    ];
    assert_eq!(spans.events(), expected);
}

#[test]
fn spans_record_a_failure_as_their_outcome() {
    let pm: PluginManager<dyn Hooks> = wab(Act::Fail);
    let spans = record_spans(LevelFilter::TRACE);
    pm.hook().run(0).unwrap_err();
    assert_eq!(spans.events(), failing_call_events());
}

#[test]
fn hookimpl_spans_are_trace_level_and_hook_spans_debug() {
    let pm: PluginManager<dyn Hooks> = wab(Act::Value(2));
    let spans = record_spans(LevelFilter::DEBUG);
    pm.hook().run(0).unwrap();
    let expected = [
        format!("new {HOOK}"),
        r#"close hook{hook="run" outcome="ok"}"#.to_string(),
    ];
    assert_eq!(spans.events(), expected);
}

#[tokio::test]
async fn async_calls_are_spans_too() {
    let pm: PluginManager<dyn AsyncHooks> = wab(Act::Fail);
    let spans = record_spans(LevelFilter::TRACE);
    pm.hook().run(0).await.unwrap_err();
    assert_eq!(spans.events(), failing_call_events());
}

/// A hook with no implementation is answered without the snapshot while
/// nobody listens; at DEBUG its call is a span like any other.
#[tokio::test]
async fn a_call_with_no_implementation_is_a_span_when_someone_listens() {
    let (sync, asynchronous) = (
        PluginManager::<dyn Hooks>::new(),
        PluginManager::<dyn AsyncHooks>::new(),
    );
    sync.hook().run(0).unwrap();
    asynchronous.hook().run(0).await.unwrap();
    let spans = record_spans(LevelFilter::DEBUG);
    sync.hook().run(0).unwrap();
    asynchronous.hook().run(0).await.unwrap();
    let call = [
        format!("new {HOOK}"),
        r#"close hook{hook="run" outcome="ok"}"#.to_string(),
    ];
    assert_eq!(spans.events(), [call.clone(), call].concat());
}
