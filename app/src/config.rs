//! Configuration: a TOML file (`APP_CONFIG`, default `app.toml` if present)
//! with environment overrides (`APP_LISTEN`, `DATABASE_URL`,
//! `APP_ADMIN_TOKEN`, `APP_DATA_DIR`, `APP_PLUGINS_DIR`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::outbox::LONGEST;

/// Everything the app reads at startup.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the embedded database and the generated admin token live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// The admin bearer token; generated into `data_dir/admin-token` if unset.
    pub admin_token: Option<String>,
    /// The `[http]` table: body limit, timeouts, connection cap.
    pub http: crate::http::Limits,
    /// The `[database]` table: how operations that lost a race are re-run.
    pub database: crate::db::Retry,
    /// The `[plugins]` table.
    pub plugins: PluginsConfig,
    /// The `[deliveries]` table: after-commit retries and retention.
    pub deliveries: crate::outbox::DeliveriesConfig,
}

/// `[plugins]`: where plugins are, which to skip or insist on, and each
/// plugin's own table (`[plugins.<name>]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PluginsConfig {
    /// The folder scanned for `app_plugin_*` crates and libraries; unset:
    /// see [`PluginsConfig::folder`].
    pub dir: Option<PathBuf>,
    /// Plugins never opened.
    pub disabled: Vec<String>,
    /// Plugins without which the app refuses to start.
    pub required: Vec<String>,
    /// Every other key: a plugin's own table.
    #[serde(flatten)]
    pub tables: HashMap<String, toml::Value>,
    /// The file these tables were read from, to name in errors.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl PluginsConfig {
    /// The plugin folder, and whether it was configured (`[plugins] dir`,
    /// `APP_PLUGINS_DIR`). Unset: `plugins/` beside the executable if there
    /// is one (a package made by `app package`, wherever it is started
    /// from), else `plugins/` in the working directory (the workspace's).
    pub fn folder(&self) -> (PathBuf, bool) {
        if let Some(dir) = &self.dir {
            return (dir.clone(), true);
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("plugins")))
            .filter(|dir| dir.is_dir());
        (beside.unwrap_or_else(|| PathBuf::from("plugins")), false)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            admin_token: None,
            http: crate::http::Limits::default(),
            database: crate::db::Retry::default(),
            plugins: PluginsConfig::default(),
            deliveries: Default::default(),
        }
    }
}

impl Config {
    /// Reads the file named by `APP_CONFIG` (or `app.toml` if it exists),
    /// then applies the environment overrides.
    pub fn load() -> anyhow::Result<Self> {
        let path = std::env::var_os("APP_CONFIG").map(PathBuf::from);
        let mut config = match &path {
            Some(path) => Self::from_file(path)?,
            None if Path::new("app.toml").exists() => Self::from_file(Path::new("app.toml"))?,
            None => Config::default(),
        };
        if let Ok(listen) = std::env::var("APP_LISTEN") {
            config.listen = listen.parse().with_context(|| {
                format!("APP_LISTEN={listen:?} is not an address like 127.0.0.1:8080")
            })?;
        }
        if let Ok(dir) = std::env::var("APP_DATA_DIR") {
            config.data_dir = dir.into();
        }
        if let Ok(url) = std::env::var("DATABASE_URL") {
            config.database_url = Some(url);
        }
        if let Ok(token) = std::env::var("APP_ADMIN_TOKEN") {
            config.admin_token = Some(token);
        }
        if let Ok(dir) = std::env::var("APP_PLUGINS_DIR") {
            config.plugins.dir = Some(dir.into());
        }
        config.check()?;
        Ok(config)
    }

    /// Refuses what the types let through but nothing can honour: a
    /// connection cap of 0 (every request would be refused), and times
    /// waited for beyond [`LONGEST`] (`now` plus such a time is past what
    /// the clocks and the calendar can say).
    fn check(&self) -> anyhow::Result<()> {
        if self.http.max_connections == 0 {
            anyhow::bail!(
                "[http] max_connections = 0 would refuse every connection: it must be at least 1"
            );
        }
        let (http, deliveries) = (&self.http, &self.deliveries);
        let ms = |key: &str, value: u64| (key.to_owned(), Duration::from_millis(value));
        let mut times = vec![
            ("[http] header_timeout_ms".to_owned(), http.header_timeout),
            ("[http] body_timeout_ms".to_owned(), http.body_timeout),
            ("[http] idle_timeout_ms".to_owned(), http.idle_timeout),
            ("[http] shutdown_grace_ms".to_owned(), http.shutdown_grace),
            ms("[database] backoff_ms", self.database.backoff_ms),
            ms("[deliveries] timeout_ms", deliveries.timeout_ms),
            ms("[deliveries] lease_ms", deliveries.lease_ms),
            ms("[deliveries] poll_ms", deliveries.poll_ms),
        ];
        // The deliveries' backoffs and retention are caps, held to
        // `LONGEST` where they are read: a value past it means "no cap".
        let mut plugins: Vec<_> = deliveries.plugins.iter().collect();
        plugins.sort_by_key(|(name, _)| *name);
        for (name, own) in plugins {
            let key = format!("[deliveries.{name}] timeout_ms");
            times.extend(own.timeout_ms.map(|v| ms(&key, v)));
        }
        let too_long: Vec<String> = times
            .into_iter()
            .filter(|(_, time)| *time > LONGEST)
            .map(|(key, _)| key)
            .collect();
        if !too_long.is_empty() {
            anyhow::bail!(
                "{} longer than ten years, the longest time a setting may give \
                 ({} ms, {} s): set a shorter time",
                too_long.join(", ") + if too_long.len() == 1 { " is" } else { " are" },
                LONGEST.as_millis(),
                LONGEST.as_secs()
            );
        }
        Ok(())
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))?;
        config.plugins.file = Some(path.to_owned());
        Ok(config)
    }

    /// The database URL: the configured one, or SQLite in the data
    /// directory. A SQLite file is created if missing, as the default one
    /// is, unless the URL says otherwise (`mode=`).
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if url.starts_with("sqlite:") => {
                let query = url.split_once('?').map(|(_, query)| query);
                match query {
                    Some(q) if q.split('&').any(|p| p.starts_with("mode=")) => url.clone(),
                    Some(_) => format!("{url}&mode=rwc"),
                    None => format!("{url}?mode=rwc"),
                }
            }
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("app.db").display()
            ),
        }
    }

    /// Plugin tables as JSON, for hook contexts.
    pub fn plugin_configs(&self) -> hookspecs::host::PluginConfigs {
        hookspecs::host::PluginConfigs(
            self.plugins
                .tables
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), serde_json::to_value(value).ok()?)))
                .collect(),
        )
    }
}
