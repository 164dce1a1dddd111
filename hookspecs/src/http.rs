//! What route handlers see of HTTP, core and plugin alike: [`Request`] in,
//! [`Reply`] out, and [`Startup`] / [`Routes`] to add routes during startup.
//! Never the router's or hyper's own types.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::{HookContext, PluginConfigs};
use crate::error::ApiError;
use crate::model::Identity;
use crate::page::Page;

/// The HTTP methods a route may answer (HEAD is answered by every GET route).
///
/// ```
/// use hookspecs::Method;
///
/// assert_eq!(Method::Patch.as_str(), "PATCH");
/// // Only GET reads: every other method gets a writing unit of work.
/// let writing: Vec<_> = Method::ALL.into_iter().filter(|m| m.writes()).collect();
/// assert_eq!(writing, [Method::Post, Method::Put, Method::Patch, Method::Delete]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// Every method a route can have.
    pub const ALL: [Method; 5] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
    ];

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Whether a request with this method may change data: such a request
    /// gets a writing unit of work and runs to its end even if its client
    /// goes away.
    pub fn writes(self) -> bool {
        self != Method::Get
    }
}

/// What a handler answers: a status and a JSON body.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`Value::Null` for none).
    pub body: Value,
    /// For a page of a list: the next page, if there is one (answered as a
    /// `Link: <path?limit=N&after=ID>; rel="next"` header, which carries no
    /// other query parameter).
    pub next: Option<Page>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: Value) -> Self {
        Reply {
            status: 200,
            body,
            next: None,
        }
    }

    /// 201 with `body`.
    pub fn created(body: Value) -> Self {
        Reply {
            status: 201,
            ..Reply::ok(body)
        }
    }

    /// 204, no body.
    pub fn no_content() -> Self {
        Reply {
            status: 204,
            ..Reply::ok(Value::Null)
        }
    }

    /// 200 with one page of a list, as a JSON array; `key` gives the
    /// cursor of an item (its id). When the page is full, the reply names
    /// the next page.
    ///
    /// ```
    /// use hookspecs::{Page, Reply};
    ///
    /// let ids = [3_i64, 5, 8];
    /// let reply = Reply::page(&ids, Page::first(3), |id| *id)?;
    /// assert_eq!(reply.body, hookspecs::serde_json::json!([3, 5, 8]));
    /// // Full: the next page starts after the last item.
    /// assert_eq!(reply.next, Some(Page { after: Some(8), limit: 3 }));
    /// let last = Reply::page(&ids[..2], Page::first(3), |id| *id)?;
    /// assert_eq!(last.next, None);
    /// # Ok::<(), hookspecs::ApiError>(())
    /// ```
    ///
    /// # Errors
    /// 500 if an item cannot be serialized.
    pub fn page<T: serde::Serialize>(
        items: &[T],
        page: Page,
        key: impl Fn(&T) -> i64,
    ) -> Result<Self, ApiError> {
        let body =
            serde_json::to_value(items).map_err(|e| ApiError::internal(format!("reply: {e}")))?;
        let full = items.len() >= page.limit as usize;
        Ok(Reply {
            next: items.last().filter(|_| full).map(|last| Page {
                after: Some(key(last)),
                limit: page.limit,
            }),
            ..Reply::ok(body)
        })
    }
}

impl From<Value> for Reply {
    fn from(body: Value) -> Self {
        Reply::ok(body)
    }
}

/// Who may call a route; checked before the body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Anyone; the identity is given to the handler if a credential was sent.
    Public,
    /// A recognised credential (401 otherwise).
    SignedIn,
    /// An admin credential (401 without a credential, 403 with another).
    Admin,
}

