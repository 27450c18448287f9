//! Heap allocations counted per request (feature `testing-alloc`).
//!
//! The feature links [`allocation-counter`](https://docs.rs/allocation-counter), whose counting
//! global allocator then serves the whole test binary: fine in tests (it counts per thread, so
//! parallel tests do not disturb each other), but it conflicts with another
//! `#[global_allocator]`, so enable the feature in `[dev-dependencies]` only.

use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use http::{Request, Response};
use tower_service::Service;

use crate::context::RequestExt;

/// How many requests [`measure_per_request`] sends after its warm-up.
const REQUESTS: u64 = 100;

/// What the heap saw while a closure ran, on this thread. See [`measure`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Allocations {
    /// Allocations made (a reallocation counts as one).
    pub count_total: u64,
    /// Allocations made and not freed: positive for a leak (or memory kept on purpose),
    /// negative when the closure freed memory allocated before it ran.
    pub count_current: i64,
    /// Bytes allocated in total.
    pub bytes_total: u64,
}

/// Counts the heap allocations `f` makes on this thread.
///
/// ```
/// use middleware_core::testing::measure;
///
/// assert_eq!(measure(|| drop(Vec::<u8>::with_capacity(8))).count_total, 1);
/// assert_eq!(measure(|| drop(Vec::<u8>::new())).count_total, 0);
/// ```
pub fn measure(f: impl FnOnce()) -> Allocations {
    let info = allocation_counter::measure(f);
    Allocations {
        count_total: info.count_total,
        count_current: info.count_current,
        bytes_total: info.bytes_total,
    }
}

/// The heap allocations of one request through `svc`, the requests `make` builds included.
///
/// Each request is driven to completion in one poll with a no-op waker (so nothing but the
/// service and the request can allocate: no runtime, no task), after one warm-up request that
/// is not counted (lazily initialised statics are not per-request costs). Subtract the count of
/// the same requests through [`Bare`] (or through your stack without your layer) to get what
/// your layer costs.
///
/// ```
/// use http::Request;
/// use middleware_core::{HookLayer, testing::{Bare, allocations_per_request}};
/// use tower::Layer;
///
/// // A request whose extension map is allocated (as after a router), so that only the
/// // layers are counted.
/// let request = || {
///     let mut req = Request::new(String::new());
///     req.extensions_mut().insert(());
///     req
/// };
/// let base = allocations_per_request(Bare::new(), request);
/// // The do-nothing hook costs nothing.
/// assert_eq!(allocations_per_request(HookLayer::new(()).layer(Bare::new()), request), base);
/// ```
///
/// # Panics
///
/// If a request does not complete in one poll (the service must be ready at once and answer
/// with a ready future, as [`Bare`] does), fails, leaks memory, or allocates a different number
/// of times than another request.
pub fn allocations_per_request<S, B>(svc: S, make: impl FnMut() -> Request<B>) -> u64
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    measure_per_request(svc, make).count_total
}

/// The allocations and allocated bytes of one request through `svc`: what
/// [`allocations_per_request`] counts, with the bytes (the average over the requests sent;
/// `count_current` is always 0).
///
/// # Panics
///
/// As [`allocations_per_request`].
pub fn measure_per_request<S, B>(mut svc: S, mut make: impl FnMut() -> Request<B>) -> Allocations
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = TaskContext::from_waker(Waker::noop());
    let mut one = || {
        let req = make();
        assert!(
            svc.poll_ready(&mut cx).is_ready(),
            "the service was not ready at once"
        );
        let mut future = pin!(svc.call(req));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(res) => drop(res.expect("request failed")),
            Poll::Pending => panic!("the request did not complete in one poll"),
        }
    };
    one(); // warm-up: lazily initialised statics are not per-request costs
    let info = measure(|| {
        for _ in 0..REQUESTS {
            one();
        }
    });
    assert_eq!(info.count_current, 0, "a request leaked memory: {info:?}");
    assert_eq!(
        info.count_total % REQUESTS,
        0,
        "allocations are not the same for every request: {info:?}"
    );
    Allocations {
        count_total: info.count_total / REQUESTS,
        count_current: 0,
        bytes_total: info.bytes_total / REQUESTS,
    }
}

