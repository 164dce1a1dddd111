//! Plugins in the app, in the order of a start:
//!
//! 1. [`discovery`]: the plugin folder's crates and libraries;
//! 2. `build`: each component crate built for `wasm32-wasip2`;
//! 3. [`loader`]: each library checked and opened (the only `unsafe` code);
//!    a WebAssembly component is compiled and sandboxed by [`component`];
//! 4. `load`: the app's [`BuiltIn`] plugin, linked-in plugins, then the
//!    folder's, registered in `requirements` order;
//! 5. `startup`: each plugin's migrations, then `on_plugins_loaded`;
//! 6. [`report`](fn@report): what became of each, logged and served.
//!
//! While serving, `reload` swaps a component for its new version (on
//! demand, or when `watch` sees it change).

mod build;
mod builtin;
pub mod component;
pub mod discovery;
mod load;
pub mod loader;
mod reload;
mod report;
mod requirements;
mod startup;
mod watch;

pub use build::{
    INSTALL as INSTALL_TARGET, PROFILE as COMPONENT_PROFILE, build as build_component,
    profile_args as component_profile_args,
};
pub use builtin::{APP_PLUGIN, BuiltIn};
pub use load::load;
pub(crate) use load::refusal;
pub use reload::{ReloadError, Reloader};
pub use report::{Entries, Entry, Kind, PluginReport, Status, log_report, printable, report};
pub use startup::{migrate, start};
pub use watch::spawn as watch;

/// What a caught panic said: its message if it carried one (a `panic!`
/// with or without arguments), for the line that reports it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    (payload.downcast_ref::<String>().map(String::as_str))
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("no message")
}
