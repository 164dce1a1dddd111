//! A component as a plugin of the engine: [`Sandboxed`] implements
//! [`AppHooks`] by calling into the component, and is registered like a
//! native plugin, with the hooks and call-order options its manifest
//! declares, and the migrations it exports, each checked ([`migrations`]).

use std::sync::Arc;

use hooks_core::{ImplDecl, Plugin, Tier};
use hookspecs::host::Guard;
use hookspecs::prelude::*;
use hookspecs::{Method, Migration};
use serde::de::DeserializeOwned;

use super::runtime::{Fault, Loaded, Refused};
use super::wit::{self, Hook, HookError, Manifest, RouteGuard, RouteMethod, RoutesIndices};

/// A sandboxed plugin: each hook call, and each request to one of its
/// routes, runs in an instance of its component's pool.
pub struct Sandboxed {
    component: Arc<Loaded>,
    /// Its hooks' WIT cases by name: a handful, searched at each call
    /// (cheaper than hashing the name).
    hooks: Vec<(&'static str, Hook)>,
    /// Its `routes` export (interface 1.2.0), if it has one.
    routes: Option<Arc<RoutesIndices>>,
}

impl Sandboxed {
    /// The plugin for the engine, with the implementations its manifest
    /// declares.
    ///
    /// # Errors
    ///
    /// It declares a hook that components cannot implement in this version.
    pub fn plugin(component: Loaded, manifest: &Manifest) -> Result<Plugin<dyn AppHooks>, String> {
        // `authenticate`, `authorize`, and every entity hook, through the
        // catch-alls; `on_plugins_loaded` (its routes) through the `routes`
        // export.
        let routes = component.routes().map(Arc::new);
        let startup = routes.as_ref().map(|_| "on_plugins_loaded");
        let supported: Vec<&str> = ["authenticate", "authorize"]
            .into_iter()
            .chain(startup)
            .chain(Change::KINDS.iter().flat_map(|k| [k.on_hook, k.after_hook]))
            .collect();
        let mut hooks = Vec::new();
        let mut decls = Vec::new();
        for decl in &manifest.hooks {
            let name = wit::hook_name(decl.hook);
            if !supported.contains(&name) {
                return Err(format!(
                    "it implements `{name}`, which a component cannot implement yet (it can: {})",
                    supported.join(", ")
                ));
            }
            // A hook declared twice names the same case: kept once.
            if !hooks.iter().any(|(known, _)| *known == name) {
                hooks.push((name, decl.hook));
            }
            decls.push(ImplDecl {
                priority: decl.priority,
                tier: match decl.tier {
                    wit::Tier::Tryfirst => Tier::TryFirst,
                    wit::Tier::Normal => Tier::Normal,
                    wit::Tier::Trylast => Tier::TryLast,
                },
                before: leak(&decl.before),
                after: leak(&decl.after),
                ..ImplDecl::new(name)
            });
        }
        let object: Arc<dyn AppHooks> = Arc::new(Sandboxed {
            component: Arc::new(component),
            hooks,
            routes,
        });
        Ok(Plugin::from_parts(object, decls))
    }

    /// Calls `hook` in the component with `args`: its answer, or its
    /// failure as the API reports it (the component's own error as it
    /// wrote it; 504 for an overrun; 500 for a trap).
    async fn call<T: DeserializeOwned>(
        &self,
        hook: &'static str,
        args: &str,
        ctx: &HookContext,
    ) -> HookResult<T> {
        let wit = self
            .hooks
            .iter()
            .find_map(|&(name, wit)| (name == hook).then_some(wit))
            .ok_or_else(|| anyhow::anyhow!("`{hook}` is not one of the component's hooks"))?;
        // The version this operation called first, if a reload swapped
        // this one in since: one operation, one version.
        let component = hookspecs::host::pin(ctx, self.component.plugin(), &self.component);
        let outcome = component.call(wit, args, ctx).await;
        Ok(answered(outcome)?)
    }

