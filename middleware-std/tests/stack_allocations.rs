//! Heap allocations per request through the std five (log, timing, panic recovery, budget,
//! bearer auth) and through `StackLayer` with auth, counted by `allocation-counter` (per
//! thread). The counts are asserted exactly: they are the ones `benches/BENCHMARKS.md` explains,
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

use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use http::{HeaderValue, Request, Response, header};
use middleware_std::{
    auth::{AuthLayer, Principal},
    catch_panic::CatchPanicLayer,
    logging::LogLayer,
    stack::StackLayer,
    timeout::TimeoutLayer,
    timing::ServerTimingLayer,
};
use tower::ServiceBuilder;
use tower_service::Service;

const REQUESTS: u64 = 100;
const TOKEN: &str = "s3cr3t-token";

/// The inner service: `200`, an empty body and no header (its header map is allocated by the
/// first layer that adds one), ready at once.
#[derive(Clone, Copy)]
struct Bare;

impl Service<Request<String>> for Bare {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        std::future::ready(Ok(Response::new(String::new())))
    }
}

#[derive(Clone, Copy)]
struct ConnInfo;

fn request(with_extension: bool) -> Request<String> {
    let mut req = Request::new(String::new());
    req.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer s3cr3t-token"),
    );
    if with_extension {
        // The extension map exists already, as after a router or a connection-info layer.
        req.extensions_mut().insert(ConnInfo);
    }
    req
}

/// Allocations per request through `svc`, the request's own included.
fn per_request<S, B>(mut svc: S, with_extension: bool) -> u64
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = TaskContext::from_waker(Waker::noop());
    let mut one = || {
        let req = request(with_extension);
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut future = pin!(svc.call(req));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(res) => {
                let res = res.expect("request failed");
                assert_eq!(res.status(), http::StatusCode::OK);
                drop(res);
            }
            Poll::Pending => panic!("the request did not complete in one poll"),
        }
    };
    one(); // warm-up: lazily initialised statics are not per-request costs
    let info = allocation_counter::measure(|| {
        for _ in 0..REQUESTS {
            one();
        }
    });
    assert_eq!(info.count_current, 0, "a request leaked memory");
    assert_eq!(
        info.count_total % REQUESTS,
        0,
        "allocations are not the same for every request: {info:?}"
    );
    info.count_total / REQUESTS
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
            .service(Bare)
    };
}

#[test]
fn the_std_five_cost_the_context_the_principal_and_one_header() {
    for with_extension in [true, false] {
        let base = per_request(Bare, with_extension);
        let five = per_request(std_five!(), with_extension);
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
fn the_full_stack_adds_one_allocation_for_a_generated_request_id() {
    for with_extension in [true, false] {
        let five = per_request(std_five!(), with_extension);
        let stack = per_request(
            ServiceBuilder::new()
                .layer(StackLayer::new(Duration::from_secs(30)))
                .layer(AuthLayer::bearer(TOKEN, Principal::new("bench")))
                .service(Bare),
            with_extension,
        );
        // The id's text and its reference count in one allocation, shared by the request and
        // the response headers (both header maps exist by then).
        assert_eq!(stack - five, 1, "with an extension: {with_extension}");
    }
}
