//! What every request and every delivery shares: the database, the plugins,
//! the services, the routes, the limits. Built once by startup.

use std::sync::Arc;

use hooks_core::PluginManager;
use hookspecs::host::{PluginConfigs, UnitOfWork};
use hookspecs::{AppHooks, HookContext, Services};

use crate::db::{self, Db};
use crate::http;

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
    /// Every route, core and plugin, and its matcher: built at startup,
    /// swapped by a reload that replaces a component's routes.
    pub router: http::router::Live,
    /// Body limit, timeouts, connection cap.
    pub limits: http::Limits,
    /// Requests being answered: what a graceful shutdown waits for.
    pub in_flight: http::InFlight,
    /// How operations that lost a race are run again, and how often they were.
    pub retry: db::Retry,
    /// See [`db::RetryStats`] (shared with the admin report).
    pub retries: Arc<db::RetryStats>,
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
}
