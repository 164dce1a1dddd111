//! The real app with the benchmark plugins of `app_bench` linked in: `bench`,
//! `BENCH_LISTENERS=N` listeners and `BENCH_AUTHORIZERS=N` abstaining
//! authorizers (see the crate's documentation).

use std::process::ExitCode;

use app_bench::{Abstainer, Bench, Listener};
use hooks_core::Plugin;
use hookspecs::AppHooks;

/// A count from the environment (0 if unset).
fn count(var: &str) -> Result<usize, String> {
    match std::env::var(var) {
        Ok(n) => n
            .parse()
            .map_err(|_| format!("{var} must be a number, not {n:?}")),
        Err(_) => Ok(0),
    }
}

fn main() -> ExitCode {
    let (listeners, authorizers) = match (count("BENCH_LISTENERS"), count("BENCH_AUTHORIZERS")) {
        (Ok(l), Ok(a)) => (l, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut plugins = vec![(
        "bench".to_owned(),
        Plugin::new(Bench) as Plugin<dyn AppHooks>,
    )];
    plugins.extend((0..listeners).map(|i| (format!("listener_{i:03}"), Plugin::new(Listener))));
    plugins
        .extend((0..authorizers).map(|i| (format!("authorizer_{i:03}"), Plugin::new(Abstainer))));
    app::main_with(plugins)
}
