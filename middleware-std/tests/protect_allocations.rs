//! Heap allocations per request through the protection layers, counted by `allocation-counter`
//! (per thread). The counts are asserted exactly; they are what the module docs promise: the
//! fast paths of the body limit and the concurrency limit allocate nothing.
#![cfg(all(feature = "body-limit", feature = "limit", feature = "rate-limit"))]
#![allow(missing_docs)]

mod support;

use std::{
    convert::Infallible,
    task::{Context as TaskContext, Poll},
};

use http::{Request, Response};
use middleware_std::{
    body_limit::RequestBodyLimitLayer,
    limit::ConcurrencyLimitLayer,
    rate_limit::{Policy, RateLimitLayer},
};
use support::{Bare, ConnInfo};
use tower_layer::Layer;
use tower_service::Service;

/// The shared inner service: `200` with one header.
const BARE: Bare = Bare {
    with_header: true,
    mark: false,
};

/// [`BARE`] for any request body type (the body limit changes it).
#[derive(Clone, Copy)]
struct Ok200;

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut res = Response::new(String::new());
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        std::future::ready(Ok(res))
    }
}

fn request(body: &'static str) -> impl Fn() -> Request<String> {
    move || {
        let mut req = Request::new(String::from(body));
        req.extensions_mut().insert(ConnInfo);
        req
    }
}

fn per_request<S, B>(svc: S, body: &'static str) -> u64
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    support::per_request(svc, request(body))
}

#[test]
fn the_body_limit_costs_nothing_for_an_empty_body_and_one_flag_otherwise() {
    let layer = RequestBodyLimitLayer::new(1024);
    assert_eq!(
        per_request(layer.layer(Ok200), "") - per_request(Ok200, ""),
        0
    );
    assert_eq!(
        per_request(layer.layer(Ok200), "some body") - per_request(Ok200, "some body"),
        1
    );
}

#[test]
fn an_admitted_request_costs_the_concurrency_limit_nothing() {
    let layer = ConcurrencyLimitLayer::new(4).queue(4, std::time::Duration::from_secs(1));
    assert_eq!(
        per_request(layer.layer(Ok200), "") - per_request(Ok200, ""),
        0
    );
}

#[test]
fn an_allowed_request_costs_the_rate_limit_its_header_value() {
    let layer = RateLimitLayer::new(Policy::per_second(1_000_000));
    let quiet = RateLimitLayer::new(Policy::per_second(1_000_000)).without_headers_on_allowed();
    let base = per_request(BARE, "");
    // A known key, no headers: nothing.
    assert_eq!(per_request(quiet.layer(BARE), "") - base, 0);
    let with_headers = per_request(layer.layer(BARE), "") - base;
    // The `RateLimit` value, built at its exact length (the policy's value is shared).
    assert_eq!(with_headers, 1);
}
