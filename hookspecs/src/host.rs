//! For the host application only: what makes requests, contexts and
//! startup handles, and ends units of work. Plugins have no use for any of
//! it (a plugin that committed or rolled back its operation's transaction
//! in the middle of a hook would break "nothing half-written"), so none of
//! it is in the crate's documented surface or its prelude.
//!
//! ```compile_fail
//! # async fn hook(ctx: &hookspecs::HookContext) {
//! // A plugin cannot end the operation's transaction:
//! ctx.unit_of_work().commit().await;
//! # }
//! ```
//!
//! ```compile_fail
//! # async fn hook(ctx: &hookspecs::HookContext) {
//! // Not through this module either: the host ends the units of work it
//! // began, and nothing hands one out of a context.
//! hookspecs::host::unit_of_work(ctx).commit().await;
//! # }
//! ```
//!
//! ```compile_fail
//! # use hookspecs::prelude::*;
//! // Nor forge a context (nor, without one, a request):
//! # fn forge(uow: std::sync::Arc<()>, services: std::sync::Arc<dyn Services>) {
//! let ctx = HookContext::new(uow, None, services, Default::default());
//! # }
//! ```

use std::sync::Arc;

use crate::context::{HookContext, PluginConfigs, Services};
use crate::model::Identity;

pub use crate::context::UnitOfWork;
pub use crate::http::{RequestParts, RouteTable};

/// A context for one operation.
pub fn context(
    uow: Arc<UnitOfWork>,
    actor: Option<Identity>,
    services: Arc<dyn Services>,
    configs: Arc<PluginConfigs>,
) -> HookContext {
    HookContext::new(uow, actor, services, configs)
}

/// `ctx` with the application's authority: what a hook gets.
pub fn app_authority(ctx: &HookContext) -> HookContext {
    ctx.with_app_authority()
}

/// The startup handle of `plugin`, adding routes to `table`.
pub fn startup(plugin: &str, table: RouteTable, configs: Arc<PluginConfigs>) -> crate::Startup {
    crate::Startup {
        plugin: plugin.to_owned(),
        table,
        configs,
    }
}
