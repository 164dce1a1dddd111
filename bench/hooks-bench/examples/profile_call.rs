//! One dispatch scenario in a loop, for instruction counts under callgrind
//! (which a shared machine does not disturb, unlike wall time):
//!
//!     cargo build --profile bench -p hooks-bench --example profile_call
//!     valgrind --tool=callgrind target/bench/profile_call sync-call-1 100000
//!
//! Instructions per call: the inclusive total of `profile_call::scenario`
//! at two counts, subtracted, over the difference (30,000 and 10,000
//! calls: the setup, a manager and a runtime, cancels out), as
//! BENCHMARKS.md reports them. The binary needs only the engine and
//! Tokio; a scratch crate with this file as its `main.rs` and
//! `hookery = { path = ".../hooks-core", features = ["async"] }`, `tokio`
//! (`rt`) and `tracing` (`log`, as the workspace builds it) gives the same
//! counts without building the app this crate's other benchmark needs.

use std::hint::black_box;
use std::sync::Arc;

use hooks_core::prelude::*;

#[hookspec]
pub trait Bench {
    fn compute(&self, arg: u64) -> HookResult<u64>;
    async fn compute_async(&self, arg: u64) -> HookResult<u64>;
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

fn manager(n: usize) -> PluginManager<dyn Bench> {
    let pm = PluginManager::new();
    for i in 0..n {
        pm.register(&format!("plain{i}"), Plain).unwrap();
    }
    pm
}

#[inline(never)]
fn scenario(name: &str, count: usize) {
    let (mode, n) = name.rsplit_once('-').expect("mode-N");
    let n: usize = n.parse().expect("N");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let objects: Vec<Arc<dyn Bench>> = (0..n).map(|_| Arc::new(Plain) as Arc<dyn Bench>).collect();
    let pm = manager(n);
    match mode {
        "sync-manual" => (0..count).for_each(|_| {
            let mut out = Vec::with_capacity(n);
            for p in black_box(&objects) {
                out.extend(p.compute(7).ok());
            }
            black_box(out);
        }),
        "sync-call" => (0..count).for_each(|_| {
            black_box(pm.hook().compute(black_box(7)).unwrap());
        }),
        "async-manual" => rt.block_on(async {
            for _ in 0..count {
                let mut out = Vec::with_capacity(n);
                for p in black_box(&objects) {
                    out.extend(p.compute_async(7).await.ok());
                }
                black_box(out);
            }
        }),
        "async-call" => rt.block_on(async {
            for _ in 0..count {
                black_box(pm.hook().compute_async(black_box(7)).await.unwrap());
            }
        }),
        other => panic!("unknown scenario {other}"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("scenario, e.g. sync-call-1");
    let count = args.next().map_or(100_000, |c| c.parse().expect("count"));
    scenario(&name, count);
}
