//! [`ApiError`]: what the API answers when something goes wrong, and what a
//! plugin returns to choose the status its failure maps to.

use std::sync::Arc;

use serde_json::{Value, json};

use hooks_core::{HookError, HookErrorKind};

/// An error with an HTTP status, answered as JSON
/// `{"error": {"code", "message", ...details}}`.
///
/// A plugin may return one from a hook (`Err(ApiError::conflict(..).into())`)
/// or a route: the API then answers with its status.
///
/// ```
/// use hookspecs::ApiError;
/// use hookspecs::serde_json::json;
///
/// let err = ApiError::invalid("name", "name must not be empty").with("max", 80);
/// assert_eq!(err.status, 422);
/// assert_eq!(
///     err.body(),
///     json!({"error": {"code": "invalid", "message": "name must not be empty",
///                      "field": "name", "max": 80}})
/// );
/// ```
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code (`not_found`, `conflict`, ...).
    pub code: String,
    /// For people.
    pub message: String,
    /// Extra fields merged into the error object (`field`, `plugin`, `hook`, ...).
    pub details: serde_json::Map<String, Value>,
    /// The hook failure this error reports, if it reports one: kept so that
    /// a plugin passing it on with `?` passes on the whole story (which
    /// plugin really failed, how deep the calls went).
    hook_error: Option<Arc<HookError>>,
    /// The operation lost a race with a concurrent one (a serialization
    /// failure, a deadlock, a row it checked changed under it): running it
    /// again from the start is the fix, which the host does.
    retry: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.hook_error.as_deref().map(|e| e as _)
    }
}

