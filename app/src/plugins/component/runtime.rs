//! The component runtime: one wasmtime engine for every sandboxed plugin,
//! its epoch ticker, the on-disk cache of compiled components, and one
//! store per instance, each call in an instance of its own taken from the
//! plugin's [`Pool`] (a trap never outlives its call, and a nested call
//! into the same plugin gets another instance).

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use hookspecs::sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use hookspecs::sql::Call;
use hookspecs::{ApiError, HookContext, Identity};
use serde_json::Value;

use super::limits::{Budget, Limits};
use super::outbound::Outbound;
use super::pool::{self, Pool};
use super::wit::{
    self, GUEST, Hook, HookError, Level, Manifest, PluginPre, RouteDecl, RoutesIndices, Service,
    VERSION,
};
use crate::plugins::loader;

/// How often the epoch advances: the granularity of the time limit, and
/// how long a busy component runs before it lets the thread's other tasks
/// run.
const TICK: Duration = Duration::from_millis(5);

/// Beyond the time limit, how long a call waiting on the host (a sleep) may
/// take before its future is dropped.
const MARGIN: Duration = Duration::from_millis(100);

/// The lines of `log` one call may write; the rest are counted and dropped
/// (the app's log writer is lossy past its queue: a flood would drop other
/// requests' lines, the 500 details among them).
const LOG_LINES: u32 = 200;

/// The bytes of one `log` message kept; the rest is cut.
const LOG_BYTES: usize = 4 << 10;

/// The largest arguments of a `call-service`, bytes: read into its types on
/// the host, outside the component's memory cap.
const MAX_ARGS: usize = 1 << 20;

/// The engine and what every component is linked against.
pub struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    cache: Option<PathBuf>,
}

/// One instance's store: WASI with nothing granted (no files, no
/// environment, no network, no inherited stdio), the memory budget, the
/// plugin's config, and what is per call: the context of the hook being
/// called (none in `describe` and between calls), its deadline, whether it
/// raced, its log budget.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    budget: Budget,
    plugin: &'static str,
    config: Arc<str>,
    ctx: Option<HookContext>,
    /// When the call running now is interrupted.
    deadline: Instant,
    /// A service it called lost a race with a concurrent operation: its
    /// failure then asks for the operation to run again, as a native
    /// plugin's would.
    raced: bool,
    /// Its `log` lines so far in this call.
    log: LogBudget,
    /// The hosts it may send HTTP to, and whether the hook being called
    /// may.
    outbound: Outbound,
}

/// How many lines a call logged, and how many it could not.
#[derive(Default)]
struct LogBudget {
    written: u32,
    dropped: u32,
}