/// A request to a route, core or plugin: its path and query parameters,
/// its JSON body, and its context (the unit of work, who is calling, the
/// services). The application makes it; a handler reads it. Each reader
/// that can fail answers the [`ApiError`] the client should get, so `?`
/// is the whole error handling:
///
/// ```
/// use hookspecs::prelude::*;
/// use hookspecs::{Method, RouteError};
/// # use hookspecs::host::{self, RouteTable};
///
/// #[derive(serde::Deserialize)]
/// struct Note {
///     text: String,
/// }
///
/// fn add_routes(startup: &Startup) -> Result<(), RouteError> {
///     // GET /plugins/notes/spaces/:id/notes?after=N&limit=M
///     startup.routes().get("/spaces/:id/notes", |req: Request| async move {
///         let space = req.id_param("id")?;     // 404 unless an id
///         let page = req.page()?;              // 422 naming `after` or `limit`
///         let mine = req.query("mine") == Some("1");
///         let viewer = req.identity().map(|who| who.name.as_str()); // None: anonymous
///         let (method, path) = (req.method().as_str(), req.path());
///         tracing::debug!(method, path, id = req.param("id"), "listing");
///         Ok(json!({"space": space, "limit": page.limit, "mine": mine, "viewer": viewer}))
///     })?;
///     // POST /plugins/notes/spaces/:id/notes with {"text": ...}
///     startup.routes().signed_in().post("/spaces/:id/notes", |req: Request| async move {
///         let who = req.require_identity()?;   // 401 without a credential
///         tracing::debug!(body = ?req.body(), "new note"); // the JSON as sent
///         let note: Note = req.json()?;        // 422 naming the field
///         let space = req.id_param("id")?;
///         let insert =
///             "INSERT INTO plugin_notes_notes (space_id, author, text) VALUES ($1, $2, $3)";
///         sqlx::query(insert)
///             .bind(space)
///             .bind(&who.name)
///             .bind(&note.text)
///             .execute(&mut *req.ctx().db().await?) // the request's transaction
///             .await?;
///         Ok(Reply::created(json!({"space": space, "text": note.text})))
///     })?;
///     Ok(())
/// }
///
/// // What the app does at startup:
/// let table = RouteTable::default();
/// add_routes(&host::startup("notes", table.clone(), Default::default()))?;
/// let routes: Vec<_> = table.routes().iter().map(|r| (r.method, r.path.clone())).collect();
/// assert_eq!(routes, [
///     (Method::Get, "/plugins/notes/spaces/:id/notes".to_owned()),
///     (Method::Post, "/plugins/notes/spaces/:id/notes".to_owned()),
/// ]);
/// # Ok::<(), RouteError>(())
/// ```
pub struct Request {
    method: Method,
    path: String,
    params: Arc<[(String, String)]>,
    query: Arc<HashMap<String, String>>,
    body: Option<Arc<Value>>,
    ctx: HookContext,
}

impl Request {
    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The path, as requested (percent-decoded).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A path parameter (`/items/:id` gives `param("id")`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A path parameter parsed as an id.
    ///
    /// # Errors
    /// 404 if it is not a number: no resource can have that id.
    pub fn id_param(&self, name: &str) -> Result<i64, ApiError> {
        let raw = self.param(name).unwrap_or_default();
        raw.parse()
            .map_err(|_| ApiError::new(404, "not_found", "no such resource"))
    }

    /// A query-string parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The page of a list the request asks for: `?after=N&limit=M`.
    ///
    /// # Errors
    /// 422 naming `after` or `limit` when either is not a number, or
    /// `limit` is 0 or above [`Page::MAX_LIMIT`].
    pub fn page(&self) -> Result<Page, ApiError> {
        let after = match self.query("after") {
            None => None,
            Some(raw) => Some(
                raw.parse()
                    .map_err(|_| ApiError::invalid("after", "after must be an id"))?,
            ),
        };
        let limit = match self.query("limit") {
            None => Page::DEFAULT_LIMIT,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| (1..=Page::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid("limit", format!("limit must be 1 to {}", Page::MAX_LIMIT))
                })?,
        };
        Ok(Page { after, limit })
    }

