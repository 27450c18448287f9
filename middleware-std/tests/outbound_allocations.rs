//! Heap allocations per call through the outbound layers, counted by `allocation-counter` (per
//! thread), asserted exactly: what `benches/BENCHMARKS.md` reports for the outbound stack, and
//! where each allocation comes from.
//!
//! Every call here is made the way a handler makes one: the request carries a clone of the
//! caller's context (one caller context for the whole test, as one inbound request makes many
//! calls), and its extension map already exists.
#![cfg(all(feature = "breaker", feature = "retry", feature = "call-timeout"))]
#![allow(missing_docs)]

use std::time::Duration;

use http::Request;
use middleware_core::testing::{Bare, allocations_per_request};
use middleware_std::{
    Context, RequestExt,
    breaker::{BreakerConfig, BreakerLayer, CircuitBreaker},
    call_timeout::CallTimeoutLayer,
    retry::RetryLayer,
};
use tower_layer::Layer;

const BARE: Bare = Bare::new().with_header();

/// A request as a handler sends it: carrying a clone of the caller's context.
fn call(caller: &Context) -> impl Fn() -> Request<String> + '_ {
    move || {
        let mut req = Request::new(String::new());
        *req.context() = caller.clone();
        req
    }
}

fn breaker() -> BreakerLayer {
    BreakerLayer::new(CircuitBreaker::new(BreakerConfig::new()))
}

// In a runtime: the call timeout's timer needs one (it registers no allocation of its own).
#[tokio::test]
async fn each_outbound_layer_costs_its_scope_and_the_retry_its_copy() {
    let caller = Context::new();
    let base = allocations_per_request(BARE, call(&caller));

    // The call's own scope (a child of the caller's): one allocation.
    let timeout = CallTimeoutLayer::new(Duration::from_secs(30)).layer(BARE);
    assert_eq!(allocations_per_request(timeout, call(&caller)) - base, 1);

    // The breaker: the call's scope; the store finds the unkeyed circuit without allocating.
    assert_eq!(
        allocations_per_request(breaker().layer(BARE), call(&caller)) - base,
        1
    );

    // The retry: the attempt's scope. Its copy of the request (kept for a retry) is made
    // without the extension map, whose only entry, the context, a retry replaces anyway; the
    // empty body copies without allocating.
    let retry = RetryLayer::new().layer(BARE);
    assert_eq!(allocations_per_request(retry, call(&caller)) - base, 1);

    // A policy that reads the request's extensions gets a full copy: the map's box, its table
    // and the context's box.
    let reads = |_: &Request<String>, _: Result<&http::Response<_>, &_>| false;
    let retry = RetryLayer::new().policy(reads).layer(BARE);
    assert_eq!(allocations_per_request(retry, call(&caller)) - base, 4);
}

#[tokio::test]
async fn the_outbound_stack_costs_the_sum_of_its_layers() {
    let caller = Context::new();
    let base = allocations_per_request(BARE, call(&caller));
    let stack = breaker()
        .layer(RetryLayer::new().layer(CallTimeoutLayer::new(Duration::from_secs(30)).layer(BARE)));
    // One scope each: the breaker's, the retry's attempt, the call timeout's.
    assert_eq!(allocations_per_request(stack, call(&caller)) - base, 3);
}
