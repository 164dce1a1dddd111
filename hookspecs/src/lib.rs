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
//!     /// Startup, once: the only moment a plugin can add routes.
//!     async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
//!         // served at GET /plugins/greeter/hello
//!         startup.routes().get("/hello", |req: Request| async move {
//!             let who = req.require_identity()?;           // 401 without a credential
//!             Ok(json!({"hello": who.name}))
//!         })?;
//!         Ok(())
//!     }
//!
//!     #[hookimpl(priority = 10)]
//!     async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
//!         tracing::info!(user = %user.username, "welcome");
//!         // Same transaction as the user's creation:
//!         let open = ctx.services().list_spaces(ctx, Page::all()).await?;
//!         for space in open.iter().filter(|s| s.access == Access::Open) {
//!             ctx.services().put_member(ctx, space.id, user.id, space.default_role).await?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! hookspecs::export_plugin!(Greeter::default);
//! ```

#![warn(missing_docs)]

mod after_commit;
mod authz;
pub mod client;
mod context;
mod error;
mod export;
mod hooks;
#[doc(hidden)]
pub mod host;
mod http;
mod model;
mod util;

pub use after_commit::{Change, Delivery};
pub use authz::{AccessCheck, Action, Decision, Resource};
pub use context::{DbGuard, HookContext, Services};
pub use error::ApiError;
pub use export::{IntoExport, Migration, PluginExport};
pub use hooks::AppHooks;
pub use http::{Method, Page, Reply, Request, RouteError, Routes, Startup, from_json};
pub use model::{
    Access, Identity, Membership, NewSpace, NewUser, Role, Space, SpacePatch, User, UserPatch,
};
pub use util::{new_secret, now, sha256_hex, time_of_unix_ms};

// What the host and the generated code use; no part of a plugin's surface.
#[doc(hidden)]
pub use context::PluginConfigs;
#[doc(hidden)]
pub use export::{
    FINGERPRINT, Fingerprint, LOADER_VERSION, build_marker, configured, library_fingerprint,
    symbols,
};
#[doc(hidden)]
pub use hooks::AppHooksRelay;
#[doc(hidden)]
pub use http::{Guard, Handler, RouteDef};

pub use hooks_core;
pub use {async_trait, futures, serde, serde_json, sqlx, tokio, tracing};
/// The outgoing HTTP client (hyper-util's, over hyper; HTTPS through
/// hyper-rustls and rustls, see [`client`]) and HMAC, shared through the
/// SDK so that plugins talking to the world need no HTTP, TLS or crypto
/// crate of their own.
pub use {bytes, hmac, http_body_util, hyper, hyper_rustls, hyper_util, rustls, sha2};

/// Everything a plugin usually needs in scope.
pub mod prelude {
    pub use crate::{
        Access, AccessCheck, Action, ApiError, AppHooks, Change, Decision, Delivery, HookContext,
        Identity, Membership, Page, Reply, Request, Resource, Role, Services, Space, Startup, User,
    };
    /// A hook's error is an `anyhow::Error`: `anyhow!`, `bail!`, `ensure!`
    /// and `.context(...)` build one.
    pub use hooks_core::anyhow::{self, Context as _, anyhow, bail, ensure};
    pub use hooks_core::prelude::*;
    pub use serde_json::json;
    /// `row.get("column")` on what a plugin's own query returns.
    pub use sqlx::Row;
    pub use {serde, serde_json, sqlx, tokio, tracing};
}
