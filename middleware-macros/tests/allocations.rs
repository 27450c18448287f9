//! Heap allocations per request through generated middleware, counted per thread with
//! `allocation-counter` (the kit's harness, `middleware_core::testing`): each macro costs
//! exactly what the same logic hand-written against the core trait costs, and the `before`
//! form costs nothing.
#![allow(missing_docs)]

use std::ops::ControlFlow;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use middleware_core::testing::{Bare, allocations_per_request, measure, measure_per_request};
use middleware_core::{
    Context, Hook, HookLayer, Layer, Middleware, MiddlewareLayer, Next, Observe, ObserveLayer,
    Outcome, RequestExt, ResponseBody, middleware_fn,
};
use tower::{Layer as _, Service};

/// A request whose extension map is allocated up front (as a router would have), so only the
/// layers under test are counted.
fn request() -> Request<String> {
    let mut req = Request::new(String::new());
    req.extensions_mut().insert(ConnInfo);
    req
}

/// Allocations per request through `svc` (the kit's harness).
fn per_request<S>(svc: S) -> u64
where
    S: Service<Request<String>>,
    S::Error: std::fmt::Debug,
{
    allocations_per_request(svc, request)
}

#[derive(Clone, Copy)]
struct ConnInfo;

// ----- the same logic, three ways ----------------------------------------------------------------

/// Hand-written around middleware: reads the context, rewrites the status. (The logic itself
/// must not allocate: inserting a header into an empty `HeaderMap` would.)
struct HandAround;

impl Middleware for HandAround {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let cx = req.context().clone();
        let mut res = next.run(req).await?;
        if !cx.is_cancelled() {
            *res.status_mut() = StatusCode::ACCEPTED;
        }
        Ok(res)
    }
}

/// The same, derived.
#[derive(Clone, Layer)]
struct DerivedAround {
    #[middleware(default = StatusCode::ACCEPTED)]
    status: StatusCode,
}

impl Middleware for DerivedAround {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let cx = req.context().clone();
        let mut res = next.run(req).await?;
        if !cx.is_cancelled() {
            *res.status_mut() = self.status;
        }
        Ok(res)
    }
}

/// The same, as an attribute with the context as a parameter.
#[middleware_fn]
async fn fn_around<N: Next>(req: Request<N::ReqBody>, next: N, cx: &Context) -> Outcome<N> {
    let mut res = next.run(req).await?;
    if !cx.is_cancelled() {
        *res.status_mut() = StatusCode::ACCEPTED;
    }
    Ok(res)
}

/// Hand-written around middleware without a context: rewrites the status.
struct HandPlain;

impl Middleware for HandPlain {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let mut res = next.run(req).await?;
        *res.status_mut() = StatusCode::ACCEPTED;
        Ok(res)
    }
}

/// The same, as an attribute.
#[middleware_fn]
async fn fn_plain<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let mut res = next.run(req).await?;
    *res.status_mut() = StatusCode::ACCEPTED;
    Ok(res)
}

/// Hand-written around middleware that reads the request before passing it on, as an
/// `async fn`: the request is stored twice in its future (the argument, and the local that
/// the read borrowed, kept across the `.await`).
struct HandReads;

impl Middleware for HandReads {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let keyed = req.headers().contains_key("x-key");
        let mut res = next.run(req).await?;
        if keyed {
            *res.status_mut() = StatusCode::ACCEPTED;
        }
        Ok(res)
    }
}

/// The same, written as the trait docs advise: `handle` returns an `async move` block, which
/// stores the request once.
struct HandReadsLean;

impl Middleware for HandReadsLean {
    #[allow(clippy::manual_async_fn)] // the point: an `async fn` stores the request twice
    fn handle<N: Next>(
        &self,
        req: Request<N::ReqBody>,
        next: N,
    ) -> impl Future<Output = Outcome<N>> + Send {
        async move {
            let keyed = req.headers().contains_key("x-key");
            let mut res = next.run(req).await?;
            if keyed {
                *res.status_mut() = StatusCode::ACCEPTED;
            }
            Ok(res)
        }
    }
}

/// The same, as an attribute.
#[middleware_fn]
async fn fn_reads<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let keyed = req.headers().contains_key("x-key");
    let mut res = next.run(req).await?;
    if keyed {
        *res.status_mut() = StatusCode::ACCEPTED;
    }
    Ok(res)
}

/// Hand-written hook: checks a header, rewrites the status.
struct HandHook;

impl Hook for HandHook {
    type State = bool;

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>, bool> {
        ControlFlow::Continue(req.headers().contains_key("x-key"))
    }

    fn after<B>(&self, keyed: bool, res: &mut Response<ResponseBody<B>>) {
        if !keyed {
            *res.status_mut() = StatusCode::ACCEPTED;
        }
    }
}

/// The same, derived in hook mode.
#[derive(Clone, Layer)]
#[middleware(hook)]
struct DerivedHook;

