//! A component's side of the boundary (wasm32-wasip2 only): the guest
//! bindings of the WIT package (hookspecs/wit), and what
//! [`export_plugin!`](crate::export_plugin) makes of a plugin there. The
//! component's `describe` answers the hooks the plugin's `#[hookimpl]`
//! declares (as its native export would register them); its `call` builds
//! the plugin, gives the hook a [`HookContext`] whose services, actor and
//! configuration are the host's (WIT imports, in the calling hook's unit
//! of work), and answers the hook's result as JSON.
//!
//! A component runs one call at a time and the host's imports block, so
//! the hook's future completes without waiting on anything: [`block_on`]
//! polls it to its end.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use hooks_core::{PluginManager, Tier};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::authz::AccessCheck;
use crate::context::{HookContext, PluginConfigs};
use crate::error::ApiError;
use crate::export::PluginExport;
use crate::hooks::{AppHooks, Change, Delivery, deliver, fire};
use crate::http::{Guard, Method, RequestParts, RouteDef, RouteError, RouteTable};
use crate::model::Identity;
use crate::services::{Remote, Transport};
use crate::util::parse;

/// The bindings wit-bindgen generates from the WIT package.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "sdk-plugin",
        pub_export_macro: true,
        export_macro_name: "export_component",
        default_bindings_module: "::hookspecs::guest::bindings",
        runtime_path: "::hookspecs::guest::rt",
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub use wit_bindgen::rt;

use bindings::app::plugin::host::{self, Level, Service};
use bindings::app::plugin::types::{Hook, HookDecl, HookError, Manifest, Tier as WitTier};
use bindings::exports::app::plugin::migrations::Migration as WitMigration;
use bindings::exports::app::plugin::routes::{Guard as WitGuard, Method as WitMethod, RouteDecl};

/// What [`export_plugin!`](crate::export_plugin) hands the component: the
/// plugin's registration, from its `[plugins.<name>]` table.
pub type Register = fn(&Value) -> Result<PluginExport, String>;

