//! The host application: a small collaboration backend (users, spaces,
//! memberships) whose every change fires hooks, over HTTP.
//!
//! `main.rs` is `app::main_with(vec![])`; a build that links plugins in
//! statically passes them to [`main_with`].

pub mod api;
pub mod config;
pub mod db;
pub mod http;
pub mod loader;
pub mod package;
pub mod plugins;
pub mod scaffold;
pub mod services;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hooks_core::{Plugin, PluginManager};
use hookspecs::{AppHooks, HookContext, PluginConfigs, RouteDef, RouteTable, Services, UnitOfWork};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::Db;
use crate::services::AppServices;

/// What every request handler shares.
pub struct State {
    /// The database.
    pub db: Db,
    /// The plugins.
    pub hooks: PluginManager<dyn AppHooks>,
    /// The operations.
    pub services: Arc<dyn Services>,
    /// Plugin configuration tables.
    pub configs: Arc<PluginConfigs>,
    /// Every route, core and plugin (frozen at startup).
    pub routes: Vec<RouteDef>,
    /// What became of each plugin at startup.
    pub loaded: Vec<plugins::Entry>,
}

impl State {
    /// A hook context for a unit of work.
    pub fn context(&self, uow: Arc<UnitOfWork>, actor: Option<hookspecs::Identity>) -> HookContext {
        HookContext::new(uow, actor, self.services.clone(), self.configs.clone())
    }

    /// The plugin report (admin endpoint).
    pub fn plugin_report(&self) -> serde_json::Value {
        plugins::report(&self.hooks, &self.loaded, &self.routes)
    }
}

#[derive(Parser)]
#[command(name = "app", about = "The host application and its plugins", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Inspect plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Copy the app, its shared libraries and its plugins into a folder that
    /// runs without a Rust toolchain.
    Package {
        /// The folder to fill.
        out: std::path::PathBuf,
    },
    /// Create plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create `app_plugin_<name>` in the plugins folder from a template that
    /// implements one hook and one route; `cargo run` builds and loads it.
    New {
        /// The plugin's name (lowercase letters, digits and `_`).
        name: String,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// List the plugins and the hooks they implement, without starting the server.
    List,
}

/// Runs the CLI with `plugins` registered (statically linked plugins).
pub fn main_with(plugins: Vec<(String, Plugin<dyn AppHooks>)>) -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(plugins).await,
            Command::Plugins {
                command: PluginsCommand::List,
            } => list(plugins),
            Command::Package { out } => {
                let copied = package::package(&out, &Config::load()?.plugins)?;
                for file in &copied {
                    println!("{}", file.display());
                }
                println!(
                    "{} files in {}: run {}",
                    copied.len(),
                    out.display(),
                    out.join("app").display()
                );
                Ok(())
            }
            Command::Plugin {
                command: PluginCommand::New { name },
            } => {
                let dir = Config::load()?.plugins.dir;
                let created = scaffold::new_plugin(&dir, &name)?;
                println!(
                    "created {}: `cargo run` builds and loads it",
                    created.display()
                );
                Ok(())
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(std::io::stdout)
        .try_init();
}

fn list(plugins: Vec<(String, Plugin<dyn AppHooks>)>) -> anyhow::Result<()> {
    let config = Config::load()?;
    let hooks = PluginManager::<dyn AppHooks>::new();
    let configs = config.plugin_configs();
    let loaded = plugins::load(&hooks, String::new(), plugins, &config.plugins, &configs)?;
    let report = plugins::report(&hooks, &loaded, &[]);
    for plugin in report["plugins"].as_array().into_iter().flatten() {
        let implemented: Vec<&str> = plugin["hooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str())
            .collect();
        println!(
            "{:<24} {:<10} {}",
            plugin["name"].as_str().unwrap_or("?"),
            plugin["status"].as_str().unwrap_or("?"),
            implemented.join(", ")
        );
    }
    Ok(())
}

/// The admin token: configured, or generated once into the data directory.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = &config.admin_token {
        anyhow::ensure!(!token.trim().is_empty(), "the admin token is empty");
        return Ok(token.trim().to_owned());
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
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

async fn serve(plugins: Vec<(String, Plugin<dyn AppHooks>)>) -> anyhow::Result<()> {
    let config = Config::load()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let token = admin_token(&config)?;
    let db = Db::open(&config.database_url()).await?;

    let hooks = PluginManager::<dyn AppHooks>::new();
    let configs = Arc::new(config.plugin_configs());
    let mut loaded = plugins::load(&hooks, token, plugins, &config.plugins, &configs)?;
    let services: Arc<dyn Services> = Arc::new(AppServices::new(hooks.clone()));

    let table = RouteTable::new();
    let core = api::routes();
    for (method, path, _) in &core {
        table.add(RouteDef {
            method: *method,
            path: (*path).to_owned(),
            owner: plugins::APP_PLUGIN.to_owned(),
            handler: None,
        })?;
    }
    let required = &config.plugins.required;
    plugins::migrate(&db, &hooks, &table, &mut loaded, required).await?;
    plugins::start(&hooks, &table, &configs, &mut loaded, required).await?;
    let routes = table.freeze();

    let state = Arc::new(State {
        db: db.clone(),
        hooks,
        services,
        configs,
        routes: routes.clone(),
        loaded,
    });
    let router = http::router(state, &core, &routes)?;
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
    http::serve(listener, router, config.body_limit, shutdown).await?;
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