impl LogBudget {
    /// Whether one more line may be written.
    fn admit(&mut self) -> bool {
        if self.written < LOG_LINES {
            self.written += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

impl State {
    /// Starts a call in `ctx`, interrupted at `deadline`: nothing of the
    /// previous call on this instance remains.
    fn begin(&mut self, ctx: Option<HookContext>, deadline: Instant) {
        self.ctx = ctx;
        self.deadline = deadline;
        self.raced = false;
        self.log = LogBudget::default();
    }

    /// Ends a call: reports the lines it could not log and forgets its
    /// context (an idle instance holds no transaction). Whether it raced.
    fn end(&mut self) -> bool {
        if self.log.dropped > 0 {
            tracing::warn!(
                plugin = self.plugin,
                "{} lines dropped: a call logs at most {LOG_LINES} lines",
                self.log.dropped
            );
        }
        self.log = LogBudget::default();
        self.ctx = None;
        self.outbound.during(None);
        std::mem::take(&mut self.raced)
    }
}

/// A call that did not end (a trap, a timeout that dropped its future)
/// drops its instance: its lines not logged are reported then.
impl Drop for State {
    fn drop(&mut self) {
        self.end();
    }
}

/// A `log` message as one line of the app's log: control characters
/// escaped (a newline in it would start a line of the component's making,
/// which would read as the app's own), cut past [`LOG_BYTES`].
fn log_line(message: &str) -> String {
    let mut end = message.len().min(LOG_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut line = String::with_capacity(end);
    for c in message[..end].chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    if end < message.len() {
        line.push_str(&format!(" [{} bytes cut]", message.len() - end));
    }
    line
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::app::plugin::types::Host for State {}

impl wit::app::plugin::host::Host for State {
    fn log(&mut self, level: Level, message: String) {
        if !self.log.admit() {
            return;
        }
        let plugin = self.plugin;
        let message = log_line(&message);
        match level {
            Level::Error => tracing::error!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
        }
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }

    fn plugin_name(&mut self) -> String {
        self.plugin.to_owned()
    }

    fn actor(&mut self) -> Option<String> {
        let actor = self.ctx.as_ref()?.actor()?;
        serde_json::to_string(actor).ok()
    }

    /// The service, in the hook's unit of work; as the hook's context
    /// acts, or as nobody or the hook's own actor (see [`may_act_as`]).
    async fn call_service(
        &mut self,
        service: Service,
        acting_as: Option<String>,
        args: String,
    ) -> Result<String, HookError> {
        let name = wit::service_name(service);
        // Borrowed, not cloned, for the call: the hook's context, or (a
        // route's) the same acting as its actor.
        let hook_ctx = self.ctx.as_ref().ok_or_else(no_context)?;
        let outcome = async {
            let acting;
            let ctx = match acting_as {
                None => hook_ctx,
                Some(identity) => {
                    let identity = may_act_as(hook_ctx.actor(), parse("acting-as", &identity)?)?;
                    acting = hook_ctx.acting_as(identity);
                    &acting
                }
            };
            if args.len() > MAX_ARGS {
                let what = format!("the argument text of `{name}`");
                return Err(ApiError::too_large(&what, MAX_ARGS));
            }
            hookspecs::services::serve(ctx.services(), ctx, name, &args).await
        }
        .await;
        self.answer(outcome)
    }

    async fn query(&mut self, sql: String, params: String) -> Result<String, HookError> {
        let (ctx, params) = self.statement(Call::Query, &sql, &params)?;
        let rows = ctx.query(&sql, &params).await;
        self.ran(rows.map(|rows| {
            Value::from(rows.into_iter().map(Value::Object).collect::<Vec<_>>()).to_string()
        }))
    }

    async fn execute(&mut self, sql: String, params: String) -> Result<u64, HookError> {
        let (ctx, params) = self.statement(Call::Execute, &sql, &params)?;
        let changed = ctx.execute(&sql, &params).await;
        self.ran(changed)
    }
}

impl wit::app::plugin::outbound::Host for State {
    async fn send(
        &mut self,
        request: wit::app::plugin::outbound::Request,
    ) -> Result<wit::app::plugin::outbound::Response, HookError> {
        let sent = self
            .outbound
            .send(self.plugin, self.deadline, request)
            .await;
        self.answer(sent)
    }
}

/// The most SQL text a component's statement may have: plenty for a
/// statement written by hand, and a bound on the parser's work.
const MAX_SQL: usize = 64 * 1024;

/// The most JSON text a statement's parameters may have: parsed on the
/// host, outside the component's memory cap.
const MAX_PARAMS: usize = 1024 * 1024;

impl State {
    /// The context of the hook being called: what the services and SQL act
    /// in.
    fn hook_ctx(&self) -> Result<HookContext, HookError> {
        self.ctx.clone().ok_or_else(no_context)
    }

    /// A component's statement for `call`, checked before anything of it
    /// is parsed into host memory or reaches the database (its size, then
    /// [`hookspecs::sql::check`]), with the hook's context it runs in and its
    /// parameters.
    fn statement(
        &self,
        call: Call,
        sql: &str,
        params: &str,
    ) -> Result<(HookContext, Vec<Value>), HookError> {
        let ctx = self.hook_ctx()?;
        let checked = if sql.len() > MAX_SQL {
            Err(ApiError::too_large("the statement", MAX_SQL))
        } else if params.len() > MAX_PARAMS {
            Err(ApiError::too_large(
                "the statement's parameter text",
                MAX_PARAMS,
            ))
        } else {
            hookspecs::sql::check(sql, self.plugin, call).and_then(|()| parse("params", params))
        };
        checked
            .map(|params| (ctx, params))
            .map_err(|e| own_error(&e))
    }

    /// A statement's outcome for the component, as [`answer`](Self::answer);
    /// a failure of the database other than a lost race as a fixed message,
    /// its detail in the app's log: the driver's text may quote the SQL and
    /// name constraints and columns, which the component could pass on to
    /// a client in a 4xx.
    fn ran<T>(&mut self, outcome: Result<T, ApiError>) -> Result<T, HookError> {
        let plugin = self.plugin;
        self.answer(outcome.map_err(|error| {
            if error.is_race() || error.status != 500 {
                return error;
            }
            tracing::warn!(plugin, "a component's statement failed: {}", error.message);
            ApiError::new(
                500,
                "statement_failed",
                "the statement failed; the app's log has the detail under the plugin's name",
            )
        }))
    }

    /// `outcome` for the component, noting a lost race (see `raced`).
    fn answer<T>(&mut self, outcome: Result<T, ApiError>) -> Result<T, HookError> {
        outcome.map_err(|error| {
            self.raced |= error.is_race();
            own_error(&error)
        })
    }
}

/// What a component reaching for the services or SQL between calls gets.
fn no_context() -> HookError {
    own_error(&ApiError::new(
        409,
        "no_context",
        "the services and SQL are reachable only during a hook call",
    ))
}

/// The identity a service call may act as: nobody, or the hook's own
/// actor. Any other would be `ctx.actor()` of the hooks the service fires,
/// and what they record (the audit log's "who") would be the component's
/// forgery; a 403 then.
fn may_act_as(
    actor: Option<&Identity>,
    identity: Option<Identity>,
) -> Result<Option<Identity>, ApiError> {
    match identity {
        Some(other) if Some(&other) != actor => Err(ApiError::new(
            403,
            "forbidden",
            "acting-as may name nobody or the hook's own actor, no other identity",
        )),
        identity => Ok(identity),
    }
}

/// `json`, from a component, as `T`; a 400 naming `what` otherwise.
fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, ApiError> {
    serde_json::from_str(json)
        .map_err(|e| ApiError::new(400, "bad_request", format!("{what}: {e}")))
}

/// An error as the interface carries it.
fn own_error(error: &ApiError) -> HookError {
    HookError {
        status: error.status,
        code: error.code.clone(),
        message: error.message.clone(),
    }
}

/// A component ready to instantiate, with its limits, configuration and
/// warm instances.
pub struct Loaded {
    runtime: Arc<Runtime>,
    pre: PluginPre<State>,
    plugin: &'static str,
    limits: Limits,
    config: Arc<str>,
    hosts: Arc<[String]>,
    pool: Pool<Instance>,
}

/// An instance of the component in its own store.
struct Instance {
    store: Store<State>,
    plugin: wit::Plugin,
    /// The same instance untyped, for the optional exports (`routes`).
    raw: wasmtime::component::Instance,
}

/// A component's own failure of a call.
#[derive(Debug)]
pub struct Refused {
    /// As it reported it.
    pub error: HookError,
    /// A service it called lost a race (see `State::raced`).
    pub raced: bool,
}

/// Why a call did not answer.
#[derive(Debug)]
pub enum Fault {
    /// It ran over its time limit (interrupted).
    TimedOut(Duration),
    /// It trapped (panic, stack overflow, memory cap, exit, ...): the
    /// instance is gone.
    Trapped(String),
}

impl Runtime {
    /// The engine (epoch interruption on, fuel off), its ticker thread, and
    /// the linker with WASI and the app's `host` interface. Compiled
    /// components are cached in `cache` when it can be written.
    ///
    /// # Errors
    ///
    /// The engine or the linker cannot be set up.
    pub fn new(cache: Option<PathBuf>) -> anyhow::Result<Arc<Runtime>> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // For profiling (bench/component_call.py --top): each compiled
        // function's address and name in /tmp/perf-<pid>.map, so that a
        // profiler names the components' machine code. No feature needed,
        // nothing written without it.
        if std::env::var_os("APP_COMPONENT_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("component-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wit::Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache,
        }))
    }

    /// Compiles (or takes from the cache) the component in `path`, checks
    /// that it is a plugin of this interface's major version whose imports
    /// the app provides, and asks its manifest.
    ///
    /// # Errors
    ///
    /// Why it is refused: not a component, truncated, another interface or
    /// major version, imports the app does not provide, a trap or an
    /// overrun in `describe`.
    pub fn load(
        self: &Arc<Self>,
        path: &Path,
        plugin: &'static str,
        limits: Limits,
        config: &serde_json::Value,
    ) -> Result<(Loaded, Manifest), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
        let component = self.compile(&bytes)?;
        check_version(&self.engine, &component)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            format!("it imports what the app does not provide to components: {e:#}")
        })?;
        let pre = PluginPre::new(pre).map_err(|e| format!("{e:#}"))?;
        let loaded = Loaded {
            runtime: self.clone(),
            pre,
            plugin,
            config: config.to_string().into(),
            hosts: limits.hosts.clone().into(),
            pool: Pool::new(limits.warm_instances),
            limits,
        };
        // Polled on this thread (startup's, or a reload's blocking one),
        // inside the Tokio runtime: its driver runs the time limit's timer
        // and WASI's clocks.
        let manifest = futures::executor::block_on(loaded.manifest())
            .map_err(|fault| format!("its manifest failed: {}", fault.message()))?;
        Ok((loaded, manifest))
    }

    /// The compiled component: from the cache, keyed by the component's
    /// hash and the engine's compatibility hash, or compiled and stored.
    fn compile(&self, bytes: &[u8]) -> Result<Component, String> {
        let refused = |e: wasmtime::Error| format!("not a valid WebAssembly component: {e:#}");
        let Some(dir) = &self.cache else {
            return Component::new(&self.engine, bytes).map_err(refused);
        };
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut compat);
        let key = format!(
            "{:x}-{:016x}.{}",
            Sha256::digest(bytes),
            compat.finish(),
            super::cache::EXTENSION
        );
        let cached = dir.join(key);
        match loader::cached_component(&self.engine, dir, &cached) {
            Ok(Some(component)) => {
                super::cache::used(&cached);
                return Ok(component);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(path = %cached.display(), "cached component unusable, compiling again: {why}")
            }
        }
        let compiled = self.engine.precompile_component(bytes).map_err(refused)?;
        let stored = private_dir(dir).and_then(|()| write_atomically(&cached, &compiled));
        match stored {
            Ok(()) => super::cache::evict(dir, &cached),
            Err(e) => tracing::debug!(path = %cached.display(), "component cache not written: {e}"),
        }
        loader::compiled_component(&self.engine, &compiled).map_err(refused)
    }
}

