//! What plugins see of HTTP: [`Startup`] and [`Routes`] to add routes during
//! startup, [`PluginRequest`] and [`Reply`] in handlers. Never the router's
//! own types.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::{HookContext, PluginConfigs};
use crate::error::ApiError;
use crate::model::Identity;

/// The HTTP methods a route may answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

/// What a handler answers: a status and a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`Value::Null` for none).
    pub body: Value,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: Value) -> Self {
        Reply { status: 200, body }
    }

    /// 201 with `body`.
    pub fn created(body: Value) -> Self {
        Reply { status: 201, body }
    }

    /// 204, no body.
    pub fn no_content() -> Self {
        Reply {
            status: 204,
            body: Value::Null,
        }
    }
}

impl From<Value> for Reply {
    fn from(body: Value) -> Self {
        Reply::ok(body)
    }
}

/// A request to a plugin route.
pub struct PluginRequest {
    /// The method.
    pub method: Method,
    /// The full path, as requested.
    pub path: String,
    params: HashMap<String, String>,
    query: HashMap<String, String>,
    body: Option<Value>,
    ctx: HookContext,
}

impl PluginRequest {
    /// Built by the application for each request.
    pub fn new(
        method: Method,
        path: String,
        params: HashMap<String, String>,
        query: HashMap<String, String>,
        body: Option<Value>,
        ctx: HookContext,
    ) -> Self {
        PluginRequest {
            method,
            path,
            params,
            query,
            body,
            ctx,
        }
    }

    /// A path parameter (`/items/:id` gives `param("id")`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A path parameter parsed as an id; 404 if it is not a number.
    pub fn id_param(&self, name: &str) -> Result<i64, ApiError> {
        let raw = self.param(name).unwrap_or_default();
        raw.parse()
            .map_err(|_| ApiError::new(404, "not_found", format!("no resource `{raw}`")))
    }

    /// A query-string parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The JSON body, if the request had one.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// The JSON body as `T`: 422 naming the field that does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        from_json(self.body.clone().unwrap_or(Value::Null))
    }

    /// Who is calling, if they sent a recognised credential.
    pub fn identity(&self) -> Option<&Identity> {
        self.ctx.actor()
    }

    /// Who is calling; 401 if nobody recognised.
    pub fn require_identity(&self) -> Result<&Identity, ApiError> {
        self.identity().ok_or_else(ApiError::unauthorized)
    }

    /// The request's unit of work and the application's services: what the
    /// handler writes commits if it answers `Ok`, rolls back otherwise.
    pub fn ctx(&self) -> &HookContext {
        &self.ctx
    }
}

/// Deserializes JSON into `T`; a mismatch is a 422 naming the field.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field in its message, not in the path.
        let field = match (field.as_str(), inner.split('`').nth(1)) {
            (".", Some(missing)) if inner.starts_with("missing field") => missing.to_owned(),
            // Not a JSON object at all (no body, `null`, a number...).
            (".", _) => "body".to_owned(),
            _ => field,
        };
        ApiError::invalid(&field, format!("{field}: {inner}"))
    })
}

/// A route handler, type-erased.
pub type Handler =
    Arc<dyn Fn(PluginRequest) -> BoxFuture<'static, Result<Reply, ApiError>> + Send + Sync>;

/// One route of the table.
#[derive(Clone)]
pub struct RouteDef {
    /// The method.
    pub method: Method,
    /// The full path pattern (`/plugins/<name>/items/:id`).
    pub path: String,
    /// Who registered it (a plugin name, or `app` for core routes).
    pub owner: String,
    /// Plugin routes only: the handler. Core routes are the app's own.
    pub handler: Option<Handler>,
}

impl std::fmt::Debug for RouteDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method.as_str(), self.path, self.owner)
    }
}

/// Why a route was refused.
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

/// Every route of the application, core and plugin: where clashes are found.
/// Frozen when startup ends.
#[derive(Clone, Default)]
pub struct RouteTable(Arc<Mutex<Table>>);

#[derive(Default)]
struct Table {
    routes: Vec<RouteDef>,
    frozen: bool,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route, unless frozen or clashing with one already there.
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
        if let Some(existing) = table
            .routes
            .iter()
            .find(|r| r.method == route.method && shape(&r.path) == wanted)
        {
            return Err(RouteError::Clash {
                method: route.method.as_str(),
                path: route.path,
                owner: route.owner,
                existing: existing.path.clone(),
                existing_owner: existing.owner.clone(),
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
pub struct Startup {
    plugin: String,
    table: RouteTable,
    configs: Arc<PluginConfigs>,
}

impl Startup {
    /// The application makes one per plugin.
    pub fn new(plugin: &str, table: RouteTable, configs: Arc<PluginConfigs>) -> Self {
        Startup {
            plugin: plugin.to_owned(),
            table,
            configs,
        }
    }

    /// The plugin this startup handle belongs to.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The plugin's configuration (`[plugins.<name>]`), if any.
    pub fn config(&self) -> Option<&Value> {
        self.configs.0.get(&self.plugin)
    }

    /// Adds routes under `/plugins/<name>/`. A handle kept past startup
    /// refuses every route with [`RouteError::Frozen`].
    pub fn routes(&self) -> Routes {
        Routes {
            plugin: self.plugin.clone(),
            table: self.table.clone(),
        }
    }
}

/// Adds a plugin's routes, mounted under `/plugins/<name>/`.
#[derive(Clone)]
pub struct Routes {
    plugin: String,
    table: RouteTable,
}

macro_rules! method_fns {
    ($($name:ident => $method:ident),*) => {$(
        #[doc = concat!("Adds a `", stringify!($method), "` route: `path` is relative to `/plugins/<name>`, `:name` segments are parameters.")]
        pub fn $name<F, Fut, R>(&self, path: &str, handler: F) -> Result<(), RouteError>
        where
            F: Fn(PluginRequest) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
            R: Into<Reply>,
        {
            self.add(Method::$method, path, handler)
        }
    )*};
}

impl Routes {
    method_fns!(get => Get, post => Post, put => Put, patch => Patch, delete => Delete);

    /// Adds a route for `method`.
    pub fn add<F, Fut, R>(&self, method: Method, path: &str, handler: F) -> Result<(), RouteError>
    where
        F: Fn(PluginRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
        R: Into<Reply>,
    {
        if !path.starts_with('/') || path.contains("//") || path.contains(['?', '#', '*']) {
            return Err(RouteError::InvalidPath {
                plugin: self.plugin.clone(),
                path: path.to_owned(),
                reason: "a route path starts with `/` and holds no `//`, `?`, `#` or `*`",
            });
        }
        let full = format!("/plugins/{}{}", self.plugin, path.trim_end_matches('/'));
        let handler = Arc::new(handler);
        let handler: Handler = Arc::new(move |req| {
            let reply = handler(req);
            Box::pin(async move { reply.await.map(Into::into) })
        });
        self.table.add(RouteDef {
            method,
            path: full,
            owner: self.plugin.clone(),
            handler: Some(handler),
        })
    }
}
