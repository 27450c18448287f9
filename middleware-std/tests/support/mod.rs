//! What the allocation tests of this crate share: a ready inner service and an exact
//! per-request allocation count (`allocation-counter` counts per thread, so parallel tests do
//! not disturb each other).

use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use middleware_std::RequestExt;
use tower_service::Service;

const REQUESTS: u64 = 100;

/// The inner service: `200` with an empty body and, if asked, one header (so the response's
/// header map is already allocated, as it is for nearly every real response) and a context
/// mark.
#[derive(Clone, Copy)]
pub(crate) struct Bare {
    pub(crate) with_header: bool,
    pub(crate) mark: bool,
}

impl Service<Request<String>> for Bare {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        if self.mark {
            if let Some(cx) = req.try_context() {
                cx.mark("db", Duration::from_millis(1));
            }
        }
        let mut res = Response::new(String::new());
        if self.with_header {
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            );
        }
        std::future::ready(Ok(res))
    }
}

/// An extension, so that a request's extension map is already allocated (as after a router
/// or a connection-info layer) and only what the layers add is counted.
#[derive(Clone, Copy)]
pub(crate) struct ConnInfo;

/// Allocations per request through `svc` (the request `make` builds included), each request
/// answered `200` in one poll.
pub(crate) fn per_request<S, B>(mut svc: S, make: impl Fn() -> Request<String>) -> u64
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = TaskContext::from_waker(Waker::noop());
    let mut one = || {
        let req = make();
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut future = pin!(svc.call(req));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(res) => {
                let res = res.expect("request failed");
                assert_eq!(res.status(), StatusCode::OK);
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
