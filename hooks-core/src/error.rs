//! Errors: [`HookError`] for a failed call, [`ManagerError`] for a refused
//! change to the manager. Both name the plugin and the hook involved.

use std::any::Any;
use std::fmt::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What an implementation returns on failure: any error (`?` works on
/// everything that implements `std::error::Error`), or `anyhow::anyhow!(...)`.
pub type PluginError = anyhow::Error;

/// What a hook implementation returns.
pub type HookResult<T> = Result<T, PluginError>;

/// A hook call failed. Says which hook, which plugin and why.
///
/// ```
/// use hookery::prelude::*;
/// use hookery::HookErrorKind;
///
/// #[derive(Debug)]
/// struct Quota(u64);
///
/// impl std::fmt::Display for Quota {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "quota exceeded: {} bytes", self.0)
///     }
/// }
///
/// impl std::error::Error for Quota {}
///
/// #[hookspec]
/// pub trait Events {
///     fn upload(&self, size: u64) -> HookResult<()>;
/// }
///
/// struct Limits;
/// #[hookimpl]
/// impl Events for Limits {
///     fn upload(&self, size: u64) -> HookResult<()> {
///         if size > 100 {
///             return Err(Quota(size).into());
///         }
///         Ok(())
///     }
/// }
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("limits", Limits)?;
/// let error = pm.hook().upload(500).unwrap_err();
/// assert_eq!((error.hook(), error.plugin()), ("upload", Some("limits")));
/// assert!(matches!(error.kind(), HookErrorKind::Failed(_)));
/// // The plugin's own error type, back:
/// let quota = error.cause().unwrap().downcast_ref::<Quota>().unwrap();
/// assert_eq!(quota.0, 500);
/// println!("{error}"); // names the hook, the plugin and the cause
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Boxed so that `Result<_, HookError>` stays one word wide on the call path.
pub struct HookError(Box<Inner>);

struct Inner {
    /// Never reused (unlike the box's address, once freed): see [`HookError::id`].
    id: u64,
    hook: &'static str,
    plugin: Option<&'static str>,
    kind: HookErrorKind,
}

/// Why a hook call failed.
///
/// ```
/// # use hookery::prelude::*;
/// use hookery::HookErrorKind;
/// # #[hookspec] pub trait Events { fn compute(&self, x: u32) -> HookResult<u32>; }
/// struct Faulty;
/// #[hookimpl]
/// impl Events for Faulty {
///     fn compute(&self, x: u32) -> HookResult<u32> {
///         if x == 0 { panic!("zero") }
///         Err(anyhow::anyhow!("cannot compute {x}"))
///     }
/// }
///
/// # hookery::quiet_plugin_panics();
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("faulty", Faulty)?;
/// match pm.hook().compute(1).unwrap_err().kind() {
///     HookErrorKind::Failed(cause) => assert_eq!(cause.to_string(), "cannot compute 1"),
///     other => panic!("{other:?}"),
/// }
/// assert!(matches!(pm.hook().compute(0).unwrap_err().kind(), HookErrorKind::Panicked(message) if message == "zero"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
pub enum HookErrorKind {
    /// The implementation returned `Err`.
    Failed(PluginError),
    /// The implementation panicked; the panic was caught.
    Panicked(String),
    /// The implementation overran the hook's time limit: it was still
    /// pending at the limit, and was dropped there. (One that blocks its
    /// thread instead of awaiting cannot be interrupted: the answer it has
    /// when next polled stands.)
    TimedOut(Duration),
    /// The hook has a time limit, which needs a Tokio runtime with its time
    /// driver, and the call ran outside one (or in one built without
    /// `enable_time`); no implementation ran.
    NoRuntime(Duration),
    /// Hook calls nested deeper than the manager's limit.
    TooDeep {
        /// The limit.
        limit: usize,
        /// The nested calls, outermost first: (hook, plugin that made the
        /// next call).
        chain: Vec<(&'static str, &'static str)>,
    },
}

impl HookError {
    fn new(hook: &'static str, plugin: Option<&'static str>, kind: HookErrorKind) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        HookError(Box::new(Inner {
            id,
            hook,
            plugin,
            kind,
        }))
    }

    /// The hook whose call failed.
    pub fn hook(&self) -> &'static str {
        self.0.hook
    }

    /// The plugin whose implementation failed (`None` when no plugin is
    /// to blame: a depth error, which is about the chain, or a time limit
    /// without a runtime).
    pub fn plugin(&self) -> Option<&'static str> {
        self.0.plugin
    }

    /// Why.
    pub fn kind(&self) -> &HookErrorKind {
        &self.0.kind
    }

    /// The implementation's own error, if it returned one: downcast it to
    /// recover a typed error (`err.cause()?.downcast_ref::<MyError>()`).
    pub fn cause(&self) -> Option<&PluginError> {
        match &self.0.kind {
            HookErrorKind::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Follows nested hook calls to the innermost failure: the hook error
    /// an implementation passed on with `?` from a hook it called itself.
    pub fn innermost(&self) -> &HookError {
        let mut at = self;
        while let Some(inner) = at.cause().and_then(|c| c.downcast_ref::<HookError>()) {
            at = inner;
        }
        at
    }

    /// The implementation panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.0.kind, HookErrorKind::Panicked(_))
    }

    /// The implementation overran its time limit.
    pub fn is_timeout(&self) -> bool {
        matches!(self.0.kind, HookErrorKind::TimedOut(_))
    }

    /// The depth limit was hit.
    pub fn is_too_deep(&self) -> bool {
        matches!(self.0.kind, HookErrorKind::TooDeep { .. })
    }

    /// An implementation of `hook` in `plugin` returned `error`. A depth
    /// error from a nested call gains this link of the chain and goes on
    /// up; any other error (a nested call's included) becomes the cause.
    #[cold]
    pub(crate) fn from_impl(hook: &'static str, plugin: &'static str, error: PluginError) -> Self {
        if let Some(TimeLimit(limit)) = error.downcast_ref() {
            return Self::new(hook, Some(plugin), HookErrorKind::TimedOut(*limit));
        }
        // A depth error anywhere among the causes (passed on as it is, or
        // inside the application's own error type) is what happened.
        let deeper = error
            .chain()
            .filter_map(|e| e.downcast_ref::<HookError>())
            .find(|e| e.is_too_deep());
        if let Some(deeper) = deeper {
            if let HookErrorKind::TooDeep { limit, chain } = deeper.kind() {
                let chain = std::iter::once((hook, plugin))
                    .chain(chain.iter().copied())
                    .collect();
                let limit = *limit;
                return Self::new(deeper.hook(), None, HookErrorKind::TooDeep { limit, chain });
            }
        }
        Self::new(hook, Some(plugin), HookErrorKind::Failed(error))
    }

    /// What a wrapper returned. The very error its `next` produced, passed
    /// on as it is, stays unchanged (it names the plugin that really
    /// failed); anything else — a new error, or that error with context
    /// added — is the wrapper's own failure.
    #[cold]
    pub(crate) fn from_wrapper(
        hook: &'static str,
        plugin: &'static str,
        error: PluginError,
        from_next: u64,
    ) -> Self {
        if outermost(&error).is_some_and(|e| e.id() == from_next) {
            return error.downcast().expect("outermost is a HookError");
        }
        Self::from_impl(hook, plugin, error)
    }

    /// The identity of this error, unique for the life of the process: how
    /// a wrapper's pass-through of `next`'s error is told from a new error
    /// (an address would not do: a freed error's address is handed to the
    /// next allocation). Never 0.
    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }

    #[cfg(feature = "async")]
    #[cold]
    pub(crate) fn no_runtime(hook: &'static str, limit: Duration) -> Self {
        Self::new(hook, None, HookErrorKind::NoRuntime(limit))
    }

    #[cold]
    pub(crate) fn panicked(
        hook: &'static str,
        plugin: &'static str,
        payload: Box<dyn Any + Send>,
    ) -> Self {
        let message = match payload.downcast::<String>() {
            Ok(s) => *s,
            Err(payload) => match payload.downcast::<&'static str>() {
                Ok(s) => (*s).to_owned(),
                Err(payload) => {
                    // A payload of the plugin's own type may panic in `drop`.
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                    "(non-string panic payload)".to_owned()
                }
            },
        };
        Self::new(hook, Some(plugin), HookErrorKind::Panicked(message))
    }

    #[cold]
    pub(crate) fn too_deep(hook: &'static str, limit: usize) -> Self {
        Self::new(
            hook,
            None,
            HookErrorKind::TooDeep {
                limit,
                chain: Vec::new(),
            },
        )
    }
}

