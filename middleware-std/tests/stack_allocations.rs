//! Heap allocations per request through the std five (log, timing, panic recovery, budget,
//! bearer auth) and through `StackLayer` with auth, counted by the kit's harness
//! (`middleware_core::testing`, per thread). The counts are asserted exactly: they are the ones `benches/BENCHMARKS.md` explains,
//! item by item, against its target (the hand-written work's own plus the context's).
#![cfg(all(
    feature = "logging",
    feature = "timing",
    feature = "catch-panic",
    feature = "timeout",
    feature = "auth",
    feature = "request-id"
))]
#![allow(missing_docs)]

use std::time::Duration;

use http::{HeaderValue, Request, header};
use middleware_core::testing::{Bare, allocations_per_request};
use middleware_std::{
    auth::{AuthLayer, Principal},
    catch_panic::CatchPanicLayer,
    logging::LogLayer,
    stack::StackLayer,
    timeout::TimeoutLayer,
    timing::ServerTimingLayer,
};
use tower::ServiceBuilder;

const TOKEN: &str = "s3cr3t-token";

/// The inner service: `200`, an empty body and no header (its header map is allocated by the
/// first layer that adds one).
const BARE: Bare = Bare::new();

/// An extension, so that a request's extension map is already allocated (as after a router).
#[derive(Clone, Copy)]
struct ConnInfo;

fn request(with_extension: bool) -> Request<String> {
    let mut req = Request::new(String::new());
    req.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer s3cr3t-token"),
    );
    if with_extension {
        req.extensions_mut().insert(ConnInfo);
    }
    req
}

/// The std five in the benchmark's order.
macro_rules! std_five {
    () => {
        ServiceBuilder::new()
            .layer(LogLayer::new())
            .layer(ServerTimingLayer::new())
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::new(Duration::from_secs(30)))
            .layer(AuthLayer::bearer(TOKEN, Principal::new("bench")))
            .service(BARE)
    };
}

#[test]
fn the_std_five_cost_the_context_the_principal_and_one_header() {
    for with_extension in [true, false] {
        let base = allocations_per_request(BARE, || request(with_extension));
        let five = allocations_per_request(std_five!(), || request(with_extension));
        // The context (its shared state, its box in the extension map), the principal in the
        // context, and `Server-Timing` (its value, and the response's header map on its first
        // insert: two). Without a context no layer logs, so nothing else.
        let expected = 2 + 1 + 3;
        // A request whose extension map is still empty: the map itself, on its first insert (any
        // extension pays it), two more.
        let expected = if with_extension {
            expected
        } else {
            expected + 2
        };
        assert_eq!(five - base, expected, "with an extension: {with_extension}");
    }
}

#[test]
fn the_full_stack_adds_the_request_id_and_its_response_extension() {
    for with_extension in [true, false] {
        let five = allocations_per_request(std_five!(), || request(with_extension));
        let stack = allocations_per_request(
            ServiceBuilder::new()
                .layer(StackLayer::new(Duration::from_secs(30)))
                .layer(AuthLayer::bearer(TOKEN, Principal::new("bench")))
                .service(BARE),
            || request(with_extension),
        );
        // The id's text and its reference count in one allocation, shared by the request and
        // the response headers (both header maps exist by then): 1. The typed `RequestId` on
        // the response, as tower-http sets it: the response's extension map (its box and its
        // table) and the boxed id: 3.
        assert_eq!(stack - five, 1 + 3, "with an extension: {with_extension}");
    }
}
