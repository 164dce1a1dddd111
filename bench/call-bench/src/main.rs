//! One hook call into a sandboxed plugin against the same plugin native
//! (bench/call-bench/plugin, one source), through the engine as the app
//! calls a hook: `PluginManager::hook().on_user_*` with the context a hook
//! gets (the app's authority, an actor, a unit of work that never begins
//! its transaction: no service here touches the database).
//!
//!     call-bench SCENARIO COUNT [COMPONENT.wasm]
//!
//! SCENARIO is `native-0`, `native-1`, `component-0`, `component-1` or
//! `fresh-0`, `fresh-1` (the component with `warm_instances = 0`: an
//! instance per call); the number is the service calls the hook makes
//! (`on_user_created`: none; `on_user_modified`: one `authorize`). It
//! checks that every call answered, then prints the wall time per call.
//! The calls run in [`measured`], for callgrind's `--toggle-collect`
//! (bench/component_call.py): loading, compiling and the first call
//! (the first instance) are not counted.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use app::services::AppServices;
use hooks_core::PluginManager;
use hookspecs::host::{PluginConfigs, UnitOfWork};
use hookspecs::{AppHooks, HookContext, Identity, User};
use serde_json::json;

/// The plugin's name, native or component.
const NAME: &str = "callbench";

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args
        .next()
        .expect("a scenario: native-0, component-1, fresh-0, ...");
    let count: usize = args.next().map_or(10_000, |c| c.parse().expect("a count"));
    let wasm = args.next().map_or_else(default_wasm, PathBuf::from);
    let (kind, services) = scenario.rsplit_once('-').expect("KIND-SERVICES");
    let services: usize = services.parse().expect("0 or 1 service calls");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    // Loading runs the component's `describe` on this thread, inside the
    // runtime (its timer), as the app's startup does.
    let _entered = rt.enter();
    let export = match kind {
        "native" => app_plugin_callbench::app_plugin_register(&json!({})),
        "component" | "fresh" => {
            let table = match kind {
                "fresh" => json!({"sandbox": {"warm_instances": 0}}),
                _ => json!({}),
            };
            let cache = std::env::temp_dir().join("call-bench-component-cache");
            app::plugins::component::load(&wasm, NAME, &table, &cache)
        }
        other => panic!("unknown kind {other}: native, component or fresh"),
    }
    .unwrap_or_else(|why| panic!("loading {}: {why}", wasm.display()));
    let hooks = PluginManager::<dyn AppHooks>::new();
    hooks
        .register_plugin(NAME, export.plugin)
        .expect("registered");
    let ctx = context(&hooks);
    let user = User {
        id: 42,
        username: "ada".into(),
        email: "ada@example.com".into(),
        display_name: Some("Ada".into()),
        created_at: "2026-12-05T00:00:00Z".into(),
    };
    rt.block_on(async {
        // The first call makes the first instance: not measured.
        call(&hooks, services, &user, &ctx).await;
        let started = Instant::now();
        measured(&hooks, services, &user, &ctx, count).await;
        let took = started.elapsed();
        println!(
            "{scenario}: {count} calls, {:.0} ns per call",
            took.as_nanos() as f64 / count as f64
        );
    });
}

/// The component the bench script builds.
fn default_wasm() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2")
        .join(app::plugins::COMPONENT_PROFILE)
        .join("app_plugin_callbench.wasm")
}

/// A context as a hook gets it: a request's (an actor, a unit of work),
/// with the application's authority.
fn context(hooks: &PluginManager<dyn AppHooks>) -> HookContext {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .connect_lazy("sqlite::memory:")
        .expect("a lazy pool");
    let admin = Identity {
        user_id: None,
        name: "admin".into(),
        admin: true,
        via: "app".into(),
    };
    let request = hookspecs::host::context(
        Arc::new(UnitOfWork::new(pool, None)),
        Some(admin),
        Arc::new(AppServices::new(hooks.clone())),
        Arc::new(PluginConfigs::default()),
    );
    hookspecs::host::app_authority(&request)
}

/// `count` calls, each checked.
#[inline(never)]
async fn measured(
    hooks: &PluginManager<dyn AppHooks>,
    services: usize,
    user: &User,
    ctx: &HookContext,
    count: usize,
) {
    for _ in 0..count {
        call(hooks, services, black_box(user), black_box(ctx)).await;
    }
}

/// One call of the hook making `services` service calls; panics unless
/// the plugin answered.
async fn call(
    hooks: &PluginManager<dyn AppHooks>,
    services: usize,
    user: &User,
    ctx: &HookContext,
) {
    let answers = match services {
        0 => hooks.hook().on_user_created(user, ctx).await,
        1 => hooks.hook().on_user_modified(user, user, ctx).await,
        other => panic!("{other} service calls: 0 or 1"),
    };
    let answers = answers.unwrap_or_else(|e| panic!("the hook failed: {e}"));
    assert_eq!(answers.len(), 1, "the plugin answered once");
}
