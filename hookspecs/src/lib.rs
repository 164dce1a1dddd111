//! The application's hook specifications and the types they carry: the one
//! crate a plugin depends on (the plugin SDK).
//!
//! A plugin implements [`AppHooks`] for the events it cares about:
//!
//! ```
//! use hookspecs::prelude::*;
//!
//! #[derive(Default)]
//! pub struct Greeter;
//!
//! #[hookimpl]
//! impl AppHooks for Greeter {
//!     async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
//!         // served at GET /plugins/<name>/hello
//!         startup.routes().get("/hello", |_req| async { Ok(json!({"hello": "world"})) })?;
//!         Ok(())
//!     }
//!
//!     #[hookimpl(priority = 10)]
//!     async fn on_user_created(&self, user: &User, _ctx: &HookContext) -> HookResult<()> {
//!         tracing::info!(user = %user.username, "welcome");
//!         Ok(())
//!     }
//! }
//! ```

#![warn(missing_docs)]

mod context;
mod error;
mod hooks;
mod http;
mod model;

pub use context::{DbGuard, HookContext, PluginConfigs, Services, UnitOfWork};
pub use error::ApiError;
pub use hooks::{AppHooks, AppHooksRelay};
pub use http::{
    Handler, Method, PluginRequest, Reply, RouteDef, RouteError, RouteTable, Routes, Startup,
    from_json,
};
pub use model::{
    Access, Identity, Membership, NewSpace, NewUser, Role, Space, SpacePatch, User, UserPatch,
};

pub use hooks_core;
pub use {async_trait, futures, serde, serde_json, sqlx, tokio, tracing};

/// Everything a plugin usually needs in scope.
pub mod prelude {
    pub use crate::{
        Access, ApiError, AppHooks, HookContext, Identity, Membership, PluginRequest, Reply, Role,
        Services, Space, Startup, User,
    };
    pub use hooks_core::prelude::*;
    pub use serde_json::json;
    pub use {serde, serde_json, sqlx, tokio, tracing};
}