/// The error itself if it is a [`HookError`] (not one behind added context).
fn outermost(error: &PluginError) -> Option<&HookError> {
    error.chain().next()?.downcast_ref()
}

/// Writes a plugin-supplied value through `write`, so that whatever its
/// `Display` or `Debug` does, formatting it cannot take the host down: a
/// panic (or a `fmt::Error`, which makes `to_string` panic) inside it is
/// caught and written as a note instead. Every formatting of a plugin's
/// value in the engine goes through here.
pub(crate) fn guarded(
    f: &mut fmt::Formatter<'_>,
    write: impl FnOnce(&mut String) -> fmt::Result,
) -> fmt::Result {
    let mut text = String::new();
    match catch_unwind(AssertUnwindSafe(|| write(&mut text))) {
        Ok(Ok(())) => f.write_str(&text),
        Ok(Err(fmt::Error)) => f.write_str("(the plugin's error failed to format)"),
        Err(payload) => {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            f.write_str("(the plugin's error panicked while being formatted)")
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Inner {
            hook, plugin, kind, ..
        } = &*self.0;
        let plugin = plugin.unwrap_or("?");
        match kind {
            HookErrorKind::Failed(e) => {
                write!(f, "plugin `{plugin}` failed in hook `{hook}`: ")?;
                guarded(f, |text| write!(text, "{e}"))
            }
            HookErrorKind::Panicked(msg) => {
                write!(f, "plugin `{plugin}` panicked in hook `{hook}`: {msg}")
            }
            HookErrorKind::TimedOut(limit) => write!(
                f,
                "plugin `{plugin}` did not finish hook `{hook}` within its time limit of {limit:?}"
            ),
            HookErrorKind::NoRuntime(limit) => write!(
                f,
                "hook `{hook}` has a time limit of {limit:?}, which needs a Tokio runtime \
                 (with its time driver), and none is running"
            ),
            HookErrorKind::TooDeep { limit, chain } => {
                write!(f, "hook calls nested deeper than the limit of {limit}: ")?;
                for (hook, plugin) in chain {
                    write!(f, "{hook} (in plugin `{plugin}`) -> ")?;
                }
                write!(f, "{hook}")
            }
        }
    }
}

impl fmt::Debug for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookError")
            .field("hook", &self.0.hook)
            .field("plugin", &self.0.plugin)
            .field("kind", &self.0.kind)
            .finish()
    }
}