/// The plugin's manifest: the hooks its export registers, with their
/// call-order options, and what it requires.
///
/// # Panics
///
/// Its registration fails (a wrong configuration) or it declares a hook
/// wrapper: logged through the host, then a trap, which the host reports
/// as the component's refusal.
pub fn describe(register: Register) -> Manifest {
    log_to_host();
    let export = registered(register).unwrap_or_else(|why| refuse(&why));
    let mut hooks = Vec::new();
    for decl in export.plugin.impls() {
        if decl.wrapper {
            refuse(&format!(
                "`{}` is a hook wrapper, which a component cannot implement",
                decl.hook
            ));
        }
        let hook = wit_case::<Hook>(decl.hook)
            .unwrap_or_else(|| refuse(&format!("`{}` is not a hook of the interface", decl.hook)));
        hooks.push(HookDecl {
            hook,
            priority: decl.priority,
            tier: match decl.tier {
                Tier::TryFirst => WitTier::Tryfirst,
                Tier::Normal => WitTier::Normal,
                Tier::TryLast => WitTier::Trylast,
            },
            before: decl.before.iter().map(|s| (*s).to_owned()).collect(),
            after: decl.after.iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    Manifest {
        hooks,
        requires: export.requires,
    }
}

/// The plugin's migrations (see the WIT `migrations`): those its
/// [`export_plugin!`](crate::export_plugin)`(..., migrations = ...)`
/// declares, the same its native build runs.
///
/// # Panics
///
/// Its registration fails (a wrong configuration): logged through the
/// host, then a trap, which the host reports as the component's refusal.
pub fn migrations(register: Register) -> Vec<WitMigration> {
    log_to_host();
    let export = registered(register).unwrap_or_else(|why| refuse(&why));
    export
        .migrations
        .iter()
        .map(|m| WitMigration {
            version: m.version,
            name: m.name.to_owned(),
            sqlite: m.sqlite.to_owned(),
            postgres: m.postgres.to_owned(),
        })
        .collect()
}

/// Calls `hook` of the plugin with `args` (see the WIT `call`).
///
/// # Errors
///
/// The hook's error, as the API reports it.
pub fn call(register: Register, hook: Hook, args: String) -> Result<String, HookError> {
    log_to_host();
    block_on(dispatch(register, hook, &args)).map_err(hook_error)
}

/// The SDK's error as the interface carries it.
fn hook_error(e: ApiError) -> HookError {
    HookError {
        status: e.status,
        code: e.code,
        message: e.message,
    }
}

/// Runs the plugin's `on_plugins_loaded` with a fresh
/// [`Startup`](crate::Startup): the routes it added (see the WIT `start`).
///
/// # Errors
///
/// Its `on_plugins_loaded` failed, or a route was refused.
pub fn start(register: Register) -> Result<Vec<RouteDecl>, HookError> {
    log_to_host();
    let (plugin, table, clash) = block_on(started(register)).map_err(hook_error)?;
    let prefix = format!("/plugins/{plugin}");
    let mut routes = table.routes();
    // The route refused for a clash is answered too: the host adds it
    // after the first, and its table refuses it as a native plugin's
    // (startup stops, naming both).
    routes.extend(clash);
    Ok(routes
        .iter()
        .map(|route| {
            let path = route.path.strip_prefix(&prefix).unwrap_or(&route.path);
            RouteDecl {
                method: match route.method {
                    Method::Get => WitMethod::Get,
                    Method::Post => WitMethod::Post,
                    Method::Put => WitMethod::Put,
                    Method::Patch => WitMethod::Patch,
                    Method::Delete => WitMethod::Delete,
                },
                // `/plugins/<name>` itself is the route `/`.
                path: if path.is_empty() { "/" } else { path }.to_owned(),
                guard: match route.guard {
                    Guard::Public => WitGuard::Public,
                    Guard::SignedIn => WitGuard::SignedIn,
                    Guard::Admin => WitGuard::Admin,
                },
            }
        })
        .collect())
}

/// Answers `request` with the route at `route` of [`start`]'s list (see
/// the WIT `handle`): an instance runs `on_plugins_loaded` again, at its
/// first request, to find it.
///
/// # Errors
///
/// The handler's error, as the API reports it.
pub fn handle(register: Register, route: u32, request: String) -> Result<String, HookError> {
    log_to_host();
    block_on(answer(register, route, &request)).map_err(hook_error)
}

async fn answer(register: Register, route: u32, request: &str) -> Result<String, ApiError> {
    let instance = instance(register)?;
    let routes = routes(register).await?;
    let handler = routes
        .get(route as usize)
        .map(|r| r.handler.clone())
        .ok_or_else(|| {
            ApiError::internal(format!(
                "no route {route}: on_plugins_loaded added {} routes this time; in a component \
                 it must add the same routes every time",
                routes.len()
            ))
        })?;
    let parts = RequestParts::from_json(request)?;
    // The caller's rights, as a native route's handler has them.
    let reply = handler(parts.with(context(instance, true))).await?;
    serde_json::to_string(&reply).map_err(|e| ApiError::internal(e.to_string()))
}

/// The routes this instance's `on_plugins_loaded` adds, run at its first
/// request and kept while the instance is.
async fn routes(register: Register) -> Result<&'static [RouteDef], ApiError> {
    static ROUTES: OnceLock<Vec<RouteDef>> = OnceLock::new();
    if let Some(routes) = ROUTES.get() {
        return Ok(routes);
    }
    let (_, table, _) = started(register).await?;
    Ok(ROUTES.get_or_init(|| table.routes()))
}

/// What an instance builds once, at its first call, and keeps while the
/// host reuses it (a warm instance): the plugin, registered with an engine
/// of its own, and its configuration. As a native plugin's object lives as
/// long as the app, a component's lives as long as its instance; the host
/// gives every instance of a version the same configuration.
struct Instance {
    plugin: String,
    hooks: PluginManager<dyn AppHooks>,
    configs: Arc<PluginConfigs>,
}

/// This instance's plugin, built at its first call.
fn instance(register: Register) -> Result<&'static Instance, ApiError> {
    static INSTANCE: OnceLock<Instance> = OnceLock::new();
    if let Some(instance) = INSTANCE.get() {
        return Ok(instance);
    }
    let config: Value = parse("the configuration", &host::config())?;
    let export =
        register(&config).map_err(|why| ApiError::internal(format!("its configuration: {why}")))?;
    let plugin = host::plugin_name();
    let hooks = PluginManager::<dyn AppHooks>::new();
    hooks
        .register_plugin(&plugin, export.plugin)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let configs = Arc::new(PluginConfigs(HashMap::from([(plugin.clone(), config)])));
    Ok(INSTANCE.get_or_init(|| Instance {
        plugin,
        hooks,
        configs,
    }))
}

/// The plugin's routes, as its `on_plugins_loaded` adds them to a table of
/// this instance's own, and the one refused for a clash with them, if its
/// `on_plugins_loaded` failed for that.
async fn started(register: Register) -> Result<(String, RouteTable, Option<RouteDef>), ApiError> {
    let instance = instance(register)?;
    let plugin = instance.plugin.clone();
    let table = RouteTable::default();
    let startup = crate::Startup {
        plugin: plugin.clone(),
        table: table.clone(),
        configs: instance.configs.clone(),
    };
    let Err(error) = instance.hooks.hook().on_plugins_loaded(&startup).await else {
        return Ok((plugin, table, None));
    };
    let refused = error.innermost().cause().and_then(|c| c.downcast_ref());
    let Some(RouteError::Clash {
        method,
        path,
        existing,
        ..
    }) = refused
    else {
        return Err(error.into());
    };
    // The refused route as it was asked for (its guard is the first's: a
    // clash is about method and path only).
    let clash = table
        .routes()
        .into_iter()
        .find(|r| r.method.as_str() == *method && &r.path == existing)
        .map(|first| RouteDef {
            path: path.clone(),
            ..first
        });
    Ok((plugin, table, clash))
}

async fn dispatch(register: Register, hook: Hook, args: &str) -> Result<String, ApiError> {
    let name = hook_name(hook);
    let instance = instance(register)?;
    let ctx = context(instance, false);
    // The arguments' text read into the SDK's types directly; what it is
    // named only when it is not as expected.
    let unexpected =
        |e: serde_json::Error| ApiError::internal(format!("the arguments of `{name}`: {e}"));
    let relay = instance.hooks.hook();
    if name == "authenticate" {
        let (token,): (String,) = serde_json::from_str(args).map_err(unexpected)?;
        let identity = relay.authenticate(&token, &ctx).await?.map(|a| a.value);
        json(&identity)
    } else if name == "authorize" {
        let (check,): (AccessCheck,) = serde_json::from_str(args).map_err(unexpected)?;
        let decision = relay.authorize(&check, &ctx).await?.map(|a| a.value);
        json(&decision)
    } else if let Some(kind) = Change::KINDS.iter().find(|k| k.on_hook == name) {
        let change = Change::from_arguments(kind.event, args).map_err(unexpected)?;
        fire(&relay, &change, &ctx).await?;
        Ok(NULL.to_owned())
    } else if let Some(kind) = Change::KINDS.iter().find(|k| k.after_hook == name) {
        let delivery = Delivery::from_arguments(kind.event, args).map_err(unexpected)?;
        deliver(&relay, &delivery, &ctx).await?;
        Ok(NULL.to_owned())
    } else {
        Err(ApiError::internal(format!(
            "`{name}` cannot be called in a component"
        )))
    }
}

/// The answer of a hook returning `()`, as [`json`] writes it, without the
/// serializer and the buffer it starts with.
const NULL: &str = "null";

/// A hook's answer as JSON text.
fn json<T: Serialize>(answer: &T) -> Result<String, ApiError> {
    serde_json::to_string(answer).map_err(|e| ApiError::internal(e.to_string()))
}

/// The plugin's export for its configuration (the host's `config`).
fn registered(register: Register) -> Result<PluginExport, String> {
    let table: Value =
        serde_json::from_str(&host::config()).map_err(|e| format!("its configuration: {e}"))?;
    register(&table)
}

/// Logs `why` through the host and traps: the host refuses the component
/// with the trap, and its log says why.
fn refuse(why: &str) -> ! {
    host::log(Level::Error, why);
    panic!("{why}")
}

/// The call's context: the host's actor (asked when first read), with the
/// hook's authority or (`checked`, a route's) the actor's rights; the
/// plugin's own configuration; the services through the host.
fn context(instance: &Instance, checked: bool) -> HookContext {
    // One for the instance's life: it holds nothing of a call.
    static SERVICES: OnceLock<Arc<Remote<Host>>> = OnceLock::new();
    let services = SERVICES.get_or_init(|| Arc::new(Remote(Host))).clone();
    HookContext::guest(actor, checked, services, instance.configs.clone())
}

/// The calling hook's actor, as the host's `actor` gives it: what
/// [`HookContext::actor`] reads at its first use in a call.
///
/// # Panics
///
/// The host's text is not an identity (a host out of step with this SDK):
/// logged, then a trap, the hook's failure.
fn actor() -> Option<Identity> {
    let json = host::actor()?;
    parse("the actor", &json).unwrap_or_else(|e: ApiError| refuse(&e.message))
}

/// The services of the app, through the WIT import `call-service`.
struct Host;

impl Transport for Host {
    async fn call(
        &self,
        ctx: &HookContext,
        name: &'static str,
        args: String,
    ) -> Result<String, ApiError> {
        let service = service_case(name)
            .ok_or_else(|| ApiError::internal(format!("no service `{name}` in the interface")))?;
        let acting_as = if ctx.is_checked() {
            Some(
                serde_json::to_string(&ctx.actor())
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            )
        } else {
            None
        };
        host::call_service(service, acting_as.as_deref(), &args).map_err(api_error)
    }
}

/// The WIT case of the service `name` (a [`NAMES`](crate::services::NAMES)
/// entry), worked out once per service for the instance's life.
fn service_case(name: &str) -> Option<Service> {
    static CASES: OnceLock<Vec<Option<Service>>> = OnceLock::new();
    let names = crate::services::NAMES;
    let cases = CASES.get_or_init(|| names.iter().map(|n| wit_case(n)).collect());
    let at = names.iter().position(|n| *n == name)?;
    cases[at]
}

/// The host's error as the SDK's.
pub(crate) fn api_error(error: HookError) -> ApiError {
    ApiError::new(error.status, &error.code, error.message)
}

/// The WIT case named `name` (snake case, as the SDK names hooks and
/// services), through the case's serde name (its Rust variant's).
fn wit_case<T: DeserializeOwned>(name: &str) -> Option<T> {
    let camel: String = name
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    serde_json::from_value(Value::String(camel)).ok()
}

/// The hook a WIT `hook` case names, worked out once per case for the
/// instance's life (see [`snake_name`]).
fn hook_name(hook: Hook) -> &'static str {
    /// More than the interface's cases: a case past them is named each time.
    static NAMES: [OnceLock<&'static str>; 64] = [const { OnceLock::new() }; 64];
    match NAMES.get(hook as usize) {
        Some(name) => name.get_or_init(|| snake_name(hook)),
        None => snake_name(hook),
    }
}

/// The snake-case name of a WIT case (the inverse of [`wit_case`]).
fn snake_name<T: Serialize>(case: T) -> &'static str {
    let camel = serde_json::to_value(case)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut snake = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    <dyn AppHooks as hooks_core::Spec>::HOOKS
        .iter()
        .find(|h| h.name == snake)
        .map_or("", |h| h.name)
}

