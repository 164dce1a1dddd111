//! The command line: `serve` (the default), `plugins list`, `package`,
//! `plugin new`.

pub mod package;
pub mod scaffold;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hooks_core::{Plugin, PluginManager};
use hookspecs::AppHooks;

use crate::config::Config;
use crate::plugins;
use crate::startup::serve;

#[derive(Parser)]
#[command(name = "app", about = "The host application and its plugins", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve {
        /// Reload a component whose file or crate in the plugin folder
        /// changed (polled).
        #[arg(long)]
        watch: bool,
        /// With --watch: how often to look, in milliseconds.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..))]
        watch_ms: u64,
    },
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
    /// Inspect and retry after-commit deliveries.
    Deliveries {
        #[command(subcommand)]
        command: DeliveriesCommand,
    },
}

#[derive(Subcommand)]
enum DeliveriesCommand {
    /// List deliveries, oldest first.
    List {
        /// pending, dead or delivered (default: all).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// Make a dead delivery pending again (a running app picks it up at its
    /// next poll).
    Retry {
        /// The delivery's id.
        id: i64,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create `app_plugin_<name>` in the plugins folder from a template that
    /// implements one hook (and, native, one route); `cargo run` builds and
    /// loads it.
    New {
        /// The plugin's name (lowercase letters, digits and `_`).
        name: String,
        /// A WebAssembly component (sandboxed, reloadable) instead of a
        /// native library.
        #[arg(long)]
        component: bool,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// List the plugins and the hooks they implement, without starting the server.
    List,
}

/// Runs the CLI with `plugins` registered (statically linked plugins).
pub fn main_with(plugins: Vec<(String, Plugin<dyn AppHooks>)>) -> ExitCode {
    if let Err(why) = plugins::loader::check_sdk() {
        eprintln!("error: {why}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let _log = init_tracing();
    // A plugin's action fires hooks in turn, up to the engine's depth limit
    // (64 levels), and each level is polled through the whole operation's
    // futures: tokio's 2 MiB worker stacks overflow before the limit answers
    // in an unoptimised build. 8 MiB is what a main thread gets.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let serve_by_default = Command::Serve {
            watch: false,
            watch_ms: 0,
        };
        match cli.command.unwrap_or(serve_by_default) {
            Command::Serve { watch, watch_ms } => {
                let watch = watch.then(|| std::time::Duration::from_millis(watch_ms));
                serve(plugins, watch).await
            }
            Command::Plugins {
                command: PluginsCommand::List,
            } => list(plugins),
            Command::Package { out } => {
                let linked: Vec<String> = plugins.iter().map(|(name, _)| name.clone()).collect();
                let packaged = package::package(&out, &Config::load()?.plugins, &linked)?;
                for file in &packaged.copied {
                    println!("{}", file.display());
                }
                // On stderr: stdout is what was copied, one path a line.
                for plugin in &packaged.left_out {
                    eprintln!("left out: {plugin}");
                }
                for stale in &packaged.removed {
                    eprintln!("removed {}: not part of this package", stale.display());
                }
                println!(
                    "{} files in {}: run {}",
                    packaged.copied.len(),
                    out.display(),
                    out.join("app").display()
                );
                Ok(())
            }
            Command::Deliveries { command } => deliveries(command).await,
            Command::Plugin {
                command: PluginCommand::New { name, component },
            } => {
                let (dir, _) = Config::load()?.plugins.folder();
                let kind = if component {
                    scaffold::Template::Component
                } else {
                    scaffold::Template::Native
                };
                let created = scaffold::new_plugin(&dir, &name, kind)?;
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
            // Once, on stderr: the log (stdout) may be filtered or elsewhere.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stdout from a thread of their own: a request never waits for
/// the terminal or a pipe (the access log is one line per request). That
/// thread flushes after taking every line queued, so through a `BufWriter`
/// the lines queued together go out in one `write` (stdout alone is
/// line-buffered: one system call per line, the largest part of an
/// access-log line's cost). The access log hands that thread its lines
/// already formatted, a batch at a time (`http::access_log`). The guard
/// flushes what is queued when dropped, at exit.
fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stdout = std::io::BufWriter::new(std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking(stdout);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer.clone())
        .try_init();
    if installed.is_ok() {
        // The access log writes its lines itself, in the same format.
        crate::http::access_log::write_to(writer, ansi);
    }
    guard
}

fn list(plugins: Vec<(String, Plugin<dyn AppHooks>)>) -> anyhow::Result<()> {
    let config = Config::load()?;
    let hooks = PluginManager::<dyn AppHooks>::new();
    let configs = config.plugin_configs();
    let loaded = plugins::load(&hooks, String::new(), plugins, &config, &configs)?;
    plugins::log_report(&loaded);
    let report = plugins::report(&hooks, &loaded, &[]);
    for plugin in report["plugins"].as_array().into_iter().flatten() {
        let implemented: Vec<&str> = plugin["hooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str())
            .collect();
        // One line per plugin, whatever its file is named.
        println!(
            "{:<24} {:<10} {}",
            plugins::printable(plugin["name"].as_str().unwrap_or("?")),
            plugins::printable(plugin["status"].as_str().unwrap_or("?")),
            implemented.join(", ")
        );
    }
    Ok(())
}

async fn deliveries(command: DeliveriesCommand) -> anyhow::Result<()> {
    use crate::outbox::admin;
    let config = Config::load()?;
    let db = crate::db::Db::open(&config.database_url()).await?;
    let mut conn = db.pool.acquire().await?;
    let outcome = match command {
        DeliveriesCommand::List {
            status,
            limit,
            offset,
        } => {
            let (limit, offset) = (limit.to_string(), offset.to_string());
            let filter = admin::Filter::parse(status.as_deref(), Some(&limit), Some(&offset))
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let page = admin::list(&mut conn, &filter).await;
            page.map(|page| {
                let rows = page["deliveries"].as_array().cloned().unwrap_or_default();
                for d in &rows {
                    println!(
                        "{:<6} {:<10} {:<20} {:<16} attempts={} event={} {}",
                        d["id"],
                        d["status"].as_str().unwrap_or("?"),
                        d["event"].as_str().unwrap_or("?"),
                        d["plugin"].as_str().unwrap_or("?"),
                        d["attempts"],
                        d["event_id"].as_str().unwrap_or("?"),
                        d["last_error"].as_str().unwrap_or(""),
                    );
                }
                println!("{} of {}", rows.len(), page["total"]);
            })
        }
        DeliveriesCommand::Retry { id } => admin::retry(&mut conn, id).await.map(|d| {
            let event = d["event"].as_str().unwrap_or("?");
            println!("delivery {id} is pending again ({event})");
        }),
    };
    drop(conn);
    db.close().await;
    outcome.map_err(|e| anyhow::anyhow!("{}", e.message))
}