impl Hook for DerivedHook {
    type State = bool;

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>, bool> {
        ControlFlow::Continue(req.headers().contains_key("x-key"))
    }

    fn after<B>(&self, keyed: bool, res: &mut Response<ResponseBody<B>>) {
        if !keyed {
            *res.status_mut() = StatusCode::ACCEPTED;
        }
    }
}

/// The same work as an observer, hand-written...
#[derive(Clone)]
struct HandObserver;

impl Observe for HandObserver {
    type State = bool;

    fn before<B>(&self, req: &mut Request<B>) -> bool {
        req.headers().contains_key("x-key")
    }

    fn after<B>(&self, keyed: bool, res: &mut Response<B>) {
        if !keyed {
            *res.status_mut() = StatusCode::ACCEPTED;
        }
    }
}

/// ... and derived in observe mode.
#[derive(Clone, Layer)]
#[middleware(observe)]
struct DerivedObserver;

impl Observe for DerivedObserver {
    type State = bool;

    fn before<B>(&self, req: &mut Request<B>) -> bool {
        req.headers().contains_key("x-key")
    }

    fn after<B>(&self, keyed: bool, res: &mut Response<B>) {
        if !keyed {
            *res.status_mut() = StatusCode::ACCEPTED;
        }
    }
}

/// The same, as a `before` fn with an `after` fn.
#[middleware_fn(before, after = fn_hook_after)]
fn fn_hook<B>(req: &mut Request<B>) -> ControlFlow<Response<Bytes>, bool> {
    ControlFlow::Continue(req.headers().contains_key("x-key"))
}

fn fn_hook_after<B>(keyed: bool, res: &mut Response<ResponseBody<B>>) {
    if !keyed {
        *res.status_mut() = StatusCode::ACCEPTED;
    }
}

// ----- the counts -----------------------------------------------------------------------------

#[test]
fn derived_around_costs_what_hand_written_around_costs() {
    let hand = per_request(MiddlewareLayer::new(HandAround).layer(Bare::new()));
    let derived = per_request(DerivedAround::new().layer(Bare::new()));
    assert_eq!(derived, hand);
    // The context (2) and the boxed future (1), over the request's own 2.
    assert_eq!(hand - per_request(Bare::new()), 3);
}

#[test]
fn attribute_around_costs_what_hand_written_around_costs() {
    let hand = per_request(MiddlewareLayer::new(HandAround).layer(Bare::new()));
    let generated = per_request(MiddlewareLayer::new(fn_around()).layer(Bare::new()));
    assert_eq!(generated, hand);
}

#[test]
fn attribute_around_future_is_no_larger_than_the_hand_written_one() {
    // The function becomes `handle` itself, not a second state machine awaited inside it: the
    // boxed future (the only allocation here) is no larger, alone and in a chain.
    let hand = measure_per_request(MiddlewareLayer::new(HandPlain).layer(Bare::new()), request);
    let generated =
        measure_per_request(MiddlewareLayer::new(fn_plain()).layer(Bare::new()), request);
    assert_eq!(generated.count_total, hand.count_total);
    assert!(
        generated.bytes_total <= hand.bytes_total,
        "{generated:?} vs {hand:?}"
    );
    let hand = measure_per_request(
        MiddlewareLayer::new(HandPlain.then(HandPlain).then(HandPlain)).layer(Bare::new()),
        request,
    );
    let generated = measure_per_request(
        MiddlewareLayer::new(fn_plain().then(fn_plain()).then(fn_plain())).layer(Bare::new()),
        request,
    );
    assert_eq!(generated.count_total, hand.count_total);
    assert!(
        generated.bytes_total <= hand.bytes_total,
        "{generated:?} vs {hand:?}"
    );
}

/// Bytes allocated per request through `svc`.
fn bytes<S>(svc: S) -> u64
where
    S: Service<Request<String>>,
    S::Error: std::fmt::Debug,
{
    measure_per_request(svc, request).bytes_total
}

#[test]
fn attribute_around_stores_a_request_it_reads_once() {
    let request_size = u64::try_from(size_of::<Request<String>>()).unwrap();
    // The attribute's future is the one the trait docs advise writing by hand.
    let generated = bytes(MiddlewareLayer::new(fn_reads()).layer(Bare::new()));
    assert_eq!(
        generated,
        bytes(MiddlewareLayer::new(HandReadsLean).layer(Bare::new()))
    );
    // An `async fn handle` that reads the request before `next.run(req).await` keeps a second
    // copy of it across the await: a request's size more, per level.
    let twice = bytes(MiddlewareLayer::new(HandReads).layer(Bare::new()));
    assert!(twice >= generated + request_size, "{twice} vs {generated}");
    let generated = bytes(
        MiddlewareLayer::new(fn_reads().then(fn_reads()).then(fn_reads())).layer(Bare::new()),
    );
    assert_eq!(
        generated,
        bytes(
            MiddlewareLayer::new(HandReadsLean.then(HandReadsLean).then(HandReadsLean))
                .layer(Bare::new())
        )
    );
    let twice =
        bytes(MiddlewareLayer::new(HandReads.then(HandReads).then(HandReads)).layer(Bare::new()));
    assert!(
        twice >= generated + 3 * request_size,
        "{twice} vs {generated}"
    );
}