    /// The in-transaction entity hook `hook` with `entities` (the tuple of
    /// its entity arguments, as [`Change::arguments`] writes them), written
    /// from the borrowed entities: the trait's default bodies would clone
    /// them into a `Change` first (BENCHMARKS.md, "Tenth session").
    async fn entities(
        &self,
        hook: &'static str,
        entities: &(impl serde::Serialize + Sync),
        ctx: &HookContext,
    ) -> HookResult<()> {
        // One or two entities take a few hundred bytes: written without
        // growing serde_json's first buffer (128 bytes), once or twice.
        let mut args = Vec::with_capacity(ARGS_CAPACITY);
        serde_json::to_writer(&mut args, entities)?;
        self.call(hook, &String::from_utf8(args)?, ctx).await
    }

    /// Adds the routes the component's `on_plugins_loaded` adds (run in
    /// an instance of its own), each answered by the `handle` of this
    /// version in an instance of its pool. A reload builds a new table with
    /// the new version's routes, which call the new version: no lookup of
    /// the live one is needed.
    async fn add_routes(&self, routes: &Arc<RoutesIndices>, startup: &Startup) -> HookResult<()> {
        let decls = match self.component.start(routes).await {
            Ok(Ok(decls)) => decls,
            Ok(Err(error)) => return Err(refusal(error).into()),
            Err(fault) => return Err(failure(&fault).into()),
        };
        for (index, decl) in (0_u32..).zip(decls) {
            let guard = match decl.guard {
                RouteGuard::Public => Guard::Public,
                RouteGuard::SignedIn => Guard::SignedIn,
                RouteGuard::Admin => Guard::Admin,
            };
            let adder = match guard {
                Guard::Public => startup.routes(),
                Guard::SignedIn => startup.routes().signed_in(),
                Guard::Admin => startup.routes().admin(),
            };
            let method = match decl.method {
                RouteMethod::Get => Method::Get,
                RouteMethod::Post => Method::Post,
                RouteMethod::Put => Method::Put,
                RouteMethod::Patch => Method::Patch,
                RouteMethod::Delete => Method::Delete,
            };
            let (component, routes) = (self.component.clone(), routes.clone());
            adder.add(method, &decl.path, move |req: Request| {
                let (component, routes) = (component.clone(), routes.clone());
                async move {
                    // The hooks it fires run this version too (unless a
                    // hook of this request called another first).
                    hookspecs::host::pin(req.ctx(), component.plugin(), &component);
                    let request = hookspecs::host::request_parts(&req).to_json();
                    let outcome = component.handle(&routes, index, &request, req.ctx()).await;
                    let reply: Reply = answered(outcome)?;
                    if !(200..=299).contains(&reply.status) {
                        return Err(ApiError::new(
                            500,
                            "hook_failed",
                            format!(
                                "its handler answered status {}, which is not a success \
                                 (200..=299): an error is answered as an error",
                                reply.status
                            ),
                        ));
                    }
                    Ok(reply)
                }
            })?;
        }
        Ok(())
    }
}

/// The room made for an entity hook's arguments (see
/// `Sandboxed::entities`).
const ARGS_CAPACITY: usize = 512;

/// The most text one migration's name or SQL may have: plenty for DDL
/// written by hand, and a bound on the parser's work.
const MAX_MIGRATION: usize = 256 * 1024;

/// The component's migrations (none if it does not export them), each
/// checked before any runs ([`hookspecs::sql::check_migration`]): what the
/// app then runs as a native plugin's, at load and at each reload.
///
/// # Errors
///
/// The first migration refused, with why (its version and name, the
/// database's text, the table or construct); two of one version; a fault
/// in the component.
pub fn migrations(component: &Loaded, plugin: &str) -> Result<&'static [Migration], String> {
    // Polled as `describe` is (see `Runtime::load`).
    let declared = futures::executor::block_on(component.migrations())
        .map_err(|fault| format!("its migrations failed: {}", fault.message()))?
        .unwrap_or_default();
    check_migrations(&declared, plugin)?;
    // For the process's life, as a native plugin's are static: a reload
    // leaks its version's text once.
    let text = |t: String| -> &'static str { Box::leak(t.into_boxed_str()) };
    let migrations: Vec<Migration> = declared
        .into_iter()
        .map(|m| Migration {
            version: m.version,
            name: text(m.name),
            sqlite: text(m.sqlite),
            postgres: text(m.postgres),
        })
        .collect();
    Ok(Box::leak(migrations.into_boxed_slice()))
}

