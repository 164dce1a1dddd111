//! The host application: a small collaboration backend (users, spaces,
//! memberships) whose every change fires hooks, over HTTP.
//!
//! `main.rs` is `app::main_with(vec![])`; a build that links plugins in
//! statically passes them to [`main_with`].

//! The folders follow the roles: `http/` (transport and the request
//! pipeline), `api.rs` (the core routes), `services.rs` and `db.rs` (the
//! operations and their storage), `plugins/` (loading and starting plugins),
//! `cli/` (the commands), `startup.rs` (wiring it all together).

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod outbox;
pub mod plugins;
pub mod services;
mod startup;

use std::sync::Arc;

use hooks_core::PluginManager;

use crate::db::Db;
use hookspecs::{AppHooks, HookContext, PluginConfigs, RouteDef, Services, UnitOfWork};

pub use cli::main_with;

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
