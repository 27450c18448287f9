//! Heap allocations per request through the timing layer, counted by the kit's harness (per
//! thread, so parallel tests do not disturb each other). The counts are asserted exactly; they
//! are the numbers the timing module docs promise.
#![cfg(feature = "timing")]
#![allow(missing_docs)]

use http::{Request, Response};
use middleware_core::testing::{Bare, allocations_per_request};
use middleware_std::timing::{BodyEnd, ServerTimingLayer};
use tower_layer::Layer;
use tower_service::Service;

/// An extension, so that a request's extension map is already allocated (as after a router).
#[derive(Clone, Copy)]
struct ConnInfo;

/// A request whose extension map is already allocated, so only the context itself is counted.
fn request() -> Request<String> {
    let mut req = Request::new(String::new());
    req.extensions_mut().insert(ConnInfo);
    req
}

/// Allocations per request through `svc`.
fn per_request<S, B>(svc: S) -> u64
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    allocations_per_request(svc, request)
}

const PLAIN: Bare = Bare::new().with_header();

#[test]
fn server_timing_costs_the_context_and_one_header_value() {
    let base = per_request(PLAIN);
    let svc = ServerTimingLayer::new().layer(PLAIN);
    // The context (2) + the `Server-Timing` value (1).
    assert_eq!(per_request(svc) - base, 3);
}

#[test]
fn a_context_made_outside_is_not_paid_again() {
    let svc = ServerTimingLayer::new().layer(PLAIN);
    let outer = ServerTimingLayer::new().layer(svc);
    // Two timing layers share one context (2), and only the outer one writes the header (1):
    // the inner one sees the outer one's mark and writes none.
    assert_eq!(per_request(outer) - per_request(PLAIN), 3);
}

#[test]
fn an_empty_response_header_map_allocates_itself_on_first_insert() {
    let bare = Bare::new();
    let svc = ServerTimingLayer::new().layer(bare);
    // 3 as above + the header map's two buffers (indices and entries).
    assert_eq!(per_request(svc) - per_request(bare), 5);
}

#[test]
fn options_cost_what_the_docs_say() {
    let base = per_request(PLAIN);
    let response_time = ServerTimingLayer::new()
        .response_time_header(true)
        .layer(PLAIN);
    assert_eq!(per_request(response_time) - base, 4, "x-response-time: +1");

    let per_layer = ServerTimingLayer::new().per_layer_times(true).layer(PLAIN);
    // Asking the layers for their times is a flag in the request's state: free (the marks they
    // record cost their list, counted where layers record them).
    assert_eq!(per_request(per_layer) - base, 3, "per-layer times: +0");

    let hook = ServerTimingLayer::new()
        .on_body_end(|end: BodyEnd| assert!(end.duration >= end.headers))
        .layer(PLAIN);
    // What the hook will be told is boxed in the body, so bodies without a hook stay small.
    assert_eq!(per_request(hook) - base, 4, "on_body_end: +1");
}

#[test]
fn a_mark_costs_its_first_push() {
    let marking = Bare::new().with_header().with_mark();
    let svc = ServerTimingLayer::new().layer(marking);
    // 3 + the marks vector's first buffer (borrowed names are free).
    assert_eq!(per_request(svc) - per_request(marking), 4);
}