    /// The JSON body, if the request had one.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_deref()
    }

    /// The JSON body, an object, as `T`.
    ///
    /// # Errors
    /// 422 naming the field that does not fit (`body` when there is no
    /// JSON object at all).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        match self.body.as_deref() {
            Some(body @ Value::Object(_)) => from_json(body.clone()),
            _ => Err(ApiError::invalid("body", "the body must be a JSON object")),
        }
    }

    /// Who is calling, if they sent a recognised credential.
    pub fn identity(&self) -> Option<&Identity> {
        self.ctx.actor()
    }

    /// Who is calling.
    ///
    /// # Errors
    /// 401 if nobody was recognised.
    pub fn require_identity(&self) -> Result<&Identity, ApiError> {
        self.identity().ok_or_else(ApiError::unauthorized)
    }

    /// The request's unit of work and the application's services: what the
    /// handler writes commits if it answers `Ok`, rolls back otherwise.
    pub fn ctx(&self) -> &HookContext {
        &self.ctx
    }

    /// Its parts without the context (what a component's handler gets).
    pub(crate) fn parts(&self) -> RequestParts {
        RequestParts {
            method: self.method,
            path: self.path.clone(),
            params: self.params.clone(),
            query: self.query.clone(),
            body: self.body.clone(),
        }
    }
}

/// The parts of a request the pipeline reads once and hands to every
/// attempt of its handler (an operation may be re-run).
#[derive(Clone, Debug)]
pub struct RequestParts {
    /// The method.
    pub method: Method,
    /// The percent-decoded path.
    pub path: String,
    /// Path parameters.
    pub params: Arc<[(String, String)]>,
    /// Query-string parameters.
    pub query: Arc<HashMap<String, String>>,
    /// The JSON body, if any.
    pub body: Option<Arc<Value>>,
}

/// [`RequestParts`] as JSON: what crosses into a component's route
/// handler (the WIT `routes.handle`).
#[derive(serde::Serialize, serde::Deserialize)]
struct WireRequest {
    method: Method,
    path: String,
    params: Vec<(String, String)>,
    query: HashMap<String, String>,
    body: Option<Value>,
}

impl RequestParts {
    /// The parts as JSON, for a component's route handler.
    pub fn to_json(&self) -> String {
        let wire = WireRequest {
            method: self.method,
            path: self.path.clone(),
            params: self.params.to_vec(),
            query: (*self.query).clone(),
            body: self.body.as_deref().cloned(),
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// The parts from their JSON ([`to_json`](Self::to_json)).
    ///
    /// # Errors
    /// 500 if `json` is not what `to_json` writes.
    pub fn from_json(json: &str) -> Result<RequestParts, ApiError> {
        let wire: WireRequest = crate::util::parse("the request", json)?;
        Ok(RequestParts {
            method: wire.method,
            path: wire.path,
            params: wire.params.into(),
            query: Arc::new(wire.query),
            body: wire.body.map(Arc::new),
        })
    }

    /// The request handed to one attempt of a handler.
    pub fn with(&self, ctx: HookContext) -> Request {
        let RequestParts {
            method,
            path,
            params,
            query,
            body,
        } = self.clone();
        Request {
            method,
            path,
            params,
            query,
            body,
            ctx,
        }
    }
}

/// Deserializes JSON into `T`.
///
/// # Errors
/// 422 naming the field that does not fit.
///
/// ```
/// use hookspecs::{NewSpace, from_json};
/// use hookspecs::serde_json::json;
///
/// let wrong = from_json::<NewSpace>(json!({"name": "lab", "access": "x"})).unwrap_err();
/// assert_eq!((wrong.status, wrong.code.as_str()), (422, "invalid"));
/// assert!(wrong.message.starts_with("access: unknown variant `x`"), "{}", wrong.message);
/// let missing = from_json::<NewSpace>(json!({"access": "open"})).unwrap_err();
/// assert!(missing.message.starts_with("name: missing field"), "{}", missing.message);
/// ```
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field in its message; the path is the
        // object's that lacks it.
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (field.as_str(), missing) {
            (".", Some(missing)) => missing.to_owned(),
            // Not a JSON object at all (no body, `null`, a number...).
            (".", None) => "body".to_owned(),
            (object, Some(missing)) => format!("{object}.{missing}"),
            (_, None) => field,
        };
        ApiError::invalid(&field, format!("{field}: {inner}"))
    })
}

/// A route handler, type-erased: the one handler type of core and plugin
/// routes.
pub type Handler =
    Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Reply, ApiError>> + Send + Sync>;