/// Creates the cache folder (and its parents) if missing, readable and
/// writable by the app's user only: what is in it runs as machine code.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` beside `path` (for the app's user only, as
/// [`loader::cached_component`] requires), then renames: a concurrent
/// reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&partial)?.write_all(bytes)?;
    std::fs::rename(&partial, path)
}

/// `run`'s output, or `None` if it is still waiting at `due`. The timer is
/// set only if its first poll did not finish it: most component calls end
/// there (nothing of the host awaited), and a timer costs a registration
/// in the runtime's timer wheel and its removal.
async fn until<T>(due: Instant, run: impl Future<Output = T>) -> Option<T> {
    let mut run = pin!(run);
    if let Poll::Ready(output) = futures::poll!(run.as_mut()) {
        return Some(output);
    }
    tokio::time::timeout_at(due.into(), run).await.ok()
}

/// Refuses a component that exports no `guest` interface of this package,
/// or one of another major version.
fn check_version(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let Some(theirs) = names.iter().find_map(|n| n.strip_prefix(GUEST)) else {
        return Err(format!(
            "not an app plugin: it exports no `{GUEST}{VERSION}` interface (it exports: {})",
            if names.is_empty() {
                "nothing".into()
            } else {
                names.join(", ")
            }
        ));
    };
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_owned();
    if major(theirs) != major(VERSION) {
        return Err(format!(
            "built for version {theirs} of the plugin interface, but the app provides {VERSION}: \
             rebuild the plugin against this app's SDK (hookspecs/wit), or run an app of \
             interface version {}.x",
            major(theirs)
        ));
    }
    Ok(())
}

