//! Heap allocations per request through the protection layers, counted by `allocation-counter`
//! (per thread). The counts are asserted exactly; they are what the module docs promise: the
//! fast paths of the body limit and the concurrency limit allocate nothing.
#![cfg(all(feature = "body-limit", feature = "limit", feature = "rate-limit"))]
#![allow(missing_docs)]

use http::{Request, Response};
use middleware_core::testing::{Bare, allocations_per_request};
use middleware_std::{
    body_limit::RequestBodyLimitLayer,
    limit::ConcurrencyLimitLayer,
    rate_limit::{Policy, RateLimitLayer},
};
use tower_layer::Layer;
use tower_service::Service;

/// The shared inner service: `200` with one header.
const BARE: Bare = Bare::new().with_header();

/// An extension, so that a request's extension map is already allocated (as after a router).
#[derive(Clone, Copy)]
struct ConnInfo;

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
    allocations_per_request(svc, request(body))
}

#[test]
fn the_body_limit_costs_nothing_for_an_empty_body_and_one_flag_otherwise() {
    let layer = RequestBodyLimitLayer::new(1024);
    assert_eq!(
        per_request(layer.layer(BARE), "") - per_request(BARE, ""),
        0
    );
    assert_eq!(
        per_request(layer.layer(BARE), "some body") - per_request(BARE, "some body"),
        1
    );
}

#[test]
fn an_admitted_request_costs_the_concurrency_limit_nothing() {
    let layer = ConcurrencyLimitLayer::new(4).queue(4, std::time::Duration::from_secs(1));
    assert_eq!(
        per_request(layer.layer(BARE), "") - per_request(BARE, ""),
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
