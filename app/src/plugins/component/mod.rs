//! Sandboxed plugins: WebAssembly components (`app_plugin_<name>.wasm` in
//! the plugin folder) run by wasmtime, each hook call (and each request to
//! one of its routes) in an instance of its own (warm, or fresh after a
//! fault) within the plugin's limits (`[plugins.<name>.sandbox]`).
//!
//! - [`wit`]: the interface (hookspecs/wit/plugin.wit), its version, and
//!   its hooks tied to [`hookspecs::AppHooks`];
//! - `runtime`: the engine, the epoch ticker, the cache of compiled
//!   components, one store per instance;
//! - `pool`: the warm instances of a plugin, and when one is reused;
//! - `cache`: the bound of the cache of compiled components;
//! - `limits`: time, memory, warm instances and granted hosts per plugin;
//! - `outbound`: HTTP from after-commit hooks to those hosts;
//! - `plugin`: the component as an engine plugin, and its routes (each
//!   calls the version that added it).

mod cache;
mod limits;
mod outbound;
mod plugin;
mod pool;
mod runtime;
pub mod wit;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use hookspecs::PluginExport;

/// The file extension of a component in the plugin folder.
pub const EXTENSION: &str = "wasm";

/// Loads the component in `path` as the plugin `name`, with its table of
/// `[plugins.<name>]` (limits under `sandbox`, the rest its configuration).
/// The runtime starts with the first component; compiled components are
/// cached in `cache`.
///
/// # Errors
///
/// Why the component is refused: not a component, truncated, another
/// interface or major version, imports the app does not provide, a hook it
/// cannot implement yet, a fault in `describe`, a migration refused.
pub fn load(
    path: &Path,
    name: &str,
    table: &serde_json::Value,
    cache: &Path,
) -> Result<PluginExport, String> {
    static RUNTIME: OnceLock<Result<Arc<runtime::Runtime>, String>> = OnceLock::new();
    let runtime = RUNTIME
        .get_or_init(|| {
            runtime::Runtime::new(Some(cache.to_path_buf()))
                .map_err(|e| format!("the component runtime cannot start: {e:#}"))
        })
        .clone()?;
    let (limits, config) = limits::split(table, name)?;
    let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let (loaded, manifest) = runtime.load(path, name, limits, &config)?;
    let requires = manifest.requires.clone();
    let migrations = plugin::migrations(&loaded, name)?;
    Ok(PluginExport {
        plugin: plugin::Sandboxed::plugin(loaded, &manifest)?,
        requires,
        migrations,
        idle: None,
    })
}
