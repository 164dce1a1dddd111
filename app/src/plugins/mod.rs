//! Plugins in the app, in the order of a start:
//!
//! 1. [`discovery`]: the plugin folder's crates and libraries;
//! 2. [`loader`]: each library checked and opened (the only `unsafe` code);
//!    a WebAssembly component is compiled and sandboxed by [`component`];
//! 3. `load`: the app's [`BuiltIn`] plugin, linked-in plugins, then the
//!    folder's, registered in `requirements` order;
//! 4. `startup`: each plugin's migrations, then `on_plugins_loaded`;
//! 5. [`report`]: what became of each, logged and served.

mod builtin;
pub mod component;
pub mod discovery;
mod load;
pub mod loader;
mod report;
mod requirements;
mod startup;

pub use builtin::{APP_PLUGIN, BuiltIn};
pub use load::load;
pub use report::{Entry, PluginReport, Status, log_report, report};
pub use startup::{migrate, start};