/// A ready inner service that allocates nothing: `200` with an empty body, for any request
/// body. Optionally with one response header (so the response's header map is already
/// allocated, as it is for nearly every real response) and a timing mark.
///
/// See [`allocations_per_request`] for an example.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bare {
    header: bool,
    mark: bool,
}

impl Bare {
    /// `200`, no header, no mark.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            header: false,
            mark: false,
        }
    }

    /// Answers with a `content-type: text/plain` header.
    #[must_use]
    pub const fn with_header(mut self) -> Self {
        self.header = true;
        self
    }

    /// Records a timing mark `db` of 1 ms in the request's context, when it has one.
    #[must_use]
    pub const fn with_mark(mut self) -> Self {
        self.mark = true;
        self
    }
}

impl<B> Service<Request<B>> for Bare {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.mark {
            if let Some(cx) = req.try_context() {
                cx.mark("db", Duration::from_millis(1));
            }
        }
        let mut res = Response::new(String::new());
        if self.header {
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            );
        }
        std::future::ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tower_layer::Layer;

    use super::*;
    use crate::HookLayer;

    fn plain() -> Request<String> {
        Request::new(String::new())
    }

    #[test]
    fn the_bare_service_allocates_nothing() {
        assert_eq!(allocations_per_request(Bare::new(), plain), 0);
    }

    #[test]
    fn a_header_costs_the_bare_service_its_header_map() {
        // The header map's two buffers (indices and entries).
        assert_eq!(allocations_per_request(Bare::new().with_header(), plain), 2);
    }

    #[test]
    fn the_requests_are_counted_with_their_bytes() {
        let counted = measure_per_request(Bare::new(), || Request::new(String::from("body")));
        assert_eq!(counted.count_total, 1);
        assert_eq!(counted.bytes_total, 4);
        assert_eq!(counted.count_current, 0);
    }

    #[test]
    fn measure_counts_what_the_closure_keeps() {
        let mut kept = Vec::new();
        let info = measure(|| kept.push(Box::new(1_u64)));
        assert_eq!(info.count_total, 2, "the vector's buffer and the box");
        assert_eq!(info.count_current, 2);
        let info = measure(|| drop(std::mem::take(&mut kept)));
        assert_eq!(info.count_current, -2);
    }

    #[test]
    #[should_panic(expected = "a request leaked memory")]
    fn a_leaking_service_is_caught() {
        let leaked = Arc::new(Mutex::new(Vec::new()));
        let svc = tower::service_fn(move |_: Request<String>| {
            leaked.lock().unwrap().push(Box::new(0_u8));
            std::future::ready(Ok::<_, Infallible>(Response::new(())))
        });
        let _ = allocations_per_request(svc, plain);
    }

    #[test]
    #[should_panic(expected = "not the same for every request")]
    fn uneven_requests_are_caught() {
        let mut n = 0_u32;
        let uneven = move || {
            n += 1;
            let body = if n % 3 == 0 {
                String::from("x")
            } else {
                String::new()
            };
            Request::new(body)
        };
        let _ = allocations_per_request(Bare::new(), uneven);
    }

    #[test]
    #[should_panic(expected = "did not complete in one poll")]
    fn a_pending_service_is_caught() {
        let svc = tower::service_fn(|_: Request<String>| {
            std::future::pending::<Result<(), Infallible>>()
        });
        let _ = allocations_per_request(svc, plain);
    }

    #[test]
    fn a_layer_s_cost_is_the_difference() {
        let with_extensions = || {
            let mut req = plain();
            req.extensions_mut().insert(());
            req
        };
        let base = allocations_per_request(Bare::new(), with_extensions);
        let svc = HookLayer::new(()).layer(Bare::new());
        assert_eq!(allocations_per_request(svc, with_extensions), base);
    }
}
