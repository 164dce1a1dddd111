//! Route matching: routerify_ng's, behind [`Router::find`], the one
//! function that sees the router crate. Everything else works with the
//! [`PathMatch`] it returns.
//!
//! Each distinct path pattern is registered with routerify once, for every
//! method, and a request goes through it once: the pattern it matches knows
//! which route answers each method, so a 404, a 405 with its `Allow` list
//! and an `OPTIONS` answer all come from that one lookup. routerify is
//! handed the live request's head, its method and its `Uri` as hyper parsed
//! them (the `Uri`'s bytes are shared, not copied or parsed again), with an
//! empty body: its service for a live hyper request reads the whole body
//! before routing, and the pipeline decides route, method and credential
//! before reading a byte of it. What routerify matched (the pattern and its
//! parameters) comes back in the extensions of its handler's response,
//! moved out, not cloned.
//!
//! routerify's answer for each path without parameters (`/health`,
//! `/plugins/x/status`) is asked once, when the table is built, and kept:
//! a request for exactly that path gets the same answer from a sorted table,
//! without routerify's per-request work (its request meta and context, its
//! percent-decoded copy of the path, its regex set, boxed futures and
//! response: about 10,000 instructions more, BENCHMARKS.md). Any other spelling
//! of it (percent-encoded, say) still goes through routerify.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use futures::FutureExt;
use hookspecs::Method;
use hookspecs::host::RouteDef;
use http_body_util::Full;
use hyper::service::Service;
use hyper::{Request, Response, Uri};
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
        // routerify answers with the first pattern that matches: the most
        // literal first, so that `/items/new` beats `/items/:id` whatever
        // order they were added in (as matchit and axum do), and else in
        // the order added.
        let mut order: Vec<usize> = (0..patterns.len()).collect();
        order.sort_by_key(|&path| specificity(patterns[path]));
        let mut builder = routerify_ng::Router::<Infallible>::builder();
        for (path, pattern) in order.into_iter().map(|path| (path, patterns[path])) {
            // Every method: the pattern is found whatever the method, and
            // its table of routes per method says 405 or which route.
            builder = builder.any_method(pattern, move |req| {
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
                let uri = p.parse().ok()?;
                let Hit(path, params) = router.ask(&hyper::Method::GET, &uri).now_or_never()??;
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

    /// The routes of the request with this method and `Uri` (its path
    /// raw, percent-encoded), if its path has any.
    pub async fn find(&self, method: &hyper::Method, uri: &Uri) -> Option<PathMatch<'_>> {
        let path = uri.path();
        let exact = self.exact.binary_search_by(|(p, _)| p.as_str().cmp(path));
        let Hit(path, params) = match exact {
            Ok(at) => Hit(self.exact[at].1, Vec::new()),
            // `*` (`OPTIONS *`) or none (`CONNECT`'s authority): no route's.
            Err(_) if !path.starts_with('/') => return None,
            // routerify decodes the whole path before matching it, where
            // `%2F` would split a segment in two: a `/` inside a segment
            // is data (RFC 3986, 2.2), and no route has one.
            Err(_) if encodes_a_slash(path) => return None,
            Err(_) => self.ask(method, uri).await?,
        };
        Some(PathMatch {
            router: self,
            path,
            params,
        })
    }

    /// routerify's answer for a request with this method and `Uri`.
    async fn ask(&self, method: &hyper::Method, uri: &Uri) -> Option<Hit> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri.clone();
        // routerify errs on a path it cannot percent-decode: no route has it.
        let mut response = self.service.call(req).await.ok()?;
        response.extensions_mut().remove::<Hit>()
    }
}

fn hit(hit: Option<Hit>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if let Some(hit) = hit {
        response.extensions_mut().insert(hit);
    }
    response
}

/// Whether `path` holds a percent-encoded `/`.
fn encodes_a_slash(path: &str) -> bool {
    (path.as_bytes().windows(3)).any(|w| w[0] == b'%' && w[1] == b'2' && w[2] | 0x20 == b'f')
}