/// The WASI handles an instance may hold at once (streams, pollables).
/// They live in the host's memory, outside the memory budget, and a warm
/// instance keeps them from one call to the next: a component that leaks
/// them traps at this bound (and its instance is discarded) instead of
/// growing the host call after call. A hook needs a handful.
const WASI_HANDLES: usize = 1024;

fn bounded_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(WASI_HANDLES);
    table
}

impl Loaded {
    /// A store for one instance, with its memory budget, and its deadline
    /// checked at each epoch tick.
    fn store(&self) -> Store<State> {
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: bounded_table(),
            budget: Budget::new(self.limits.memory_bytes()),
            plugin: self.plugin,
            config: self.config.clone(),
            ctx: None,
            deadline: Instant::now(),
            raced: false,
            log: LogBudget::default(),
            outbound: Outbound::new(self.hosts.clone()),
        };
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.budget);
        // Wasm runs inside the poll of its task: at each tick a busy
        // component yields, so that it never holds a Tokio worker (the
        // accept loop, other requests) for longer than a tick; past its
        // call's deadline it traps.
        store.epoch_deadline_callback(|store| {
            Ok(if Instant::now() < store.data().deadline {
                UpdateDeadline::Yield(1)
            } else {
                UpdateDeadline::Interrupt
            })
        });
        store
    }

    /// `run` (a call into the instance, due by `deadline`) within the
    /// plugin's time limit: the epoch interrupts a busy component, and
    /// this, `MARGIN` later, one waiting on the host (a sleep), which no
    /// epoch reaches.
    async fn bounded<T>(
        &self,
        deadline: Instant,
        run: impl Future<Output = wasmtime::Result<T>>,
    ) -> Result<T, Fault> {
        match until(deadline + MARGIN, run).await {
            Some(outcome) => outcome.map_err(|e| self.fault(e)),
            None => Err(Fault::TimedOut(self.limits.time())),
        }
    }

    /// Runs `call` on a warm instance (or a new one) in `ctx`, within the
    /// plugin's limits; gives the instance back if the call ended cleanly
    /// and its memory allows (see [`pool`]). With whether it raced.
    async fn with_instance<T>(
        &self,
        ctx: Option<HookContext>,
        call: impl AsyncFnOnce(&mut Instance) -> wasmtime::Result<T>,
    ) -> Result<(T, bool), Fault> {
        let deadline = Instant::now() + self.limits.time();
        let run = async {
            let mut instance = match self.pool.take() {
                Some(instance) => instance,
                None => {
                    let mut store = self.store();
                    store.data_mut().begin(None, deadline);
                    store.set_epoch_deadline(1);
                    let raw = self
                        .pre
                        .instance_pre()
                        .instantiate_async(&mut store)
                        .await?;
                    let plugin = wit::Plugin::new(&mut store, &raw)?;
                    Instance { store, plugin, raw }
                }
            };
            instance.store.data_mut().begin(ctx, deadline);
            instance.store.set_epoch_deadline(1);
            let answer = call(&mut instance).await?;
            Ok((answer, instance))
        };
        // A fault drops the instance inside `run`: it is never reused.
        let (answer, mut instance) = self.bounded(deadline, run).await?;
        let raced = instance.store.data_mut().end();
        let budget = &instance.store.data().budget;
        if pool::reusable(budget.used(), budget.cap()) {
            self.pool.give_back(instance);
        }
        Ok((answer, raced))
    }

    async fn manifest(&self) -> Result<Manifest, Fault> {
        let call = async |instance: &mut Instance| {
            let guest = instance.plugin.app_plugin_guest();
            guest.call_describe(&mut instance.store).await
        };
        Ok(self.with_instance(None, call).await?.0)
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    /// Calls `hook` with `args` (JSON) in an instance of its own, within
    /// the plugin's limits, the services it calls acting in `ctx`.
    pub async fn call(
        &self,
        hook: Hook,
        args: &str,
        ctx: &HookContext,
    ) -> Result<Result<String, Refused>, Fault> {
        let call = async |instance: &mut Instance| {
            // Cleared by the call's end: an idle instance may send nothing.
            instance.store.data_mut().outbound.during(Some(hook));
            let guest = instance.plugin.app_plugin_guest();
            guest.call_call(&mut instance.store, hook, args).await
        };
        let (outcome, raced) = self.with_instance(Some(ctx.clone()), call).await?;
        Ok(outcome.map_err(|error| Refused { error, raced }))
    }

    fn fault(&self, error: wasmtime::Error) -> Fault {
        tracing::debug!(plugin = self.plugin, "component trapped: {error:?}");
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Fault::TimedOut(self.limits.time()),
            Some(trap) => Fault::Trapped(trap.to_string()),
            // Its exit, or the memory cap (a failed grow), or another
            // host error: the root cause is one line, without the guest's
            // backtrace.
            None => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => Fault::Trapped(format!("it exited with status {}", exit.0)),
                None => Fault::Trapped(error.root_cause().to_string()),
            },
        }
    }
}

