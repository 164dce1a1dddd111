//! Route matching: routerify_ng's, behind [`Router::find`], the one
//! function that sees the router crate. Everything else works with the
//! [`Match`] it returns.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use hookspecs::{Method, RouteDef};
use http_body_util::Full;
use hyper::Response;
use hyper::service::Service;
use routerify_ng::prelude::RequestExt;
use routerify_ng::{RequestService, RequestServiceBuilder};

/// The frozen route table, core and plugin routes alike, and its matcher.
pub struct Router {
    routes: Vec<RouteDef>,
    service: RequestService<Infallible>,
}

/// What a request's method and path lead to.
pub enum Match<'a> {
    /// A route, with the path's parameters.
    Route(&'a RouteDef, Vec<(String, String)>),
    /// The path exists, with these methods only.
    OtherMethods(Vec<Method>),
    /// No route has that path (or the path cannot be decoded).
    NotFound,
}

/// The answer each routerify route gives: which of our routes it is.
#[derive(Clone)]
struct Hit(Option<usize>, Vec<(String, String)>);

impl Router {
    /// The matcher of `routes`.
    ///
    /// # Errors
    /// When routerify refuses a path pattern.
    pub fn new(routes: Vec<RouteDef>) -> anyhow::Result<Self> {
        let mut builder = routerify_ng::Router::<Infallible>::builder();
        for (index, route) in routes.iter().enumerate() {
            builder = builder.add(&route.path, vec![hyper_method(route.method)], move |req| {
                let params = req
                    .params()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                async move { Ok(hit(Hit(Some(index), params))) }
            });
        }
        builder = builder.any(|_| async { Ok(hit(Hit(None, Vec::new()))) });
        let router = builder
            .build()
            .map_err(|e| anyhow::anyhow!("building the router: {e}"))?;
        let service = RequestServiceBuilder::new(router)
            .map_err(|e| anyhow::anyhow!("building the router: {e}"))?
            .build(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        Ok(Router { routes, service })
    }

    /// Every route.
    pub fn routes(&self) -> &[RouteDef] {
        &self.routes
    }

    /// The route answering `method` on `path` (a raw, percent-encoded path).
    pub async fn find(&self, method: Method, path: &str) -> Match<'_> {
        if let Some((index, params)) = self.lookup(method, path).await {
            return Match::Route(&self.routes[index], params);
        }
        let allowed = self.allowed(path).await;
        if allowed.is_empty() {
            Match::NotFound
        } else {
            Match::OtherMethods(allowed)
        }
    }

    /// The methods some route answers on `path`.
    pub async fn allowed(&self, path: &str) -> Vec<Method> {
        let mut allowed = Vec::new();
        for method in Method::ALL {
            if self.lookup(method, path).await.is_some() {
                allowed.push(method);
            }
        }
        allowed
    }

    async fn lookup(&self, method: Method, path: &str) -> Option<(usize, Vec<(String, String)>)> {
        let mut req = hyper::Request::new(Full::new(Bytes::new()));
        *req.method_mut() = hyper_method(method);
        *req.uri_mut() = path.parse().ok()?;
        // routerify errs on a path it cannot percent-decode: no route has it.
        let response = self.service.call(req).await.ok()?;
        let Hit(index, params) = response.extensions().get::<Hit>()?.clone();
        Some((index?, params))
    }
}

fn hit(hit: Hit) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    response.extensions_mut().insert(hit);
    response
}

fn hyper_method(method: Method) -> hyper::Method {
    match method {
        Method::Get => hyper::Method::GET,
        Method::Post => hyper::Method::POST,
        Method::Put => hyper::Method::PUT,
        Method::Patch => hyper::Method::PATCH,
        Method::Delete => hyper::Method::DELETE,
    }
}
