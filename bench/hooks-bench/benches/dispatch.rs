//! Hook dispatch, scenario for scenario against `shared/bench/pluggy_bench.py`
//! (same names), for sync and for async hooks, beside a hand-written loop
//! over the same trait objects (`reference/manual-loop-N`): the physical
//! limit the engine is measured against.
//!
//! `bench/dispatch.py` runs this and pluggy's side in one go and prints the
//! table; `cargo bench -p hooks-bench` runs this alone.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use hooks_core::prelude::*;

#[hookspec]
pub trait Bench {
    /// Fan-out hook: every implementation returns `arg`.
    fn compute(&self, arg: u64) -> HookResult<u64>;
    /// firstresult: stops at the first `Some`.
    #[hookspec(firstresult)]
    fn first(&self, arg: u64) -> HookResult<Option<u64>>;
    /// The same two, async.
    async fn compute_async(&self, arg: u64) -> HookResult<u64>;
    #[hookspec(firstresult)]
    async fn first_async(&self, arg: u64) -> HookResult<Option<u64>>;
}

struct Plain;
#[hookimpl]
impl Bench for Plain {
    fn compute(&self, arg: u64) -> HookResult<u64> {
        Ok(arg)
    }
    async fn compute_async(&self, arg: u64) -> HookResult<u64> {
        Ok(arg)
    }
}

/// A wrapper that passes the outcome through (pluggy: `return (yield)`).
struct Wrapper;
#[hookimpl]
impl Bench for Wrapper {
    #[hookimpl(wrapper)]
    fn compute(&self, _arg: u64, next: Next<'_, Results<u64>>) -> HookResult<Results<u64>> {
        Ok(next.call()?)
    }
    #[hookimpl(wrapper)]
    async fn compute_async(
        &self,
        _arg: u64,
        next: AsyncNext<'_, Results<u64>>,
    ) -> HookResult<Results<u64>> {
        Ok(next.await?)
    }
}

/// firstresult participant: `hit` answers, the others decline.
struct First {
    hit: bool,
}
#[hookimpl]
impl Bench for First {
    fn first(&self, arg: u64) -> HookResult<Option<u64>> {
        Ok(self.hit.then_some(arg))
    }
    async fn first_async(&self, arg: u64) -> HookResult<Option<u64>> {
        Ok(self.hit.then_some(arg))
    }
}

fn with_plain(n: usize, wrappers: usize) -> PluginManager<dyn Bench> {
    let pm = PluginManager::new();
    for i in 0..n {
        pm.register(&format!("plain{i}"), Plain).unwrap();
    }
    for i in 0..wrappers {
        pm.register(&format!("wrap{i}"), Wrapper).unwrap();
    }
    pm
}

/// 100 firstresult impls; the 50th to be *called* answers (LIFO: the last
/// registered is called first, so registration index 100 - 50).
fn with_first(n: usize, hit_at_call: usize) -> PluginManager<dyn Bench> {
    let pm = PluginManager::new();
    for i in 0..n {
        pm.register(
            &format!("first{i}"),
            First {
                hit: i == n - hit_at_call,
            },
        )
        .unwrap();
    }
    pm
}

fn plain_objects(n: usize) -> Vec<Arc<dyn Bench>> {
    (0..n).map(|_| Arc::new(Plain) as Arc<dyn Bench>).collect()
}

/// The hand-written fan-out: what the engine costs on top of.
fn manual_loop(plugins: &[Arc<dyn Bench>], arg: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(plugins.len());
    for p in plugins {
        if let Ok(v) = p.compute(arg) {
            out.push(v);
        }
    }
    out
}

async fn manual_loop_async(plugins: &[Arc<dyn Bench>], arg: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(plugins.len());
    for p in plugins {
        if let Ok(v) = p.compute_async(arg).await {
            out.push(v);
        }
    }
    out
}

/// What a call with no implementation returns, made without a call: the
/// floor of the harness and of moving the result.
fn empty_result() -> Result<Results<u64>, HookError> {
    Ok(Results::default())
}

const CALL_SCENARIOS: [(&str, usize, usize); 5] = [
    ("call/0-impls", 0, 0),
    ("call/1-impl", 1, 0),
    ("call/10-impls", 10, 0),
    ("call/100-impls", 100, 0),
    ("call/10-impls+5-wrappers", 10, 5),
];

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
}

fn sync_calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    configure(&mut g);
    for n in [0, 1, 10, 100] {
        let plugins = plain_objects(n);
        assert_eq!(manual_loop(&plugins, 7), vec![7; n]);
        g.bench_function(format!("reference/manual-loop-{n}"), |b| {
            b.iter(|| manual_loop(black_box(&plugins), black_box(7)))
        });
    }
    g.bench_function("reference/empty-result", |b| b.iter(empty_result));
    for (name, n, wrappers) in CALL_SCENARIOS {
        let pm = with_plain(n, wrappers);
        assert_eq!(pm.hook().compute(7).unwrap().into_values(), vec![7; n]);
        g.bench_function(name, |b| b.iter(|| pm.hook().compute(black_box(7))));
    }
    let pm = with_first(100, 50);
    assert_eq!(pm.hook().first(7).unwrap().unwrap().plugin, "first50");
    g.bench_function("first/100-impls-hit@50", |b| {
        b.iter(|| pm.hook().first(black_box(7)))
    });
    g.finish();
}

fn async_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("async");
    configure(&mut g);
    for n in [0, 1, 10, 100] {
        let plugins = plain_objects(n);
        assert_eq!(rt.block_on(manual_loop_async(&plugins, 7)), vec![7; n]);
        g.bench_function(format!("reference/manual-loop-{n}"), |b| {
            b.to_async(&rt)
                .iter(|| manual_loop_async(black_box(&plugins), black_box(7)))
        });
    }
    g.bench_function("reference/empty-result", |b| {
        b.to_async(&rt).iter(|| async { empty_result() })
    });
    for (name, n, wrappers) in CALL_SCENARIOS {
        let pm = with_plain(n, wrappers);
        let values = rt
            .block_on(pm.hook().compute_async(7))
            .unwrap()
            .into_values();
        assert_eq!(values, vec![7; n]);
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { pm.hook().compute_async(black_box(7)).await })
        });
    }
    let pm = with_first(100, 50);
    let answer = rt.block_on(pm.hook().first_async(7)).unwrap().unwrap();
    assert_eq!(answer.plugin, "first50");
    g.bench_function("first/100-impls-hit@50", |b| {
        b.to_async(&rt)
            .iter(|| async { pm.hook().first_async(black_box(7)).await })
    });
    g.finish();
}

/// Registering N fresh plugins into a manager that has the spec, and the
/// first read of the hook after (which publishes the registrations).
fn register(c: &mut Criterion) {
    for (group, hook) in [("sync", "compute"), ("async", "compute_async")] {
        let mut g = c.benchmark_group(group);
        configure(&mut g);
        for n in [100, 1000, 5000] {
            let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            g.bench_function(format!("register/{n}-plugins"), |b| {
                b.iter_batched(
                    || {
                        (
                            PluginManager::<dyn Bench>::new(),
                            (0..n).map(|_| Plain).collect::<Vec<_>>(),
                        )
                    },
                    |(pm, plugins)| {
                        for (name, plugin) in names.iter().zip(plugins) {
                            pm.register(name, plugin).unwrap();
                        }
                        assert_eq!(pm.get_hookimpls(hook).unwrap().len(), n);
                        pm
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
}

criterion_group!(benches, sync_calls, async_calls, register);
criterion_main!(benches);