/// Refuses the first of `declared` too large, of a version seen before, or
/// refused by [`hookspecs::sql::check_migration`], naming it.
fn check_migrations(declared: &[wit::Migration], plugin: &str) -> Result<(), String> {
    let mut versions = Vec::new();
    for m in declared {
        let refused =
            |why: &str| format!("its migration {} ({}) is refused: {why}", m.version, m.name);
        if [&m.name, &m.sqlite, &m.postgres]
            .iter()
            .any(|t| t.len() > MAX_MIGRATION)
        {
            return Err(refused(&format!(
                "its name or SQL exceeds {} KiB",
                MAX_MIGRATION >> 10
            )));
        }
        if versions.contains(&m.version) {
            return Err(refused("another migration has the same version"));
        }
        versions.push(m.version);
        hookspecs::sql::check_migration(plugin, &m.sqlite, &m.postgres)
            .map_err(|why| refused(&why))?;
    }
    Ok(())
}

/// A call's outcome as the API reports it: its answer read as `T`, or its
/// failure (the component's own error as it wrote it; 504 for an overrun;
/// 500 for a trap).
fn answered<T: DeserializeOwned>(
    outcome: Result<Result<String, Refused>, Fault>,
) -> Result<T, ApiError> {
    let answer = match outcome {
        Ok(Ok(answer)) => answer,
        // Its failure after a service lost a race: the operation runs
        // again, as for a native plugin.
        Ok(Err(Refused { error, raced: true })) => return Err(ApiError::race(error.message)),
        Ok(Err(Refused { error, .. })) => return Err(refusal(error)),
        Err(fault) => return Err(failure(&fault)),
    };
    serde_json::from_str(&answer).map_err(|e| {
        ApiError::new(
            500,
            "hook_failed",
            format!("it answered with an unexpected value: {e}"),
        )
    })
}

/// A fault as the API reports it: 504 for an overrun, 500 for a trap.
fn failure(fault: &Fault) -> ApiError {
    match fault {
        Fault::TimedOut(_) => ApiError::new(504, "hook_timeout", fault.message()),
        Fault::Trapped(_) => ApiError::new(500, "hook_failed", fault.message()),
    }
}

/// A component's own error as the API reports it: as it wrote it if its
/// status is an error's (400..=599). Any other would be a success with an
/// error's body, a 1xx, or a number no status has (which the HTTP layer
/// makes a 500 without scrubbing its body): a 500 `hook_failed`, whose
/// details go to the log only.
fn refusal(error: HookError) -> ApiError {
    if (400..=599).contains(&error.status) {
        ApiError::new(error.status, &error.code, error.message)
    } else {
        ApiError::new(
            500,
            "hook_failed",
            format!(
                "it failed with status {}, which is not an error status (400..=599): {}: {}",
                error.status, error.code, error.message
            ),
        )
    }
}

/// Names given once at load, for the process's life (as a library is never
/// unloaded).
fn leak(names: &[String]) -> &'static [&'static str] {
    let names: Vec<&'static str> = names
        .iter()
        .map(|n| &*Box::leak(n.clone().into_boxed_str()))
        .collect();
    Box::leak(names.into_boxed_slice())
}