/// A pattern's rank per segment, the lower the more literal: a literal
/// segment, then a parameter, then a wildcard.
fn specificity(pattern: &str) -> Vec<u8> {
    let rank = |segment: &str| match segment.as_bytes().first() {
        Some(b':') => 1,
        Some(b'*') => 2,
        _ => 0,
    };
    pattern.split('/').map(rank).collect()
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
    use hyper::Uri;

    use super::{PathMatch, Router};

    fn route(method: Method, path: &str) -> RouteDef {
        RouteDef::new(method, path, "t", Guard::Public, |_: Request| async {
            Ok(Reply::no_content())
        })
    }

    fn uri(path: &str) -> Uri {
        path.parse().expect("a valid request target")
    }

    fn found(m: Option<PathMatch<'_>>) -> Option<(usize, Vec<(String, String)>)> {
        m.map(|m| (m.path, m.params))
    }

    fn table() -> Router {
        Router::new(vec![
            route(Method::Get, "/health"),
            route(Method::Get, "/items/:id"),
            // Added after the pattern that would match it, and found all
            // the same: the literal path first.
            route(Method::Post, "/items/new"),
            route(Method::Delete, "/health"),
        ])
        .unwrap()
    }

    #[tokio::test]
    async fn a_path_without_parameters_is_answered_as_routerify_answers_it() {
        let router = table();
        assert_eq!(
            router.exact.len(),
            2,
            "/health and /items/new are answered from the table"
        );
        let get = hyper::Method::GET;
        for path in ["/health", "/items/new", "/items/7", "/h%65alth", "/nope"] {
            let asked = router.ask(&get, &uri(path)).await.map(|hit| (hit.0, hit.1));
            assert_eq!(found(router.find(&get, &uri(path)).await), asked, "{path}");
        }
        let health = router.find(&get, &uri("/health")).await.unwrap();
        assert_eq!(health.methods(), [Method::Get, Method::Delete]);
        let new = router.find(&get, &uri("/items/new")).await.unwrap();
        assert_eq!(new.methods(), [Method::Post]);
        assert_eq!((new.path, new.params), (2, vec![]));
    }

    #[tokio::test]
    async fn an_encoded_slash_is_no_separator() {
        let router = Router::new(vec![
            route(Method::Get, "/items/:id/parts"),
            route(Method::Get, "/f/:name"),
        ])
        .unwrap();
        let get = hyper::Method::GET;
        assert!(router.find(&get, &uri("/items/1/parts")).await.is_some());
        for path in ["/items/1%2Fparts", "/items/1%2fparts", "/f/a%2Fb"] {
            assert!(router.find(&get, &uri(path)).await.is_none(), "{path}");
        }
        // Another encoded byte is still decoded.
        assert!(router.find(&get, &uri("/f/a%2Eb")).await.is_some());
    }

    #[tokio::test]
    async fn the_most_literal_pattern_answers_whatever_the_order_added() {
        let router = Router::new(vec![
            route(Method::Get, "/a/:x/b"),
            route(Method::Get, "/a/b/:y"),
            route(Method::Get, "/f/*"),
            route(Method::Get, "/f/:name"),
        ])
        .unwrap();
        let get = hyper::Method::GET;
        let both = router.find(&get, &uri("/a/b/b")).await.unwrap();
        assert_eq!(
            (both.path, both.params),
            (1, vec![("y".into(), "b".into())])
        );
        let one = router.find(&get, &uri("/a/c/b")).await.unwrap();
        assert_eq!((one.path, one.params), (0, vec![("x".into(), "c".into())]));
        assert_eq!(router.find(&get, &uri("/f/x")).await.unwrap().path, 3);
        assert_eq!(router.find(&get, &uri("/f/x/y")).await.unwrap().path, 2);
    }

    #[tokio::test]
    async fn the_method_does_not_change_the_pattern_found() {
        let router = table();
        let purge = hyper::Method::from_bytes(b"PURGE").unwrap();
        for method in [
            hyper::Method::GET,
            hyper::Method::POST,
            hyper::Method::OPTIONS,
            purge,
        ] {
            // Through routerify (a parameter) and from the table.
            let item = router.find(&method, &uri("/items/7?x=1")).await;
            let item = item.expect("found whatever the method");
            assert_eq!((item.path, &item.params[0].1[..]), (1, "7"), "{method}");
            assert!(item.route(Method::Put).is_none());
            let health = router.find(&method, &uri("/h%65alth")).await.unwrap();
            assert_eq!(health.path, 0, "{method}");
        }
    }

    #[tokio::test]
    async fn a_target_that_is_no_path_or_does_not_decode_has_no_route() {
        let router = table();
        let options = hyper::Method::OPTIONS;
        assert!(router.find(&options, &uri("*")).await.is_none());
        let connect = hyper::Method::CONNECT;
        assert!(
            router
                .find(&connect, &uri("example.com:443"))
                .await
                .is_none()
        );
        let get = hyper::Method::GET;
        assert!(router.find(&get, &uri("/items/%FF")).await.is_none());
        // The path of an absolute target is what is matched.
        let absolute = router.find(&get, &uri("http://example.com/items/7")).await;
        assert_eq!(found(absolute), Some((1, vec![("id".into(), "7".into())])));
    }
}
