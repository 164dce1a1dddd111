//! The real app with the benchmark plugins of `app_bench` linked in: `bench`,
//! and `BENCH_LISTENERS=N` listeners (see the crate's documentation).

use std::process::ExitCode;

use app_bench::{Bench, Listener};
use hooks_core::Plugin;
use hookspecs::AppHooks;

fn main() -> ExitCode {
    let listeners: usize = match std::env::var("BENCH_LISTENERS") {
        Ok(n) => match n.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("error: BENCH_LISTENERS must be a number, not {n:?}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => 0,
    };
    let mut plugins = vec![(
        "bench".to_owned(),
        Plugin::new(Bench) as Plugin<dyn AppHooks>,
    )];
    plugins.extend((0..listeners).map(|i| (format!("listener_{i:03}"), Plugin::new(Listener))));
    app::main_with(plugins)
}