/// Calls of the optional `routes` export (interface 1.2.0), each in an
/// instance of the plugin's pool within its limits, as a hook's.
impl Loaded {
    /// Where the component's `routes` export is, if it has one.
    pub fn routes(&self) -> Option<RoutesIndices> {
        RoutesIndices::new(self.pre.instance_pre()).ok()
    }

    /// Its `start`: the routes its `on_plugins_loaded` adds.
    pub async fn start(
        &self,
        routes: &RoutesIndices,
    ) -> Result<Result<Vec<RouteDecl>, HookError>, Fault> {
        let call = async |instance: &mut Instance| {
            let routes = routes.load(&mut instance.store, &instance.raw)?;
            routes.call_start(&mut instance.store).await
        };
        Ok(self.with_instance(None, call).await?.0)
    }

    /// Its `handle` of `request` (JSON) at route `route`, the services and
    /// SQL it calls acting in `ctx` (the request's).
    pub async fn handle(
        &self,
        routes: &RoutesIndices,
        route: u32,
        request: &str,
        ctx: &HookContext,
    ) -> Result<Result<String, Refused>, Fault> {
        let call = async |instance: &mut Instance| {
            let routes = routes.load(&mut instance.store, &instance.raw)?;
            routes
                .call_handle(&mut instance.store, route, request)
                .await
        };
        let (outcome, raced) = self.with_instance(Some(ctx.clone()), call).await?;
        Ok(outcome.map_err(|error| Refused { error, raced }))
    }
}