impl fmt::Debug for HookErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookErrorKind::Failed(e) => {
                f.write_str("Failed(")?;
                guarded(f, |text| write!(text, "{e:?}"))?;
                f.write_str(")")
            }
            HookErrorKind::Panicked(msg) => f.debug_tuple("Panicked").field(msg).finish(),
            HookErrorKind::TimedOut(limit) => f.debug_tuple("TimedOut").field(limit).finish(),
            HookErrorKind::NoRuntime(limit) => f.debug_tuple("NoRuntime").field(limit).finish(),
            HookErrorKind::TooDeep { limit, chain } => f
                .debug_struct("TooDeep")
                .field("limit", limit)
                .field("chain", chain)
                .finish(),
        }
    }
}

impl std::error::Error for HookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause().map(|e| e.as_ref() as _)
    }
}

/// What an async implementation that overran its time limit is taken to
/// have returned; [`HookError::from_impl`] turns it into `TimedOut`.
#[derive(Debug)]
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) struct TimeLimit(pub(crate) Duration);

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "time limit of {:?} exceeded", self.0)
    }
}

impl std::error::Error for TimeLimit {}

/// A change to the [`PluginManager`](crate::PluginManager) was refused; the
/// manager is exactly as it was before the call.
///
/// ```
/// # use hookery::prelude::*;
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// # struct Store(u32);
/// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
/// use hookery::ManagerError;
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("store", Store(0))?;
/// let refused = pm.register("store", Store(1)).unwrap_err();
/// assert!(matches!(refused, ManagerError::DuplicateName(ref name) if name == "store"));
/// println!("{refused}"); // says what to do instead
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ManagerError {
    /// `register` with a name already registered. The message says what to
    /// do instead: another name, or `replace` or `unregister` first.
    DuplicateName(String),
    /// `register` with a name blocked by `set_blocked`.
    Blocked(String),
    /// A name that no registered plugin has.
    UnknownPlugin(String),
    /// A plugin declares an implementation the spec cannot accept.
    InvalidImpl {
        /// The plugin.
        plugin: String,
        /// The hook it names.
        hook: String,
        /// The spec trait.
        spec: &'static str,
        /// What was expected.
        reason: &'static str,
    },
    /// `register` of the very plugin object (the same `Arc`) registered
    /// under another name: its hooks would run twice per call.
    AlreadyRegistered {
        /// The name it was offered under.
        plugin: String,
        /// The name it is registered as.
        registered_as: String,
    },
    /// The plugin's `before`/`after` constraints, with those of the plugins
    /// registered, ask for a cycle; it was not registered.
    OrderCycle {
        /// The plugin.
        plugin: String,
        /// The hook whose order has the cycle.
        hook: &'static str,
        /// The plugins of the cycle, each running before the next; the
        /// first is repeated last.
        chain: Vec<&'static str>,
    },
    /// Replaying a historic call to the new plugin failed; it was not
    /// registered. It was registered while its replays ran, though (they
    /// run with the registry's lock released): calls made meanwhile, from
    /// the replay itself or from other threads, ran it, and
    /// `has_plugin` saw it. The first failure unregisters it again (unless
    /// a `replace` has put another plugin under its name since, which
    /// stays) before this error is returned.
    HistoricReplay {
        /// The plugin.
        plugin: String,
        /// The failure.
        error: HookError,
    },
}

