//! Errors: [`HookError`] for a failed call, [`ManagerError`] for a refused
//! change to the manager. Both name the plugin and the hook involved.

use std::any::Any;
use std::fmt;
use std::time::Duration;

/// What an implementation returns on failure: any error (`?` works on
/// everything that implements `std::error::Error`), or `anyhow::anyhow!(...)`.
pub type PluginError = anyhow::Error;

/// What a hook implementation returns.
pub type HookResult<T> = Result<T, PluginError>;

/// A hook call failed. Says which hook, which plugin and why.
///
/// Boxed so that `Result<_, HookError>` stays one word wide on the call path.
pub struct HookError(Box<Inner>);

struct Inner {
    hook: &'static str,
    plugin: Option<&'static str>,
    kind: HookErrorKind,
}

/// Why a hook call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HookErrorKind {
    /// The implementation returned `Err`.
    Failed(PluginError),
    /// The implementation panicked; the panic was caught.
    Panicked(String),
    /// The implementation overran the hook's time limit.
    TimedOut(Duration),
    /// The hook has a time limit, which needs a Tokio runtime, and the call
    /// ran outside one; no implementation ran.
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
        HookError(Box::new(Inner { hook, plugin, kind }))
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
        from_next: usize,
    ) -> Self {
        if outermost(&error).is_some_and(|e| e.id() == from_next) {
            return error.downcast().expect("outermost is a HookError");
        }
        Self::from_impl(hook, plugin, error)
    }

    /// The identity of this error while it travels through one call (the
    /// address of its boxed inside): how a wrapper's pass-through of
    /// `next`'s error is told from a new error.
    pub(crate) fn id(&self) -> usize {
        &*self.0 as *const Inner as usize
    }

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
                Err(_) => "(non-string panic payload)".to_owned(),
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

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Inner { hook, plugin, kind } = &*self.0;
        let plugin = plugin.unwrap_or("?");
        match kind {
            HookErrorKind::Failed(e) => {
                write!(f, "plugin `{plugin}` failed in hook `{hook}`: {e}")
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

impl std::error::Error for HookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause().map(|e| e.as_ref() as _)
    }
}

/// What an async implementation that overran its time limit is taken to
/// have returned; [`HookError::from_impl`] turns it into `TimedOut`.
#[derive(Debug)]
pub(crate) struct TimeLimit(pub(crate) Duration);

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "time limit of {:?} exceeded", self.0)
    }
}

impl std::error::Error for TimeLimit {}

/// A change to the [`PluginManager`](crate::PluginManager) was refused; the
/// manager is exactly as it was before the call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// `register` with a name already registered.
    #[error("a plugin named `{0}` is already registered")]
    DuplicateName(String),
    /// `register` with a name blocked by `set_blocked`.
    #[error("plugin name `{0}` is blocked")]
    Blocked(String),
    /// A name that no registered plugin has.
    #[error("no plugin named `{0}` is registered")]
    UnknownPlugin(String),
    /// A plugin declares an implementation the spec cannot accept.
    #[error("plugin `{plugin}` cannot implement hook `{hook}` of `{spec}`: {reason}")]
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
    /// Replaying a historic call to the new plugin failed; it was not registered.
    #[error("plugin `{plugin}` was not registered: replaying a historic call failed: {error}")]
    HistoricReplay {
        /// The plugin.
        plugin: String,
        /// The failure.
        #[source]
        error: HookError,
    },
}