/// One route of the table.
#[derive(Clone)]
pub struct RouteDef {
    /// The method.
    pub method: Method,
    /// The full path pattern (`/plugins/<name>/items/:id`).
    pub path: String,
    /// Who registered it (a plugin name, or `app` for core routes).
    pub owner: String,
    /// Who may call it.
    pub guard: Guard,
    /// What answers it.
    pub handler: Handler,
}

impl RouteDef {
    /// A route answered by `handler`.
    pub fn new<F, Fut, R>(method: Method, path: &str, owner: &str, guard: Guard, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
        R: Into<Reply>,
    {
        let handler: Handler = Arc::new(move |req| {
            let reply = handler(req);
            Box::pin(async move { reply.await.map(Into::into) })
        });
        RouteDef {
            method,
            path: path.to_owned(),
            owner: owner.to_owned(),
            guard,
            handler,
        }
    }
}

impl std::fmt::Debug for RouteDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method.as_str(), self.path, self.owner)
    }
}

/// Why a route was refused. Its message names the plugin, the route and
/// what to write instead.
///
/// ```
/// use hookspecs::prelude::*;
/// use hookspecs::RouteError;
/// # use hookspecs::host::{self, RouteTable};
///
/// # let startup = host::startup("greeter", RouteTable::default(), Default::default());
/// // In `on_plugins_loaded`:
/// let routes = startup.routes();
/// let other_syntax = routes.get("/greetings/{id}", |_req: Request| async { Ok(json!({})) });
/// let Err(error @ RouteError::InvalidPath { .. }) = other_syntax else { panic!() };
/// assert!(error.to_string().contains("as in `/greetings/:id`"), "{error}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Startup is over: routes are only added in `on_plugins_loaded`.
    #[error(
        "plugin `{plugin}` tried to add route {method} {path} after startup; routes can only be added in on_plugins_loaded"
    )]
    Frozen {
        /// The plugin.
        plugin: String,
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
    },
    /// Another route already answers that method and path.
    #[error(
        "route {method} {path} of `{owner}` clashes with {method} {existing} of `{existing_owner}`"
    )]
    Clash {
        /// The method.
        method: &'static str,
        /// The refused route's path.
        path: String,
        /// Who asked for it.
        owner: String,
        /// The route it clashes with.
        existing: String,
        /// Who has that one.
        existing_owner: String,
    },
    /// Not a usable path.
    #[error("plugin `{plugin}`: invalid route path `{path}`: {reason}")]
    InvalidPath {
        /// The plugin.
        plugin: String,
        /// The path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Every route of the application, core and plugin: where clashes are
/// found. Frozen when startup ends. The host's, not a plugin's.
#[derive(Clone, Default)]
pub struct RouteTable(Arc<Mutex<Table>>);

#[derive(Default)]
struct Table {
    routes: Vec<RouteDef>,
    frozen: bool,
}

impl RouteTable {
    /// Adds a route, unless frozen or clashing with one already there.
    ///
    /// # Errors
    /// [`RouteError::Frozen`] or [`RouteError::Clash`].
    pub fn add(&self, route: RouteDef) -> Result<(), RouteError> {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if table.frozen {
            return Err(RouteError::Frozen {
                plugin: route.owner,
                method: route.method.as_str(),
                path: route.path,
            });
        }
        let wanted = shape(&route.path);
        let same_shape = || table.routes.iter().filter(|r| shape(&r.path) == wanted);
        if let Some(existing) = same_shape().find(|r| r.method == route.method) {
            return Err(RouteError::Clash {
                method: route.method.as_str(),
                path: route.path,
                owner: route.owner,
                existing: existing.path.clone(),
                existing_owner: existing.owner.clone(),
            });
        }
        // One path, one pattern: the router finds a path's routes through
        // its first spelling, and a second would never be reached.
        if same_shape().any(|r| r.path != route.path) {
            return Err(RouteError::InvalidPath {
                plugin: route.owner,
                path: route.path,
                reason: "another route of this path spells it otherwise (its parameters' \
                         names, a trailing `/`): spell it the same for every method",
            });
        }
        table.routes.push(route);
        Ok(())
    }

    /// Removes every route of `owner` (a plugin that failed at startup).
    pub fn remove_owner(&self, owner: &str) {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.routes.retain(|r| r.owner != owner);
    }

    /// The routes added so far.
    pub fn routes(&self) -> Vec<RouteDef> {
        let table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.routes.clone()
    }

    /// Ends startup: no route can be added any more. Returns the routes.
    pub fn freeze(&self) -> Vec<RouteDef> {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.frozen = true;
        table.routes.clone()
    }
}

/// A path with parameter names erased: two routes with the same shape match
/// the same requests.
fn shape(path: &str) -> Vec<&str> {
    path.trim_end_matches('/')
        .split('/')
        .map(|s| if s.starts_with(':') { ":" } else { s })
        .collect()
}

/// What `on_plugins_loaded` gets: the only way to add routes.
///
/// ```
/// use hookspecs::prelude::*;
/// use hookspecs::{Method, RouteError};
/// # use hookspecs::host::{self, RouteTable};
///
/// fn add_routes(startup: &Startup) -> Result<(), RouteError> {
///     let routes = startup.routes();
///     routes.get("/greetings/:id", |req: Request| async move {
///         let id = req.id_param("id")?;                 // 404 unless an id
///         Ok(json!({"id": id}))
///     })?;
///     routes.signed_in().post("/greetings", |req: Request| async move {
///         let body: serde_json::Value = req.json()?;   // 400 or 422, naming the field
///         Ok(Reply::created(body))
///     })?;
///     Ok(())
/// }
///
/// // What the app does at startup (a plugin never does this part):
/// let table = RouteTable::default();
/// let startup = host::startup("greeter", table.clone(), Default::default());
/// add_routes(&startup)?;
/// let paths: Vec<_> = table.routes().iter().map(|r| (r.method, r.path.clone())).collect();
/// assert!(paths.contains(&(Method::Get, "/plugins/greeter/greetings/:id".to_owned())));
/// // A clash is refused, naming both owners:
/// assert!(add_routes(&startup).is_err());
/// // After startup the table is frozen, and so is every handle:
/// table.freeze();
/// let late = startup.routes().get("/late", |_req: Request| async { Ok(json!({})) });
/// assert!(matches!(late, Err(RouteError::Frozen { .. })));
/// # Ok::<(), RouteError>(())
/// ```
pub struct Startup {
    pub(crate) plugin: String,
    pub(crate) table: RouteTable,
    pub(crate) configs: Arc<PluginConfigs>,
}

impl Startup {
    /// The plugin this startup handle belongs to.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The plugin's configuration (`[plugins.<name>]`), if any.
    pub fn config(&self) -> Option<&Value> {
        self.configs.0.get(&self.plugin)
    }

    /// Adds routes under `/plugins/<name>/`, open to anyone (the handler
    /// gets the caller's identity if they sent a credential, and decides).
    /// A handle kept past startup refuses every route with
    /// [`RouteError::Frozen`].
    ///
    /// ```
    /// # use hookspecs::prelude::*;
    /// # fn f(startup: &Startup) -> Result<(), hookspecs::RouteError> {
    /// startup.routes().get("/hello", |_req: Request| async { Ok(json!({"hello": "world"})) })?;
    /// startup.routes().admin().get("/stats", |_req: Request| async { Ok(json!({})) })?;
    /// # Ok(()) }
    /// ```
    pub fn routes(&self) -> Routes {
        Routes {
            plugin: self.plugin.clone(),
            table: self.table.clone(),
            guard: Guard::Public,
        }
    }
}

/// Adds a plugin's routes, mounted under `/plugins/<name>/`.
#[derive(Clone)]
pub struct Routes {
    plugin: String,
    table: RouteTable,
    guard: Guard,
}

macro_rules! method_fns {
    ($($name:ident => $method:ident),*) => {$(
        #[doc = concat!("Adds a `", stringify!($method), "` route: `path` is relative to `/plugins/<name>`, `:name` segments are parameters.")]
        ///
        /// # Errors
        /// [`RouteError`]: after startup, on a clash, or for an invalid path.
        pub fn $name<F, Fut, R>(&self, path: &str, handler: F) -> Result<(), RouteError>
        where
            F: Fn(Request) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
            R: Into<Reply>,
        {
            self.add(Method::$method, path, handler)
        }
    )*};
}

impl Routes {
    method_fns!(get => Get, post => Post, put => Put, patch => Patch, delete => Delete);

    /// The routes added through the returned handle need a recognised
    /// credential: 401 before the handler runs (and before the body is read).
    pub fn signed_in(&self) -> Routes {
        Routes {
            guard: Guard::SignedIn,
            ..self.clone()
        }
    }

    /// The routes added through the returned handle are for the admin only.
    pub fn admin(&self) -> Routes {
        Routes {
            guard: Guard::Admin,
            ..self.clone()
        }
    }

    /// Adds a route for `method`.
    ///
    /// # Errors
    /// [`RouteError`]: after startup, on a clash, or for an invalid path.
    pub fn add<F, Fut, R>(&self, method: Method, path: &str, handler: F) -> Result<(), RouteError>
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
        R: Into<Reply>,
    {
        if let Err(reason) = check_path(path) {
            return Err(RouteError::InvalidPath {
                plugin: self.plugin.clone(),
                path: path.to_owned(),
                reason,
            });
        }
        let full = format!("/plugins/{}{}", self.plugin, path.trim_end_matches('/'));
        self.table.add(RouteDef::new(
            method,
            &full,
            &self.plugin,
            self.guard,
            handler,
        ))
    }
}

/// Why `path` cannot be a plugin route's path, if it cannot. The syntax of
/// other routers (`{id}`, `<id>`, `*rest`) would otherwise be taken
/// literally and never match.
fn check_path(path: &str) -> Result<(), &'static str> {
    const PARAMETER: &str = "a path parameter is a whole segment written `:name` (letters, \
                             digits, `_`), as in `/greetings/:id` (not `{id}`, `<id>` or `*`)";
    if !path.starts_with('/') || path.contains("//") || path.contains(['?', '#']) {
        return Err("a route path starts with `/` and holds no `//`, `?` or `#`");
    }
    let is_name = |name: &str| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    for segment in path.split('/').skip(1) {
        let literal = !segment.contains([':', '{', '}', '<', '>', '*']);
        if !literal && !segment.strip_prefix(':').is_some_and(is_name) {
            return Err(PARAMETER);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Guard, RouteDef, RouteError, RouteTable, check_path};
    use crate::{Method, Reply, Request};

    fn route(method: Method, path: &str) -> RouteDef {
        RouteDef::new(method, path, "p", Guard::Public, |_: Request| async {
            Ok(Reply::no_content())
        })
    }

    /// The router finds a path's routes by its first spelling: another
    /// spelling would never be reached.
    #[test]
    fn a_path_names_its_parameters_one_way_for_every_method() {
        let table = RouteTable::default();
        table.add(route(Method::Get, "/x/:id")).unwrap();
        for other in ["/x/:name", "/x/:id/"] {
            let refused = table.add(route(Method::Delete, other)).unwrap_err();
            assert!(
                matches!(&refused, RouteError::InvalidPath { path, .. } if path == other),
                "{refused}"
            );
            assert!(
                refused.to_string().contains("spells it otherwise"),
                "{refused}"
            );
        }
        table.add(route(Method::Delete, "/x/:id")).unwrap();
        table.add(route(Method::Get, "/x/:name/y")).unwrap();
    }

    #[test]
    fn route_paths_take_colon_parameters_and_refuse_other_routers_syntax() {
        for good in [
            "/",
            "/hello",
            "/greetings/:id",
            "/a/:space_id/b/:user_id",
            "/x/",
        ] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
        for bad in [
            "/greetings/{id}",
            "/greetings/<id>",
            "/files/*rest",
            "/a/:",
            "/a/x:y",
            "/a/:b-c",
        ] {
            let why = check_path(bad).expect_err(bad);
            assert!(why.contains("`/greetings/:id`"), "{bad}: {why}");
        }
        for bad in ["hello", "/a//b", "/a?b", "/a#b"] {
            assert!(
                check_path(bad).expect_err(bad).contains("starts with `/`"),
                "{bad}"
            );
        }
    }
}
