//! The host application: a small collaboration backend (users, spaces,
//! memberships) whose every change fires hooks, over HTTP.
//!
//! `main.rs` is `app::main_with(vec![])`; a build that links plugins in
//! statically passes them to [`main_with`].
//!
//! The folders follow the roles: `http/` (transport, router and the request
//! pipeline), `api.rs` (the core routes), `services.rs` and `db.rs` (the
//! operations and their storage), `outbox/` (after-commit deliveries),
//! `plugins/` (finding, loading and starting plugins), `cli/` (the
//! commands), `state.rs` (what requests share), `startup.rs` (wiring it all
//! together).

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod outbox;
pub mod plugins;
pub mod policy;
pub mod services;
mod startup;
pub mod state;

pub use cli::main_with;
