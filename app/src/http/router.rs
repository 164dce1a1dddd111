//! Route matching: routerify_ng's, behind [`Router::find`], the one
//! function that sees the router crate. Everything else works with the
//! [`PathMatch`] it returns.
//!
//! Each distinct path pattern is registered with routerify once, and a
//! request's path goes through it once: the pattern it matches knows which
//! route answers each method, so a 404, a 405 with its `Allow` list and an
//! `OPTIONS` answer all come from that one lookup. Only the path is handed
//! over: routerify's service for a live hyper request reads the whole body
//! before routing, and the pipeline decides route, method and credential
//! before reading a byte of it.
//!
//! routerify's answer for each path without parameters (`/health`,
//! `/plugins/x/status`) is asked once, when the table is built, and kept:
//! a request for exactly that path gets the same answer from a sorted table,
//! without routerify's per-request work (its request, regex set, captures
//! and boxed futures). Any other spelling of it (percent-encoded, say) still
//! goes through routerify.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use futures::FutureExt;
use hookspecs::Method;
use hookspecs::host::RouteDef;
use http_body_util::Full;
use hyper::Response;
use hyper::service::Service;
use routerify_ng::prelude::RequestExt;
use routerify_ng::{RequestService, RequestServiceBuilder};

/// The router requests are matched against, swapped as a whole when a
/// reload replaces a component's routes. A request loads it once and keeps
/// that table to its end: a request in flight finishes on the routes (and
/// the plugin version each captured) it matched against.
pub type Live = std::sync::Arc<arc_swap::ArcSwap<Router>>;

/// A frozen route table, core and plugin routes alike, and its matcher.
pub struct Router {
    routes: Vec<RouteDef>,
    /// Per path pattern, the route answering each method of [`Method::ALL`].
    paths: Vec<[Option<usize>; Method::ALL.len()]>,
    service: RequestService<Infallible>,
    /// routerify's answers for the paths without parameters, sorted by
    /// path: found by binary search, a handful of comparisons, where a
    /// `HashMap` paid SipHash over the whole path first (about 200
    /// instructions a request).
    exact: Vec<(String, usize)>,
}

/// A request path that some route has, with its parameters.
pub struct PathMatch<'a> {
    router: &'a Router,
    path: usize,
    /// The path's parameters (`:id` and its value).
    pub params: Vec<(String, String)>,
}

impl<'a> PathMatch<'a> {
    /// The route answering `method` on this path.
    pub fn route(&self, method: Method) -> Option<&'a RouteDef> {
        let index = self.router.paths[self.path][method_index(method)]?;
        Some(&self.router.routes[index])
    }

    /// The methods some route answers on this path.
    pub fn methods(&self) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|m| self.router.paths[self.path][method_index(*m)].is_some())
            .collect()
    }
}

/// What routerify's route for a path answers: which path pattern it is.
#[derive(Clone)]
struct Hit(usize, Vec<(String, String)>);

impl Router {
    /// The matcher of `routes`.
    ///
    /// # Errors
    /// When routerify refuses a path pattern.
    pub fn new(routes: Vec<RouteDef>) -> anyhow::Result<Self> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut paths: Vec<[Option<usize>; Method::ALL.len()]> = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            let path = match patterns.iter().position(|p| *p == route.path) {
                Some(path) => path,
                None => {
                    patterns.push(&route.path);
                    paths.push(Default::default());
                    paths.len() - 1
                }
            };
            paths[path][method_index(route.method)] = Some(index);
        }
        let mut builder = routerify_ng::Router::<Infallible>::builder();
        for (path, pattern) in patterns.iter().enumerate() {
            builder = builder.get(*pattern, move |req| {
                let params = req
                    .params()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                async move { Ok(hit(Some(Hit(path, params)))) }
            });
        }
        builder = builder.any(|_| async { Ok(hit(None)) });
        let router = builder
            .build()
            .map_err(|e| anyhow::anyhow!("building the router: {e}"))?;
        let service = RequestServiceBuilder::new(router)
            .map_err(|e| anyhow::anyhow!("building the router: {e}"))?
            .build(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        let fixed: Vec<String> = patterns
            .iter()
            .filter(|p| !p.contains([':', '*']))
            .map(|p| p.to_string())
            .collect();
        let mut router = Router {
            routes,
            paths,
            service,
            exact: Vec::new(),
        };
        let mut exact: Vec<(String, usize)> = fixed
            .into_iter()
            .filter_map(|p| {
                // routerify answers from memory: its future is ready at once.
                let Hit(path, params) = router.ask(&p).now_or_never()??;
                params.is_empty().then_some((p, path))
            })
            .collect();
        exact.sort_unstable();
        router.exact = exact;
        Ok(router)
    }

    /// Every route.
    pub fn routes(&self) -> &[RouteDef] {
        &self.routes
    }

    /// The routes of `path` (a raw, percent-encoded path), if it has any.
    pub async fn find(&self, path: &str) -> Option<PathMatch<'_>> {
        let exact = self.exact.binary_search_by(|(p, _)| p.as_str().cmp(path));
        let Hit(path, params) = match exact {
            Ok(at) => Hit(self.exact[at].1, Vec::new()),
            Err(_) => self.ask(path).await?,
        };
        Some(PathMatch {
            router: self,
            path,
            params,
        })
    }

    /// routerify's answer for `path`.
    async fn ask(&self, path: &str) -> Option<Hit> {
        let mut req = hyper::Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = path.parse().ok()?;
        // routerify errs on a path it cannot percent-decode: no route has it.
        let response = self.service.call(req).await.ok()?;
        response.extensions().get::<Hit>().cloned()
    }
}

fn hit(hit: Option<Hit>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if let Some(hit) = hit {
        response.extensions_mut().insert(hit);
    }
    response
}

fn method_index(method: Method) -> usize {
    Method::ALL
        .iter()
        .position(|m| *m == method)
        .expect("Method::ALL lists every method")
}

#[cfg(test)]
mod tests {
    use hookspecs::host::{Guard, RouteDef};
    use hookspecs::{Method, Reply, Request};

    use super::Router;

    fn route(method: Method, path: &str) -> RouteDef {
        RouteDef::new(method, path, "t", Guard::Public, |_: Request| async {
            Ok(Reply::no_content())
        })
    }

    #[tokio::test]
    async fn a_path_without_parameters_is_answered_as_routerify_answers_it() {
        let router = Router::new(vec![
            route(Method::Get, "/health"),
            route(Method::Get, "/items/:id"),
            // Shadowed by the pattern before it: routerify gives /items/:id.
            route(Method::Post, "/items/new"),
            route(Method::Delete, "/health"),
        ])
        .unwrap();
        assert_eq!(
            router.exact.len(),
            1,
            "only /health is answered from the map"
        );
        for path in ["/health", "/items/new", "/items/7", "/h%65alth", "/nope"] {
            let asked = router.ask(path).await.map(|hit| (hit.0, hit.1));
            let found = router.find(path).await.map(|m| (m.path, m.params));
            assert_eq!(found, asked, "{path}");
        }
        let health = router.find("/health").await.unwrap();
        assert_eq!(health.methods(), [Method::Get, Method::Delete]);
        let shadowed = router.find("/items/new").await.unwrap();
        assert_eq!(shadowed.params, [("id".to_owned(), "new".to_owned())]);
    }
}