/// Sends the plugin's `tracing` events to the app's log (the host's
/// `log`, under the plugin's name), as a native plugin's go to the app's
/// subscriber. Once per instance.
fn log_to_host() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Only this instance's code sets a subscriber: it cannot be taken.
        let _ = tracing::subscriber::set_global_default(HostLog);
    });
}

/// A `tracing` subscriber writing each event as one line through the
/// host's `log`: its message, then its fields as `name=value`. It takes no
/// span: none would reach the log, and the engine, which makes a span of a
/// hook call when one is wanted, then drives the call on its general,
/// boxed path instead of its fast one (BENCHMARKS.md, "Eleventh session").
struct HostLog;

impl tracing::Subscriber for HostLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        !metadata.is_span() && *metadata.level() <= tracing::Level::DEBUG
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String, String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                } else {
                    self.1.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
        }
        let mut line = Line(String::new(), String::new());
        event.record(&mut line);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::INFO => Level::Info,
            _ => Level::Debug,
        };
        host::log(level, &format!("{}{}", line.0, line.1));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// How many times a hook's future may be polled without completing: a
/// future that yields (a `yield_now`) gets polled again; one that waits
/// on something else never completes in a component, whose host calls
/// all block.
const POLLS: usize = 10_000;

/// Polls `future` to its end (see the module's docs).
///
/// # Panics
///
/// It is still pending after [`POLLS`] polls: it waits on something a
/// component never gets (a timer, a channel); the host reports the trap.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..POLLS {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    refuse("a hook waited on something that never completes in a component (a timer, a channel)")
}