/// Calls of the optional `migrations` export (interface 1.3.0), in an
/// instance of the plugin's pool within its limits.
impl Loaded {
    /// Its migrations (`all`), if it exports them.
    pub async fn migrations(&self) -> Result<Option<Vec<wit::Migration>>, Fault> {
        let Ok(export) = wit::MigrationsIndices::new(self.pre.instance_pre()) else {
            return Ok(None);
        };
        let call = async |instance: &mut Instance| {
            let migrations = export.load(&mut instance.store, &instance.raw)?;
            migrations.call_all(&mut instance.store).await
        };
        Ok(Some(self.with_instance(None, call).await?.0))
    }
}

impl Fault {
    /// For people: what happened, without the engine's internals.
    pub fn message(&self) -> String {
        match self {
            Fault::TimedOut(limit) => format!(
                "it ran over its time limit of {} ms and was interrupted",
                limit.as_millis()
            ),
            Fault::Trapped(why) => format!("it trapped: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_is_given_up_at_its_due_time_only_if_it_waits() {
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(
            until(past, async { 7 }).await,
            Some(7),
            "done in its first poll"
        );
        let soon = Instant::now() + Duration::from_secs(60);
        let yielding = async {
            tokio::task::yield_now().await;
            8
        };
        assert_eq!(
            until(soon, yielding).await,
            Some(8),
            "waited, within its time"
        );
        let started = Instant::now();
        let due = started + Duration::from_millis(30);
        assert_eq!(until(due, std::future::pending::<u8>()).await, None);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_log_message_is_one_line_and_cut() {
        assert_eq!(
            log_line("ok\nFAKE INFO app::http: 200\r\u{1b}[2J"),
            "ok\\nFAKE INFO app::http: 200\\r\\u{1b}[2J"
        );
        let long = "é".repeat(LOG_BYTES);
        let line = log_line(&long);
        assert!(line.len() <= LOG_BYTES + 32, "{}", line.len());
        assert!(
            line.ends_with(&format!(" [{} bytes cut]", LOG_BYTES)),
            "{line}"
        );
        assert_eq!(log_line("user \"alice\""), "user \"alice\"");
    }

    #[test]
    fn a_call_logs_its_budget_of_lines_and_counts_the_rest() {
        let mut budget = LogBudget::default();
        let admitted = (0..LOG_LINES + 50).filter(|_| budget.admit()).count();
        assert_eq!(admitted, LOG_LINES as usize);
        assert_eq!(budget.dropped, 50);
    }

    #[test]
    fn a_call_leaves_nothing_of_itself_to_the_next_on_its_instance() {
        let mut state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            budget: Budget::new(1 << 20),
            plugin: "probe",
            config: "{}".into(),
            ctx: None,
            deadline: Instant::now(),
            raced: false,
            log: LogBudget::default(),
            outbound: Outbound::new(Arc::new([])),
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        state.begin(None, deadline);
        assert_eq!(state.deadline, deadline);
        state.raced = true;
        state.outbound.during(Some(Hook::AfterUserCreated));
        assert!(state.outbound.may_send().is_ok());
        for _ in 0..=LOG_LINES {
            state.log.admit();
        }
        assert!(state.end(), "the call raced");
        assert!(!state.raced && state.ctx.is_none());
        assert_eq!((state.log.written, state.log.dropped), (0, 0));
        assert!(
            state.outbound.may_send().is_err(),
            "an idle instance sends nothing"
        );
        assert!(!state.end(), "the next call starts without it");
    }

    #[test]
    fn a_component_acts_only_as_nobody_or_its_hooks_actor() {
        let who = |name: &str, admin| Identity {
            user_id: Some(1),
            name: name.into(),
            admin,
            via: "app".into(),
        };
        let bob = who("bob", false);
        assert_eq!(may_act_as(Some(&bob), None).unwrap(), None);
        assert_eq!(may_act_as(None, None).unwrap(), None);
        assert_eq!(
            may_act_as(Some(&bob), Some(bob.clone())).unwrap(),
            Some(bob.clone())
        );
        for forged in [who("admin", true), who("bob", true)] {
            let refused = may_act_as(Some(&bob), Some(forged)).unwrap_err();
            assert_eq!((refused.status, refused.code.as_str()), (403, "forbidden"));
        }
        assert_eq!(may_act_as(None, Some(bob)).unwrap_err().status, 403);
    }
}