// Written out rather than derived: `thiserror` would add its proc macro
// (and with it a second major version of syn) to every build of the engine.
impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateName(name) => write!(
                f,
                "a plugin named `{name}` is already registered: register this one under \
                 another name, or `replace` or `unregister` that one first"
            ),
            Self::Blocked(name) => write!(f, "plugin name `{name}` is blocked"),
            Self::UnknownPlugin(name) => write!(f, "no plugin named `{name}` is registered"),
            Self::InvalidImpl {
                plugin,
                hook,
                spec,
                reason,
            } => write!(
                f,
                "plugin `{plugin}` cannot implement hook `{hook}` of `{spec}`: {reason}"
            ),
            Self::AlreadyRegistered {
                plugin,
                registered_as,
            } => write!(
                f,
                "plugin `{plugin}` is the plugin object already registered as `{registered_as}`"
            ),
            Self::OrderCycle {
                plugin,
                hook,
                chain,
            } => write!(
                f,
                "plugin `{plugin}` was not registered: the before/after constraints of hook \
                 `{hook}` form a cycle: {}",
                chain.join(" runs before ")
            ),
            Self::HistoricReplay { plugin, error } => write!(
                f,
                "plugin `{plugin}` was not registered: replaying a historic call failed: {error}"
            ),
        }
    }
}

impl std::error::Error for ManagerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::HistoricReplay { error, .. } => Some(error),
            _ => None,
        }
    }
}
