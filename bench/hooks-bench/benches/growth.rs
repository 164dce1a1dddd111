//! How the cost of an entity hook grows with the number of plugins that
//! implement it: `on_user_created`, the app's real hook with its real
//! arguments, called with 0, 1, 10, 50 and 100 implementations (the
//! `Listener` plugin of `app-bench`, which counts the users it sees).
//!
//! `bench/run.py` runs this beside the same curve measured through the whole
//! app (`POST /api/users` against `bench-app` with `BENCH_LISTENERS=N`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use app::services::AppServices;
use app_bench::Listener;
use criterion::{Criterion, criterion_group, criterion_main};
use hooks_core::PluginManager;
use hookspecs::host::{PluginConfigs, UnitOfWork};
use hookspecs::{AppHooks, HookContext, User};

/// The sizes `bench/run.py` plots; keep them in step.
const SIZES: [usize; 5] = [0, 1, 10, 50, 100];

fn with_listeners(n: usize) -> PluginManager<dyn AppHooks> {
    let pm = PluginManager::<dyn AppHooks>::new();
    for i in 0..n {
        pm.register(&format!("listener_{i:03}"), Listener).unwrap();
    }
    pm
}

/// A context as the app builds one per request. The listeners never touch
/// the database, so the unit of work never begins its transaction.
fn context(hooks: &PluginManager<dyn AppHooks>) -> HookContext {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .connect_lazy("sqlite::memory:")
        .expect("a lazy pool");
    hookspecs::host::context(
        Arc::new(UnitOfWork::new(pool, None)),
        None,
        Arc::new(AppServices::new(hooks.clone())),
        Arc::new(PluginConfigs::default()),
    )
}

fn growth(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let user = User {
        id: 42,
        username: "ada".into(),
        email: "ada@example.com".into(),
        display_name: None,
        created_at: "2026-11-26T00:00:00Z".into(),
    };
    let mut g = c.benchmark_group("growth");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    for n in SIZES {
        let hooks = with_listeners(n);
        let ctx = rt.block_on(async { context(&hooks) });
        let outcome = rt.block_on(hooks.hook().on_user_created(&user, &ctx));
        assert_eq!(outcome.unwrap().len(), n, "every listener answers");
        g.bench_function(format!("on_user_created/{n}-impls"), |b| {
            b.to_async(&rt).iter(|| async {
                hooks
                    .hook()
                    .on_user_created(black_box(&user), black_box(&ctx))
                    .await
            })
        });
    }
    g.finish();
}

criterion_group!(benches, growth);
criterion_main!(benches);
