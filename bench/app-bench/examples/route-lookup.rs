//! One route lookup: the app's `Router::find` (routerify_ng) against
//! matchit, axum's matcher, over the same frozen route table, the one
//! `bench-app` serves (the core routes, then the `bench` plugin's). Counted
//! in instructions by `bench/callgrind_lookup.py`, which runs it as
//!
//!     route-lookup <routerify|matchit> <METHOD> <target> <count>
//!
//! Both matchers are built, both must find the same pattern and parameters
//! for the target (or both none), then the chosen one looks the target up
//! `count` times, in a function that is never inlined (`counted_*`): callgrind's
//! `--toggle-collect` counts that function alone. Each lookup ends as the
//! app's does, its answer (the parameters included) dropped.
//!
//! matchit is given what routerify matches: the path percent-decoded
//! (routerify decodes the whole path before matching; axum decodes only the
//! parameters, so it would not find `/h%65alth`). Its patterns are the
//! table's, `:id` written `{id}`.

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use app::http::router::{PathMatch, Router};
use hookspecs::host::{Guard, RouteDef, RouteTable};
use hookspecs::{Method, Reply, Request};
use hyper::Uri;
use percent_encoding::percent_decode_str;

/// The table `bench-app` serves, in the order it is built (app/src/startup.rs).
fn table() -> Vec<RouteDef> {
    let stand_in = |method, path: &str, owner: &str| {
        RouteDef::new(method, path, owner, Guard::Public, |_: Request| async {
            Ok(Reply::no_content())
        })
    };
    let table = RouteTable::default();
    for route in app::api::routes() {
        table.add(route).unwrap();
    }
    for path in [
        "/plugins/bench/json",
        "/plugins/bench/json/:id",
        "/plugins/bench/db",
    ] {
        table.add(stand_in(Method::Get, path, "bench")).unwrap();
    }
    let reload = "/api/admin/plugins/:name/reload";
    table.add(stand_in(Method::Post, reload, "app")).unwrap();
    table
        .add(stand_in(Method::Get, "/api/admin/plugins", "app"))
        .unwrap();
    table.freeze()
}

/// The distinct patterns of `routes`, in order, as `Router` numbers them.
fn patterns(routes: &[RouteDef]) -> Vec<String> {
    let mut patterns: Vec<String> = Vec::new();
    for route in routes {
        if !patterns.contains(&route.path) {
            patterns.push(route.path.clone());
        }
    }
    patterns
}

/// matchit over the same patterns: each one's number.
fn matchit_router(patterns: &[String]) -> matchit::Router<usize> {
    let mut router = matchit::Router::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let braced: Vec<String> = pattern
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => s.to_owned(),
            })
            .collect();
        router.insert(braced.join("/"), index).unwrap();
    }
    router
}

/// A future that is ready at once (routerify answers from memory).
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the lookup waited"),
    }
}

/// What a lookup found: its pattern and parameters.
type Found = Option<(String, Vec<(String, String)>)>;

fn summary(found: Option<PathMatch<'_>>) -> Found {
    let found = found?;
    let method = found.methods()[0];
    Some((found.route(method)?.path.clone(), found.params))
}

#[inline(never)]
fn counted_routerify(router: &Router, method: &hyper::Method, uri: &Uri) -> usize {
    let found = ready(router.find(method, uri));
    found.map_or(0, |m| m.params.len() + 1)
}

#[inline(never)]
fn counted_matchit(router: &matchit::Router<usize>, uri: &Uri) -> usize {
    let Some(params) = find_with_matchit(router, uri) else {
        return 0;
    };
    params.1.len() + 1
}

fn find_with_matchit(
    router: &matchit::Router<usize>,
    uri: &Uri,
) -> Option<(usize, Vec<(String, String)>)> {
    let path = percent_decode_str(uri.path()).decode_utf8().ok()?;
    let found = router.at(&path).ok()?;
    let params = found
        .params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Some((*found.value, params))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [matcher, method, target, count] = &args[..] else {
        eprintln!("usage: route-lookup <routerify|matchit> <METHOD> <target> <count>");
        std::process::exit(2);
    };
    let method = hyper::Method::from_bytes(method.as_bytes()).expect("a method");
    let uri: Uri = target.parse().expect("a request target");
    let count: usize = count.parse().expect("a count");
    let routes = table();
    let patterns = patterns(&routes);
    let by_matchit = matchit_router(&patterns);
    let by_routerify = Router::new(routes).expect("the table");
    let theirs = find_with_matchit(&by_matchit, &uri).map(|(i, p)| (patterns[i].clone(), p));
    let ours = summary(ready(by_routerify.find(&method, &uri)));
    // routerify keeps the parameters in a hash map: their order is not
    // the path's.
    let sorted = |found: Found| {
        found.map(|(pattern, mut params)| {
            params.sort();
            (pattern, params)
        })
    };
    assert_eq!(
        sorted(ours.clone()),
        sorted(theirs),
        "routerify and matchit disagree on {target}"
    );
    let mut found = 0;
    for _ in 0..count {
        found += match matcher.as_str() {
            "routerify" => counted_routerify(black_box(&by_routerify), &method, black_box(&uri)),
            "matchit" => counted_matchit(black_box(&by_matchit), black_box(&uri)),
            other => panic!("no matcher {other}"),
        };
    }
    println!("{matcher} {target}: {:?} ({found})", ours.map(|o| o.0));
}
