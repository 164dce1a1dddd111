//! Starting the service: configuration, database, plugins, routes, then
//! serving until a signal.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use hooks_core::{Plugin, PluginManager};
use hookspecs::host::RouteTable;
use hookspecs::{AppHooks, Services};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::{Db, RetryStats};
use crate::plugins::PluginReport;
use crate::services::AppServices;
use crate::state::State;
use crate::{api, http, outbox, plugins};

/// The admin token: configured, or generated once into the data directory.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = &config.admin_token {
        anyhow::ensure!(!token.trim().is_empty(), "the admin token is empty");
        return Ok(token.trim().to_owned());
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        anyhow::ensure!(
            !token.trim().is_empty(),
            "the admin token file {} is empty: delete it to have a new token generated, \
             or set APP_ADMIN_TOKEN",
            path.display()
        );
        return Ok(token.trim().to_owned());
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_secret(&path, &token)?;
    tracing::info!("generated an admin token in {}", path.display());
    Ok(token)
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}

/// Serves until a signal; with `watch`, components whose file or crate
/// changed are reloaded, polled at that interval.
pub(crate) async fn serve(
    plugins: Vec<(String, Plugin<dyn AppHooks>)>,
    watch: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let config = Config::load()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let token = admin_token(&config)?;
    let db = Db::open_with(&config.database_url(), config.database.writers).await?;

    let hooks = PluginManager::<dyn AppHooks>::new();
    let configs = Arc::new(config.plugin_configs());
    let mut loaded = plugins::load(&hooks, token, plugins, &config, &configs)?;
    let services: Arc<dyn Services> = Arc::new(AppServices::new(hooks.clone()));

    let table = RouteTable::default();
    for route in api::routes() {
        table.add(route)?;
    }
    let required = &config.plugins.required;
    plugins::migrate(&db, &hooks, &table, &mut loaded, required).await?;
    plugins::start(&hooks, &table, &configs, &mut loaded, required).await?;
    plugins::log_report(&loaded);
    let retries = Arc::new(RetryStats::default());
    let loaded: plugins::Entries = Arc::new(std::sync::Mutex::new(loaded));
    // Empty until the table is complete: the reload and report routes it
    // holds need it first.
    let router: http::router::Live = Arc::new(ArcSwap::from_pointee(http::router::Router::new(
        Vec::new(),
    )?));
    let reloader = Arc::new(plugins::Reloader::new(
        hooks.clone(),
        db.clone(),
        configs.clone(),
        &config.plugins,
        loaded.clone(),
        router.clone(),
    ));
    table.add(api::plugin_reload(reloader.clone()))?;
    table.add(api::plugin_report(PluginReport {
        hooks: hooks.clone(),
        loaded,
        router: router.clone(),
        retries: retries.clone(),
    }))?;
    router.store(Arc::new(http::router::Router::new(table.freeze())?));
    let watcher = watch.map(|every| plugins::watch(reloader, every));

    let state = Arc::new(State {
        db: db.clone(),
        hooks,
        services,
        configs,
        router,
        limits: config.http.clone(),
        in_flight: http::InFlight::default(),
        retry: config.database.clone(),
        retries,
    });
    let deliveries = outbox::Deliverer::start(state.clone(), config.deliveries.clone()).await?;
    let shutdown = shutdown_signal().context("installing the signal handlers")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    if config.admin_token.is_none() {
        tracing::info!(
            "authenticate with: curl -H \"Authorization: Bearer $(cat {})\" http://{addr}/api/users",
            config.data_dir.join("admin-token").display()
        );
    }
    http::server::serve(listener, state, shutdown).await?;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    deliveries.stop().await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT or SIGTERM. The handlers are installed now, not when the future is
/// first polled: a signal that comes right after "listening on" still stops
/// the app gracefully instead of killing it.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