/// The hooks a component can implement in this version: `on_plugins_loaded`
/// (its routes), `authenticate`, `authorize`, and each entity hook: the
/// in-transaction ones each by itself, the after-commit ones through the
/// catch-all (the SDK's table says which hook a delivery is for); each
/// passes its arguments (but the context) as JSON text, in the hook's
/// order, written from the values directly.
#[hookimpl]
impl AppHooks for Sandboxed {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        match &self.routes {
            Some(routes) => self.add_routes(routes, startup).await,
            None => Ok(()),
        }
    }

    async fn authenticate(&self, token: &str, ctx: &HookContext) -> HookResult<Option<Identity>> {
        self.call("authenticate", &serde_json::to_string(&(token,))?, ctx)
            .await
    }

    async fn authorize(
        &self,
        check: &AccessCheck,
        ctx: &HookContext,
    ) -> HookResult<Option<Decision>> {
        self.call("authorize", &serde_json::to_string(&(check,))?, ctx)
            .await
    }

    async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
        self.entities("on_user_created", &(user,), ctx).await
    }

    async fn on_user_modified(
        &self,
        before: &User,
        after: &User,
        ctx: &HookContext,
    ) -> HookResult<()> {
        self.entities("on_user_modified", &(before, after), ctx)
            .await
    }

    async fn on_user_deleted(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
        self.entities("on_user_deleted", &(user,), ctx).await
    }

    async fn on_space_created(&self, space: &Space, ctx: &HookContext) -> HookResult<()> {
        self.entities("on_space_created", &(space,), ctx).await
    }

    async fn on_space_modified(
        &self,
        before: &Space,
        after: &Space,
        ctx: &HookContext,
    ) -> HookResult<()> {
        self.entities("on_space_modified", &(before, after), ctx)
            .await
    }

    async fn on_space_deleted(&self, space: &Space, ctx: &HookContext) -> HookResult<()> {
        self.entities("on_space_deleted", &(space,), ctx).await
    }

    async fn on_membership_created(&self, m: &Membership, ctx: &HookContext) -> HookResult<()> {
        self.entities("on_membership_created", &(m,), ctx).await
    }

    async fn on_membership_modified(
        &self,
        before: &Membership,
        after: &Membership,
        ctx: &HookContext,
    ) -> HookResult<()> {
        self.entities("on_membership_modified", &(before, after), ctx)
            .await
    }

    async fn on_membership_deleted(&self, m: &Membership, ctx: &HookContext) -> HookResult<()> {
        self.entities("on_membership_deleted", &(m,), ctx).await
    }

    /// Any in-transaction entity hook not written out above (a kind added
    /// to the table later) still reaches the component, through the
    /// trait's default body.
    async fn on_change(&self, change: &Change, ctx: &HookContext) -> HookResult<()> {
        self.call(change.kind().on_hook, &change.arguments(), ctx)
            .await
    }

    async fn after_change(&self, delivery: &Delivery, ctx: &HookContext) -> HookResult<()> {
        let hook = delivery.change.kind().after_hook;
        self.call(hook, &delivery.arguments(), ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16) -> HookError {
        HookError {
            status,
            code: "mine".into(),
            message: "no".into(),
        }
    }

    fn migration(version: i64, sql: &str) -> wit::Migration {
        wit::Migration {
            version,
            name: format!("m{version}"),
            sqlite: sql.into(),
            postgres: sql.into(),
        }
    }

    #[test]
    fn a_components_migrations_are_refused_naming_the_first_wrong_one() {
        let table = |n: u32| format!("CREATE TABLE plugin_notes_t{n} (id INTEGER)");
        let good = [migration(1, &table(1)), migration(2, &table(2))];
        assert_eq!(check_migrations(&good, "notes"), Ok(()));
        assert_eq!(check_migrations(&[], "notes"), Ok(()));
        let twice = [migration(1, &table(1)), migration(1, &table(2))];
        assert_eq!(
            check_migrations(&twice, "notes").unwrap_err(),
            "its migration 1 (m1) is refused: another migration has the same version"
        );
        let foreign = [migration(1, &table(1)), migration(2, "DROP TABLE users")];
        assert_eq!(
            check_migrations(&foreign, "notes").unwrap_err(),
            "its migration 2 (m2) is refused: its SQLite text: the statement drops the table \
             `users`, which is not one of the plugin's own (plugin_notes_*)"
        );
        let huge = [migration(1, &" ".repeat(MAX_MIGRATION + 1))];
        assert_eq!(
            check_migrations(&huge, "notes").unwrap_err(),
            "its migration 1 (m1) is refused: its name or SQL exceeds 256 KiB"
        );
    }

    #[test]
    fn a_component_error_keeps_only_an_error_status() {
        for status in [400, 401, 422, 504, 599] {
            let kept = refusal(error(status));
            assert_eq!((kept.status, kept.code.as_str()), (status, "mine"));
        }
        for status in [0, 1, 101, 200, 201, 399, 600, 1000] {
            let failed = refusal(error(status));
            assert_eq!((failed.status, failed.code.as_str()), (500, "hook_failed"));
            assert!(
                failed.message.contains(&format!("status {status},")),
                "{}",
                failed.message
            );
        }
    }
}
