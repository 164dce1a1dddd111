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
pub mod policy;
pub mod services;
mod startup;

use std::sync::Arc;

use hooks_core::PluginManager;

use crate::db::Db;
use hookspecs::host::UnitOfWork;
use hookspecs::{AppHooks, HookContext, PluginConfigs, Services};

pub use cli::main_with;

/// What every request shares.
pub struct State {
    /// The database.
    pub db: Db,
    /// The plugins.
    pub hooks: PluginManager<dyn AppHooks>,
    /// The operations.
    pub services: Arc<dyn Services>,
    /// Plugin configuration tables.
    pub configs: Arc<PluginConfigs>,
    /// Every route, core and plugin (frozen at startup), and its matcher.
    pub router: http::router::Router,
    /// What became of each plugin at startup.
    pub loaded: Vec<plugins::Entry>,
    /// Body limit, timeouts, connection cap.
    pub limits: http::Limits,
    /// Requests being answered: what a graceful shutdown waits for.
    pub in_flight: http::InFlight,
    /// How operations that lost a race are run again, and how often they were.
    pub retry: db::Retry,
    /// See [`db::RetryStats`].
    pub retries: db::RetryStats,
}

impl State {
    /// A hook context for a unit of work, acting for `actor` with
    /// `actor`'s rights.
    pub fn context(&self, uow: Arc<UnitOfWork>, actor: Option<hookspecs::Identity>) -> HookContext {
        hookspecs::host::context(uow, actor, self.services.clone(), self.configs.clone())
    }

    /// A hook context with the application's own authority, for work no
    /// request asked for (recognising a credential, delivering an event).
    pub fn app_context(&self, uow: Arc<UnitOfWork>) -> HookContext {
        hookspecs::host::app_authority(&self.context(uow, None))
    }

    /// The plugin report (admin endpoint), with how often operations were
    /// run again after losing a race.
    pub fn plugin_report(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let mut report = plugins::report(&self.hooks, &self.loaded, self.router.routes());
        report["operations"] = serde_json::json!({
            "retried": self.retries.retried.load(Relaxed),
            "gave_up": self.retries.gave_up.load(Relaxed),
        });
        report
    }
}