#[test]
fn derived_hook_costs_what_hand_written_hook_costs_which_is_nothing() {
    let base = per_request(Bare::new());
    let hand = per_request(HookLayer::new(HandHook).layer(Bare::new()));
    let derived = per_request(DerivedHook.layer(Bare::new()));
    assert_eq!(derived, hand);
    assert_eq!(derived - base, 0);
}

#[test]
fn derived_observer_costs_what_hand_written_observer_costs_which_is_nothing() {
    let base = per_request(Bare::new());
    let hand = per_request(ObserveLayer::new(HandObserver).layer(Bare::new()));
    let derived = per_request(DerivedObserver.layer(Bare::new()));
    assert_eq!(derived, hand);
    assert_eq!(derived - base, 0);
}

#[test]
fn the_before_form_adds_no_allocation() {
    let base = per_request(Bare::new());
    let generated = per_request(HookLayer::new(fn_hook()).layer(Bare::new()));
    assert_eq!(generated - base, 0);
    let five =
        HookLayer::new(fn_hook()).layer(HookLayer::new(fn_hook()).layer(
            HookLayer::new(fn_hook()).layer(
                HookLayer::new(fn_hook()).layer(HookLayer::new(fn_hook()).layer(Bare::new())),
            ),
        ));
    assert_eq!(per_request(five) - base, 0);
}

// ----- the README's side by side -----------------------------------------------------------------

mod readme {
    //! The header-stamping middleware of the README, three ways (the README's own blocks are
    //! doc tests; these copies are counted).

    use std::{
        future::Future,
        pin::Pin,
        task::{Context, Poll, ready},
    };

    use http::{HeaderValue, Request, Response};
    use middleware_core::{Layer, Middleware, Next, Outcome, middleware_fn};
    use tower::Service;

    #[derive(Clone)]
    pub(super) struct StampLayer {
        pub(super) value: HeaderValue,
    }

    impl<S> tower::Layer<S> for StampLayer {
        type Service = Stamp<S>;

        fn layer(&self, inner: S) -> Stamp<S> {
            Stamp {
                inner,
                value: self.value.clone(),
            }
        }
    }

    #[derive(Clone)]
    pub(super) struct Stamp<S> {
        inner: S,
        value: HeaderValue,
    }

    impl<S, Req, B> Service<Req> for Stamp<S>
    where
        S: Service<Req, Response = Response<B>>,
    {
        type Response = Response<B>;
        type Error = S::Error;
        type Future = ResponseFuture<S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, req: Req) -> Self::Future {
            ResponseFuture {
                inner: self.inner.call(req),
                value: Some(self.value.clone()),
            }
        }
    }

    pin_project_lite::pin_project! {
        pub(super) struct ResponseFuture<F> {
            #[pin]
            inner: F,
            value: Option<HeaderValue>,
        }
    }

    impl<F, B, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<Response<B>, E>>,
    {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            let mut res = ready!(this.inner.poll(cx))?;
            let value = this.value.take().expect("future polled after completion");
            res.headers_mut().insert("x-stamp", value);
            Poll::Ready(Ok(res))
        }
    }

    #[derive(Clone, Layer)]
    pub(super) struct DerivedStamp {
        value: HeaderValue,
    }

    impl Middleware for DerivedStamp {
        async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
            let mut res = next.run(req).await?;
            res.headers_mut().insert("x-stamp", self.value.clone());
            Ok(res)
        }
    }

    #[middleware_fn(state = HeaderValue)]
    pub(super) async fn stamp<N: Next>(
        req: Request<N::ReqBody>,
        next: N,
        value: &HeaderValue,
    ) -> Outcome<N> {
        let mut res = next.run(req).await?;
        res.headers_mut().insert("x-stamp", value.clone());
        Ok(res)
    }
}

#[test]
fn readme_stamp_costs_one_boxed_future_more_than_by_hand() {
    let value = http::HeaderValue::from_static("v1");
    let hand = per_request(
        readme::StampLayer {
            value: value.clone(),
        }
        .layer(Bare::new()),
    );
    let derived = per_request(readme::DerivedStamp::new(value.clone()).layer(Bare::new()));
    let generated = per_request(MiddlewareLayer::new(readme::stamp(value)).layer(Bare::new()));
    // By hand: nothing but the response's header map, which the first insert allocates.
    let header_map = measure(|| {
        let mut res = Response::new(String::new());
        res.headers_mut()
            .insert("x-stamp", http::HeaderValue::from_static("v1"));
        drop(res);
    });
    assert_eq!(hand - per_request(Bare::new()), header_map.count_total);
    assert_eq!(derived - hand, 1);
    assert_eq!(generated - hand, 1);
}