/// Equal when what the client sees is equal.
impl PartialEq for ApiError {
    fn eq(&self, other: &Self) -> bool {
        (self.status, &self.code, &self.message, &self.details)
            == (other.status, &other.code, &other.message, &other.details)
    }
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            details: serde_json::Map::new(),
            hook_error: None,
            retry: false,
        }
    }

    /// Adds a detail field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// 400: the request cannot be read (malformed JSON, ...).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 401: no recognised credential.
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` is required",
        )
    }

    /// 403: recognised, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// 404: no such thing.
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::new(404, "not_found", format!("no {what} with id {id}")).with("resource", what)
    }

    /// 409: conflicts with existing data.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// 422: well-formed, but a field is invalid.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(422, "invalid", message).with("field", field)
    }

    /// 413: `what` ("the body", "the statement") is larger than `limit`
    /// bytes, which the client also gets as the `limit` field. Every size
    /// limit answers with this one error.
    pub fn too_large(what: &str, limit: usize) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("{what} exceeds the limit of {}", Size(limit)),
        )
        .with("limit", limit)
    }

    /// 500: something failed on our side.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = self.details.clone();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        json!({ "error": error })
    }
}

/// A failed hook becomes the API's answer, naming with `plugin` and `hook`
/// the implementation that really failed, however deeply nested (through
/// hook calls, and through services whose errors a plugin passed on).
///
/// When that plugin failed with its own `ApiError`, the client gets it as
/// the plugin wrote it: status, code, message and extra fields (so a client
/// can tell a quota refusal from a crash). Otherwise (another error, a
/// panic, a timeout, runaway recursion) the answer is a 500 (504 for a
/// timeout) with a `hook_*` code and a message telling the whole chain.
impl From<HookError> for ApiError {
    fn from(error: HookError) -> Self {
        let failed = innermost(&error);
        let carried = failed.cause().and_then(|c| c.downcast_ref::<ApiError>());
        let mut api = match (carried, failed.kind()) {
            (Some(own), _) => ApiError {
                hook_error: None,
                ..own.clone()
            },
            (None, kind) => {
                let (status, code) = match kind {
                    HookErrorKind::TooDeep { .. } => (500, "hook_recursion"),
                    HookErrorKind::TimedOut(_) => (504, "hook_timeout"),
                    _ => (500, "hook_failed"),
                };
                ApiError::new(status, code, error.to_string())
            }
        };
        api = api.with("hook", failed.hook());
        if let Some(plugin) = failed.plugin() {
            api = api.with("plugin", plugin);
        }
        api.retry = lost_a_race(&error);
        api.hook_error = Some(Arc::new(error));
        api
    }
}

/// Whether any error down the chain of a hook failure says the operation
/// lost a race: an [`ApiError`] that says so, or a database error that does.
fn lost_a_race(error: &HookError) -> bool {
    let mut at: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = at {
        let retry = match e.downcast_ref::<ApiError>() {
            Some(api) => api.retry,
            None => database_race(e),
        };
        if retry {
            return true;
        }
        at = e.source().or_else(|| {
            e.downcast_ref::<HookError>()
                .and_then(HookError::cause)
                .map(|c| c.as_ref() as &(dyn std::error::Error + 'static))
        });
    }
    false
}

/// Whether `error` is a database error that lost a race (a component has
/// no database connection: its races come back as [`ApiError`]s).
#[cfg(not(target_family = "wasm"))]
fn database_race(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<sqlx::Error>().is_some_and(is_race)
}

#[cfg(target_family = "wasm")]
fn database_race(_: &(dyn std::error::Error + 'static)) -> bool {
    false
}

/// PostgreSQL's serialization failure (40001) and deadlock (40P01), and
/// its shared memory for tracking SERIALIZABLE conflicts running out under
/// a burst of concurrent transactions (53200, "not enough elements in
/// RWConflictPool"): each passes once the colliding transactions end, so
/// the operation is run again, and answers 503 if it keeps failing.
#[cfg(not(target_family = "wasm"))]
fn is_race(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    matches!(db.code().as_deref(), Some("40001" | "40P01" | "53200"))
}

impl ApiError {
    /// A race lost with a concurrent operation: the host runs the whole
    /// operation again. The host's, not a plugin's.
    #[doc(hidden)]
    pub fn race(message: impl Into<String>) -> Self {
        ApiError {
            retry: true,
            ..ApiError::new(503, "busy", message)
        }
    }

    /// Whether running the operation again may succeed (see [`ApiError::race`]).
    #[doc(hidden)]
    pub fn is_race(&self) -> bool {
        self.retry
    }
}

/// The last hook error down the chain of causes.
fn innermost(error: &HookError) -> &HookError {
    let mut failed = error;
    let mut at: &(dyn std::error::Error + 'static) = error;
    while let Some(next) = at.source() {
        if let Some(hook_error) = next.downcast_ref::<HookError>() {
            failed = hook_error;
        }
        at = next;
    }
    failed
}

#[cfg(not(target_family = "wasm"))]
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if is_race(&error) {
            return ApiError::race(format!("lost a race with a concurrent operation: {error}"));
        }
        tracing::error!(%error, "database error");
        ApiError::internal(format!("database error: {error}"))
    }
}

/// A number of bytes as people write limits: `1 MiB`, `64 KiB`, `100 bytes`.
struct Size(usize);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const KIB: usize = 1024;
        const MIB: usize = 1024 * KIB;
        match self.0 {
            n if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            n if n >= KIB && n % KIB == 0 => write!(f, "{} KiB", n / KIB),
            n => write!(f, "{n} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_limit_is_one_error_with_the_limit_in_bytes_and_in_words() {
        for (limit, words) in [
            (100, "100 bytes"),
            (65_536, "64 KiB"),
            (1 << 20, "1 MiB"),
            (1_500_000, "1500000 bytes"),
        ] {
            let error = ApiError::too_large("the body", limit);
            assert_eq!(
                (error.status, error.code.as_str()),
                (413, "payload_too_large")
            );
            assert_eq!(
                error.message,
                format!("the body exceeds the limit of {words}")
            );
            assert_eq!(error.details["limit"], limit);
        }
    }

    /// A database error with only a code, as the drivers report one.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn conflicts_and_exhausted_conflict_tracking_run_the_operation_again() {
        for code in ["40001", "40P01", "53200"] {
            let error = ApiError::from(sqlx::Error::Database(Box::new(Coded(code))));
            assert!(error.is_race(), "{code}");
            assert_eq!(error.status, 503, "{code}");
        }
        let error = ApiError::from(sqlx::Error::Database(Box::new(Coded("23505"))));
        assert!(!error.is_race());
        assert_eq!(error.status, 500);
    }
}
