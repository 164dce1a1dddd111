//! The application's hook specifications and the types they carry: the one
//! crate a plugin depends on (the plugin SDK).
//!
#![doc = include_str!("../docs/plugin.md")]
//!
//! Where to look next:
//!
//! - [`AppHooks`]: every hook, and a plugin's life from discovery to shutdown;
//! - [`HookContext`] and [`Services`]: what an entity hook acts through;
//! - [`Startup`], [`Routes`], [`Request`], [`Reply`]: a plugin's routes;
//! - [`export_plugin!`]: configuration, requirements, migrations;
//! - [`prelude`]: what `use hookspecs::prelude::*` brings;
//! - [`host`] and [`loader`]: the application's side, which no plugin needs.

#![warn(missing_docs)]

// The guest bindings name this crate by its path, as a plugin crate does.
#[cfg(target_family = "wasm")]
extern crate self as hookspecs;

mod authz;
mod changes;
pub mod client;
mod context;
mod error;
mod export;
#[cfg(target_family = "wasm")]
#[doc(hidden)]
pub mod guest;
mod hooks;
#[cfg(not(target_family = "wasm"))]
pub mod host;
// Some of its host side (a request's parts as JSON) is reached through
// `host`, which a component has not.
#[cfg_attr(target_family = "wasm", allow(dead_code))]
mod http;
#[cfg(not(target_family = "wasm"))]
pub mod loader;
mod model;
mod page;
pub mod services;
pub mod sql;
#[cfg(not(target_family = "wasm"))]
mod uow;
mod util;

pub use authz::{AccessCheck, Action, Decision, Resource};
pub use changes::{ChangeKind, Entity};
pub use context::{HookContext, Services};
pub use error::ApiError;
pub use export::{IntoExport, Migration, PluginExport, configured};
pub use hooks::{AppHooks, Change, Delivery};
pub use http::{Method, Reply, Request, RouteError, Routes, Startup, from_json};
pub use model::{
    Access, Identity, Membership, NewSpace, NewUser, Role, Space, SpacePatch, User, UserPatch,
};
pub use page::Page;
#[cfg(not(target_family = "wasm"))]
pub use uow::DbGuard;
pub use util::{new_secret, now, push_hex, sha256_hex, time_of_unix_ms};

pub use hooks_core;
pub use {async_trait, futures, serde, serde_json, tracing};
/// The outgoing HTTP client (hyper-util's, over hyper; HTTPS through
/// hyper-rustls and rustls, see [`client`]) and HMAC, shared through the
/// SDK so that plugins talking to the world need no HTTP, TLS or crypto
/// crate of their own.
#[cfg(not(target_family = "wasm"))]
pub use {bytes, http_body_util, hyper, hyper_rustls, hyper_util, rustls};
/// HMAC and SHA-256, RustCrypto's.
pub use {hmac, sha2};
/// The native runtime's database and async crates, shared with the app.
#[cfg(not(target_family = "wasm"))]
pub use {sqlx, tokio};

/// What a plugin uses, and nothing else: the SDK's types, `#[hookimpl]`
/// and [`HookResult`](hooks_core::HookResult), building a hook's error,
/// `json!`, and the crates a hook body names (`serde`, `serde_json`,
/// `sqlx` with its `Row` trait, `tokio`, `tracing`).
///
/// The engine's manager and call machinery are not in it: the application
/// holds the plugin manager and calls the hooks. A crate that needs them
/// names them through [`hooks_core`].
///
/// ```compile_fail,E0433
/// use hookspecs::prelude::*;
/// // The host's, not a plugin's:
/// let pm = PluginManager::<dyn AppHooks>::new();
/// ```
pub mod prelude {
    pub use crate::{
        Access, AccessCheck, Action, ApiError, AppHooks, Change, Decision, Delivery, Entity,
        HookContext, Identity, Membership, Page, Reply, Request, Resource, Role, Services, Space,
        Startup, User,
    };
    /// A hook's error is an `anyhow::Error`: `anyhow!`, `bail!`, `ensure!`
    /// and `.context(...)` build one.
    pub use hooks_core::anyhow::{self, Context as _, anyhow, bail, ensure};
    pub use hooks_core::{HookResult, hookimpl};
    // `#[hookimpl]`'s expansion names `hookery::...`: this makes that
    // path resolve in a plugin, which reaches the engine through the SDK.
    #[doc(hidden)]
    pub use hooks_core::prelude::hookery;
    pub use serde_json::json;
    /// `row.get("column")` on what a plugin's own `sqlx` query returns
    /// (native plugins).
    #[cfg(not(target_family = "wasm"))]
    pub use sqlx::Row;
    pub use {serde, serde_json, tracing};
    #[cfg(not(target_family = "wasm"))]
    pub use {sqlx, tokio};
}
