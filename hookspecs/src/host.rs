//! The host surface: what the application uses to run plugins and no
//! plugin needs. It makes contexts and startup handles, begins and ends
//! units of work ([`UnitOfWork`]), holds the route table ([`RouteTable`],
//! [`RouteDef`]) and turns HTTP requests into [`Request`](crate::Request)s
//! ([`RequestParts`]). None of it is in the [`prelude`](crate::prelude).
//! How a plugin library is found and checked is the other host-only
//! module, [`loader`](crate::loader).
//!
//! # What types guarantee
//!
//! A plugin gets a [`HookContext`] (or a [`Request`](crate::Request)
//! holding one) and cannot reach the unit of work inside it: no method,
//! field or function hands it out, so a plugin cannot commit or roll back
//! the operation it runs in (which would break "nothing half-written").
//! Each of these fails to compile in a plugin crate:
//!
//! ```compile_fail,E0599
//! # async fn hook(ctx: &hookspecs::HookContext) {
//! // A plugin cannot end the operation's transaction:
//! ctx.unit_of_work().commit().await;
//! # }
//! ```
//!
//! ```compile_fail,E0425
//! # async fn hook(ctx: &hookspecs::HookContext) {
//! // Not through this module either: the host ends the units of work it
//! // began, and nothing hands one out of a context.
//! hookspecs::host::unit_of_work(ctx).commit().await;
//! # }
//! ```
//!
//! ```compile_fail,E0616
//! # async fn hook(ctx: &hookspecs::HookContext) {
//! // Nor through the context's fields:
//! ctx.uow.commit().await;
//! # }
//! ```
//!
//! ```compile_fail,E0616
//! # async fn handler(req: hookspecs::Request) {
//! // Nor through a request's:
//! req.ctx.uow.rollback().await;
//! # }
//! ```
//!
//! ```compile_fail,E0624
//! # use hookspecs::prelude::*;
//! // Nor forge a context (nor, without one, a request):
//! # fn forge(uow: std::sync::Arc<()>, services: std::sync::Arc<dyn Services>) {
//! let ctx = HookContext::new(uow, None, services, Default::default());
//! # }
//! ```
//!
//! ```compile_fail,E0451
//! # use hookspecs::prelude::*;
//! # fn forge(ctx: &HookContext) {
//! // ...or build one field by field, copying another's unit of work:
//! let forged = HookContext { checked: false, ..ctx.clone() };
//! # }
//! ```
//!
//! ```compile_fail,E0451
//! # use hookspecs::prelude::*;
//! // Nor a startup handle, to add routes in another plugin's name:
//! let other = Startup {
//!     plugin: "other".into(),
//!     table: Default::default(),
//!     configs: Default::default(),
//! };
//! ```
//!
//! ```compile_fail,E0432
//! // What only the host uses is not at the crate's root (it lives here and
//! // in `loader`), nor in the prelude:
//! use hookspecs::{PluginConfigs, RouteDef, RouteTable, UnitOfWork};
//! ```
//!
//! # What types cannot guarantee
//!
//! The application is a crate of its own, so what it calls here is
//! public, and a plugin crate can name it too. Said plainly:
//!
//! - [`app_authority`] takes any context: a plugin route handler could
//!   pass it `req.ctx()` and act with the application's authority instead
//!   of the caller's rights (hooks get that authority anyway; route
//!   handlers do not). Nothing but review stops it.
//! - A plugin can make a [`UnitOfWork`] and a context of its own, with
//!   [`context`]; but only on a pool it opened itself, and with services it
//!   implemented itself: the operation's transaction and the app's
//!   services stay out of reach.
//! - [`HookContext::db`] is the transaction's connection: a plugin can
//!   send `COMMIT` or `ROLLBACK` as SQL text through it. The SQL a plugin
//!   runs is not checked.
//! - A plugin is Rust code loaded into the app's process: it can do
//!   whatever the process can. The boundary keeps honest plugins from
//!   mistakes; it is no sandbox against a hostile one.

use std::sync::Arc;

use crate::context::{HookContext, Services};
use crate::model::Identity;

pub use crate::context::PluginConfigs;
pub use crate::export::expand_catch_alls;
pub use crate::hooks::{AppHooksRelay, deliver, fire};
pub use crate::http::{Guard, Handler, RequestParts, RouteDef, RouteTable};
pub use crate::uow::{UnitOfWork, live};

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

/// What a route handler in a component gets of `request`: all but its
/// context, which stays on the host (see [`RequestParts::to_json`]).
pub fn request_parts(request: &crate::Request) -> RequestParts {
    request.parts()
}

/// Marks `ctx`'s operation failed with `error`: it rolls back whatever its
/// caller answers (see [`UnitOfWork::fail`]).
pub fn fail(ctx: &HookContext, error: &crate::ApiError) {
    ctx.uow().fail(error);
}

/// Remembers `setting` for `ctx`'s transaction, run only when needed (see
/// [`UnitOfWork::when_needed`]).
pub fn when_needed(ctx: &HookContext, setting: &'static str) {
    ctx.uow().when_needed(setting);
}

/// Runs `setting` in `ctx`'s transaction if it was remembered and has not
/// run yet (see [`UnitOfWork::needs`]).
///
/// # Errors
///
/// The database's.
pub async fn needs(ctx: &HookContext, setting: &'static str) -> Result<(), crate::ApiError> {
    ctx.uow().needs(setting).await
}

/// The value pinned under `key` in `ctx`'s unit of work (see
/// [`UnitOfWork::pin`]).
pub fn pin<T: std::any::Any + Send + Sync>(
    ctx: &HookContext,
    key: &'static str,
    value: &Arc<T>,
) -> Arc<T> {
    ctx.uow().pin(key, value)
}

/// The startup handle of `plugin`, adding routes to `table`.
pub fn startup(plugin: &str, table: RouteTable, configs: Arc<PluginConfigs>) -> crate::Startup {
    crate::Startup {
        plugin: plugin.to_owned(),
        table,
        configs,
    }
}
