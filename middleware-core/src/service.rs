//! [`MiddlewareService`], [`HookService`] and [`ObserveService`]: the tower services the layers
//! make.

use std::{
    fmt, mem,
    ops::ControlFlow,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
};

use http_body::Body;
use tower_service::Service;

use crate::{
    body::ResponseBody,
    context::{DropGuard, RequestExt},
    future::{HookFuture, ObserveFuture, ResponseFuture},
    layer::{HookLayer, MiddlewareLayer, ObserveLayer},
    middleware::{Hook, Middleware, Observe},
    next::ServiceNext,
};

/// The tower service of a [`MiddlewareLayer`]: runs an around-style [`Middleware`] around `S`.
///
/// Generic over request and response bodies; `Clone`, `Send` and `Sync` when `S` is; its error
/// is `S::Error`, unchanged.
pub struct MiddlewareService<M, S> {
    middleware: Arc<M>,
    inner: S,
}

impl<M: Middleware, S> MiddlewareService<M, S> {
    /// Wraps `inner` with `middleware`.
    pub fn new(inner: S, middleware: M) -> Self {
        Self::from_arc(Arc::new(middleware), inner)
    }

    /// The layer form, same as [`MiddlewareLayer::new`].
    pub fn layer(middleware: M) -> MiddlewareLayer<M> {
        MiddlewareLayer::new(middleware)
    }
}

impl<M, S> MiddlewareService<M, S> {
    pub(crate) fn from_arc(middleware: Arc<M>, inner: S) -> Self {
        Self { middleware, inner }
    }

    define_inner_service_accessors!();
}

impl<M, S: Clone> Clone for MiddlewareService<M, S> {
    fn clone(&self) -> Self {
        Self {
            middleware: Arc::clone(&self.middleware),
            inner: self.inner.clone(),
        }
    }
}

impl<M: fmt::Debug, S: fmt::Debug> fmt::Debug for MiddlewareService<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(MiddlewareService))
            .field("middleware", &self.middleware)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<M, S, B, RB> Service<http::Request<B>> for MiddlewareService<M, S>
where
    M: Middleware,
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Body + Send + 'static,
    RB: Body + Send + 'static,
{
    type Response = http::Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone stays behind for the next `poll_ready`; the ready service goes to `next`.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        let middleware = Arc::clone(&self.middleware);
        ResponseFuture::new(async move {
            // Armed now if the request has a context, else by `ServiceNext` if one exists by
            // the time the inner service is called: the context stays lazy.
            let mut guard = OnceLock::new();
            if let Some(cx) = req.try_context() {
                let _ = guard.set(cx.drop_guard());
            }
            let result = middleware
                .handle(req, ServiceNext::new(inner, &guard))
                .await;
            if let Some(guard) = guard.get_mut() {
                guard.disarm();
            }
            result
        })
    }
}

/// The tower service of a [`HookLayer`]: runs a [`Hook`] before and after `S`.
///
/// Generic over request and response bodies; `Clone`, `Send` and `Sync` when `S` is; its error
/// is `S::Error`, unchanged; its future is the named, allocation-free [`HookFuture`].
pub struct HookService<H, S> {
    hook: Arc<H>,
    inner: S,
}

impl<H: Hook, S> HookService<H, S> {
    /// Wraps `inner` with `hook`.
    pub fn new(inner: S, hook: H) -> Self {
        Self::from_arc(Arc::new(hook), inner)
    }

    /// The layer form, same as [`HookLayer::new`].
    pub fn layer(hook: H) -> HookLayer<H> {
        HookLayer::new(hook)
    }
}

impl<H, S> HookService<H, S> {
    pub(crate) fn from_arc(hook: Arc<H>, inner: S) -> Self {
        Self { hook, inner }
    }

    define_inner_service_accessors!();
}

impl<H, S: Clone> Clone for HookService<H, S> {
    fn clone(&self) -> Self {
        Self {
            hook: Arc::clone(&self.hook),
            inner: self.inner.clone(),
        }
    }
}

impl<H: fmt::Debug, S: fmt::Debug> fmt::Debug for HookService<H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(HookService))
            .field("hook", &self.hook)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<H, S, B, RB> Service<http::Request<B>> for HookService<H, S>
where
    H: Hook,
    S: Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = http::Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = HookFuture<H, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.hook.before(&mut req) {
            ControlFlow::Break(response) => HookFuture::short(response),
            ControlFlow::Continue(state) => {
                let guard = req
                    .try_context()
                    .map_or_else(DropGuard::none, crate::Context::drop_guard);
                // The inner service is called right here, so the service that reported ready is
                // the one called: no clone, no `mem::replace` needed. Built in place: the inner
                // future is not moved through a temporary.
                HookFuture::running(self.inner.call(req), Arc::clone(&self.hook), state, guard)
            }
        }
    }
}

/// The tower service of an [`ObserveLayer`]: runs an [`Observe`] before and after `S`.
///
/// Generic over request and response bodies; `Clone`, `Send` and `Sync` when `S` is; its
/// response and error are `S`'s, unchanged; its future is the named, allocation-free
/// [`ObserveFuture`].
#[derive(Clone)]
pub struct ObserveService<O, S> {
    observer: O,
    inner: S,
}

impl<O: Observe + Clone, S> ObserveService<O, S> {
    /// Wraps `inner` with `observer`.
    pub fn new(inner: S, observer: O) -> Self {
        Self::from_parts(observer, inner)
    }

    /// The layer form, same as [`ObserveLayer::new`].
    pub fn layer(observer: O) -> ObserveLayer<O> {
        ObserveLayer::new(observer)
    }
}

impl<O, S> ObserveService<O, S> {
    pub(crate) const fn from_parts(observer: O, inner: S) -> Self {
        Self { observer, inner }
    }

    define_inner_service_accessors!();
}

impl<O: fmt::Debug, S: fmt::Debug> fmt::Debug for ObserveService<O, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ObserveService))
            .field("observer", &self.observer)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<O, S, B, RB> Service<http::Request<B>> for ObserveService<O, S>
where
    O: Observe + Clone,
    S: Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ObserveFuture<O, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let state = self.observer.before(&mut req);
        let guard = req
            .try_context()
            .map_or_else(DropGuard::none, crate::Context::drop_guard);
        // As in `HookService::call`: the ready inner service is called right here, and the
        // inner future is built in place.
        ObserveFuture {
            future: self.inner.call(req),
            observer: self.observer.clone(),
            state: Some(state),
            guard,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        ops::ControlFlow,
        sync::{
            Mutex,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use bytes::Bytes;
    use http::{HeaderValue, Request, Response, StatusCode};
    use http_body_util::BodyExt;
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    use tower_layer::Layer;

    use std::future::Future as _;

    use super::*;
    #[cfg(feature = "testing")]
    use crate::testing::Conformance;
    use crate::{CancelCause, Context, Next, Outcome};

    #[tokio::test]
    async fn around_middleware_changes_request_and_response() {
        let svc = ServiceBuilder::new()
            .layer(MiddlewareLayer::new(Stamp("outer")))
            .service(echo_header());
        let res = svc.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(res.headers()["x-seen"], "outer");
        assert_eq!(res.headers()["x-stamp"], "outer");
        assert_eq!(body_string(res).await, "echo");
    }

    #[tokio::test]
    async fn around_middleware_short_circuits_without_calling_inner() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = ServiceBuilder::new()
            .layer(MiddlewareLayer::new(Deny))
            .service(counting(&calls));
        let res = svc.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn chain_runs_outer_first_and_sees_response_last() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let chain = Record("a", Arc::clone(&log))
            .then(Record("b", Arc::clone(&log)))
            .then(Record("c", Arc::clone(&log)));
        let svc = MiddlewareLayer::new(chain).layer(echo_header());
        svc.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["a>", "b>", "c>", "<c", "<b", "<a"]);
    }

    #[tokio::test]
    async fn hook_short_circuits_and_stamps() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = HookLayer::new(RequireHeader).layer(counting(&calls));
        let res = svc
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_string(res).await, "missing x-key");
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        let req = Request::builder()
            .header("x-key", "k")
            .body(String::new())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-key-echo"], "k");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn not_ready_inner_keeps_both_adapters_not_ready() {
        let (inner, mut handle) = tower_test_mock();
        let mut around = MiddlewareLayer::new(Stamp("x")).layer(inner.clone());
        let mut hook = HookLayer::new(()).layer(inner);
        handle.allow(0);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(around.poll_ready(&mut cx).is_pending());
        assert!(hook.poll_ready(&mut cx).is_pending());
        handle.allow(2);
        assert!(around.poll_ready(&mut cx).is_ready());
        assert!(hook.poll_ready(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn inner_errors_pass_through_unchanged() {
        let failing = service_fn(|_: Request<String>| async {
            Err::<Response<String>, _>(std::io::Error::other("boom"))
        });
        let err = MiddlewareLayer::new(Stamp("x"))
            .layer(failing)
            .oneshot(Request::new(String::new()))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "boom");
        let err = HookLayer::new(())
            .layer(failing)
            .oneshot(Request::new(String::new()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Other);
    }

    #[tokio::test]
    async fn one_context_per_request_through_several_layers() {
        let seen = Arc::new(Mutex::new(Vec::<Context>::new()));
        let svc = ServiceBuilder::new()
            .layer(MiddlewareLayer::new(Capture(Arc::clone(&seen))))
            .layer(HookLayer::new(CaptureHook(Arc::clone(&seen))))
            .layer(MiddlewareLayer::new(
                Capture(Arc::clone(&seen)).then(Capture(Arc::clone(&seen))),
            ))
            .service(service_fn({
                let seen = Arc::clone(&seen);
                move |req: Request<String>| {
                    seen.lock()
                        .unwrap()
                        .push(req.try_context().unwrap().clone());
                    async { Ok::<_, Infallible>(Response::new(String::new())) }
                }
            }));
        svc.clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        svc.oneshot(Request::new(String::new())).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 10);
        let (first, second) = seen.split_at(5);
        assert!(first.iter().all(|cx| cx.same_request(&first[0])));
        assert!(second.iter().all(|cx| cx.same_request(&second[0])));
        assert!(
            !first[0].same_request(&second[0]),
            "each request gets its own context"
        );
    }

    /// Spawns work that reports why the context was cancelled, then never answers.
    fn never_answers(
        tx: tokio::sync::oneshot::Sender<CancelCause>,
    ) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static {
        let tx = Arc::new(Mutex::new(Some(tx)));
        service_fn(move |mut req: Request<String>| {
            let cx = crate::RequestExt::context(&mut req).clone();
            let tx = tx.lock().unwrap().take().unwrap();
            tokio::spawn(async move { tx.send(cx.cancelled().await).unwrap() });
            std::future::pending::<Result<Response<String>, Infallible>>()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_response_future_cancels_with_dropped() {
        // The middleware creates the context; the adapter watches it.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let svc = MiddlewareLayer::new(Capture(Arc::default())).layer(never_answers(tx));
        let outcome = tokio::time::timeout(
            Duration::from_secs(1),
            svc.oneshot(Request::new(String::new())),
        )
        .await;
        assert!(outcome.is_err(), "the handler never finishes");
        assert_eq!(rx.await.unwrap(), CancelCause::Dropped);
    }

    #[tokio::test(start_paused = true)]
    async fn a_context_made_before_the_adapter_is_watched_even_if_the_middleware_ignores_it() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let svc = ServiceBuilder::new()
            .layer(HookLayer::new(crate::EnsureContext))
            .layer(MiddlewareLayer::new(Stamp("x")))
            .service(never_answers(tx));
        let outcome = tokio::time::timeout(
            Duration::from_secs(1),
            svc.oneshot(Request::new(String::new())),
        )
        .await;
        assert!(outcome.is_err());
        assert_eq!(rx.await.unwrap(), CancelCause::Dropped);
    }

    /// Races the inner call against a short timer and answers by itself when it wins.
    struct GiveUp;

    impl Middleware for GiveUp {
        async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
            let _ = crate::RequestExt::context(&mut req);
            tokio::select! {
                res = next.run(req) => res,
                () = tokio::time::sleep(Duration::from_millis(10)) => {
                    Ok(Response::new(ResponseBody::full("gave up")))
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_inner_call_cancels_with_dropped() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let svc = MiddlewareLayer::new(GiveUp).layer(never_answers(tx));
        let res = svc.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(body_string(res).await, "gave up");
        assert_eq!(rx.await.unwrap(), CancelCause::Dropped);
    }

    #[tokio::test]
    async fn the_around_adapter_does_not_create_a_context() {
        let svc =
            MiddlewareLayer::new(Stamp("x")).layer(service_fn(|req: Request<String>| async move {
                assert!(req.try_context().is_none());
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
        svc.oneshot(Request::new(String::new())).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_hook_adapter_fires_dropped_when_a_context_exists() {
        let mut req = Request::new(String::new());
        let cx = crate::RequestExt::context(&mut req).clone();
        let svc = HookLayer::new(()).layer(service_fn(|_: Request<String>| {
            std::future::pending::<Result<Response<String>, Infallible>>()
        }));
        let outcome = tokio::time::timeout(Duration::from_millis(10), svc.oneshot(req)).await;
        assert!(outcome.is_err());
        assert_eq!(cx.cause(), Some(CancelCause::Dropped));
    }

    #[tokio::test]
    async fn a_completed_request_is_not_cancelled() {
        let mut req = Request::new(String::new());
        let cx = crate::RequestExt::context(&mut req).clone();
        MiddlewareLayer::new(Stamp("x"))
            .layer(echo_header())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(cx.cause(), None);
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn adapters_pass_the_conformance_kit() {
        Conformance::new(MiddlewareLayer::new(Stamp("x")))
            .run()
            .await;
        Conformance::new(MiddlewareLayer::new(Stamp("x").then(Stamp("y")).then(())))
            .run()
            .await;
        Conformance::new(HookLayer::new(())).run().await;
        Conformance::new(ObserveLayer::new(())).run().await;
        Conformance::new(ObserveLayer::new(MakeContext)).run().await;
        Conformance::new(HookLayer::new(RequireHeader))
            .with_request(|| {
                Request::builder()
                    .header("x-key", "k")
                    .body(String::new())
                    .unwrap()
            })
            .run()
            .await;
    }

    #[tokio::test]
    async fn observe_runs_before_then_inner_then_after_with_the_state() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let svc = ServiceBuilder::new()
            .layer(ObserveLayer::new(Trace("outer", Arc::clone(&log))))
            .layer(ObserveLayer::new(Trace("inner", Arc::clone(&log))))
            .service(service_fn({
                let log = Arc::clone(&log);
                move |req: Request<String>| {
                    let seen = req.headers()["x-trace"].to_str().unwrap().to_owned();
                    log.lock().unwrap().push(format!("service saw {seen}"));
                    async { Ok::<_, Infallible>(Response::new(String::from("body"))) }
                }
            }));
        let res = svc.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "before outer",
                "before inner",
                "service saw outer,inner",
                "after inner (state: inner#0)",
                "after outer (state: outer#0)",
            ]
        );
        assert_eq!(res.headers()["x-after"], "outer");
        assert_eq!(res.into_body(), "body", "the inner body, unwrapped");
    }

    #[tokio::test]
    async fn observe_leaves_the_response_type_unchanged() {
        fn same_response<S>(_: &S)
        where
            S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
        {
        }
        let svc = ObserveLayer::new(()).layer(ObserveLayer::new(()).layer(echo_header()));
        same_response(&svc);
        // A hook inside an observer: the observer's response is the hook's, unchanged.
        let mixed = ObserveLayer::new(()).layer(HookLayer::new(RequireHeader).layer(echo_header()));
        let res: Response<ResponseBody<String>> =
            mixed.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn observe_drops_the_state_without_after_on_an_inner_error() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let failing = service_fn(|_: Request<String>| async {
            Err::<Response<String>, _>(std::io::Error::other("boom"))
        });
        let err = ObserveLayer::new(Trace("t", Arc::clone(&log)))
            .layer(failing)
            .oneshot(Request::new(String::new()))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "boom", "the inner error, unchanged");
        assert_eq!(*log.lock().unwrap(), ["before t", "dropped t#0"]);
    }

    #[tokio::test]
    async fn observe_drops_the_state_without_after_when_the_future_is_dropped() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut svc = ObserveLayer::new(Trace("t", Arc::clone(&log))).layer(service_fn(
            |_: Request<String>| std::future::pending::<Result<Response<String>, Infallible>>(),
        ));
        let mut future = svc.call(Request::new(String::new()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::Pin::new(&mut future).poll(&mut cx).is_pending());
        drop(future);
        assert_eq!(*log.lock().unwrap(), ["before t", "dropped t#0"]);
    }

    #[tokio::test]
    async fn observe_fires_dropped_when_a_context_exists_like_the_hook_adapter() {
        for observe in [true, false] {
            let mut req = Request::new(String::new());
            let cx = crate::RequestExt::context(&mut req).clone();
            let inner = service_fn(|_: Request<String>| {
                std::future::pending::<Result<Response<String>, Infallible>>()
            });
            let mut cx_task = std::task::Context::from_waker(std::task::Waker::noop());
            if observe {
                let mut future = ObserveLayer::new(()).layer(inner).call(req);
                assert!(
                    std::pin::Pin::new(&mut future)
                        .poll(&mut cx_task)
                        .is_pending()
                );
            } else {
                let mut future = HookLayer::new(()).layer(inner).call(req);
                assert!(
                    std::pin::Pin::new(&mut future)
                        .poll(&mut cx_task)
                        .is_pending()
                );
            }
            assert_eq!(cx.cause(), Some(CancelCause::Dropped), "observe: {observe}");
        }
    }

    #[tokio::test]
    async fn observe_does_not_cancel_a_request_that_completed_or_failed() {
        let mut req = Request::new(String::new());
        let cx = crate::RequestExt::context(&mut req).clone();
        ObserveLayer::new(())
            .layer(echo_header())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(cx.cause(), None);

        let mut req = Request::new(String::new());
        let cx = crate::RequestExt::context(&mut req).clone();
        let failing = service_fn(|_: Request<String>| async {
            Err::<Response<String>, _>(std::io::Error::other("boom"))
        });
        let _ = ObserveLayer::new(()).layer(failing).oneshot(req).await;
        assert_eq!(cx.cause(), None, "an error is an ending, not a drop");
    }

    #[tokio::test]
    async fn observe_guards_a_context_that_before_created() {
        let made = Arc::new(Mutex::new(None));
        let mut future = ObserveLayer::new(Remember(Arc::clone(&made)))
            .layer(service_fn(|_: Request<String>| {
                std::future::pending::<Result<Response<String>, Infallible>>()
            }))
            .call(Request::new(String::new()));
        let mut cx_task = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            std::pin::Pin::new(&mut future)
                .poll(&mut cx_task)
                .is_pending()
        );
        let cx = made
            .lock()
            .unwrap()
            .clone()
            .expect("`before` made a context");
        assert_eq!(cx.cause(), None);
        drop(future);
        assert_eq!(cx.cause(), Some(CancelCause::Dropped));
    }

    #[test]
    fn a_panic_in_the_inner_future_cancels_like_a_drop_for_both_adapters() {
        for observe in [true, false] {
            let mut req = Request::new(String::new());
            let cx = crate::RequestExt::context(&mut req).clone();
            let inner = service_fn(|_: Request<String>| async {
                panic!("inner panicked");
                #[allow(unreachable_code)]
                Ok::<Response<String>, Infallible>(Response::new(String::new()))
            });
            let mut cx_task = std::task::Context::from_waker(std::task::Waker::noop());
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if observe {
                    let future = std::pin::pin!(ObserveLayer::new(()).layer(inner).call(req));
                    let _ = future.poll(&mut cx_task);
                } else {
                    let future = std::pin::pin!(HookLayer::new(()).layer(inner).call(req));
                    let _ = future.poll(&mut cx_task);
                }
            }));
            assert!(caught.is_err());
            assert_eq!(cx.cause(), Some(CancelCause::Dropped), "observe: {observe}");
        }
    }

    #[test]
    fn a_panic_in_before_or_after_does_not_cancel_for_both_adapters() {
        // `before` runs before the guard exists; `after` after the inner service finished.
        for (observe, in_before) in [(true, true), (true, false), (false, true), (false, false)] {
            let mut req = Request::new(String::new());
            let cx = crate::RequestExt::context(&mut req).clone();
            let mut cx_task = std::task::Context::from_waker(std::task::Waker::noop());
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if observe {
                    let mut svc = ObserveLayer::new(Panics(in_before)).layer(echo_header());
                    let _ = std::pin::pin!(svc.call(req)).poll(&mut cx_task);
                } else {
                    let mut svc = HookLayer::new(Panics(in_before)).layer(echo_header());
                    let _ = std::pin::pin!(svc.call(req)).poll(&mut cx_task);
                }
            }));
            assert!(caught.is_err(), "observe: {observe}, before: {in_before}");
            assert_eq!(cx.cause(), None, "observe: {observe}, before: {in_before}");
        }
    }

    #[test]
    fn observe_adapter_describes_and_debugs_with_the_observer_name() {
        let svc = ObserveLayer::new(MakeContext).layer(crate::described("handler", ()));
        assert_eq!(crate::describe(&svc).to_string(), "MakeContext -> handler");
        assert_eq!(
            format!("{:?}", ObserveLayer::new(MakeContext)),
            "ObserveLayer { observer: MakeContext }"
        );
        assert!(format!("{svc:?}").starts_with("ObserveService { observer: MakeContext, inner: "));
        let mut svc = ObserveLayer::new(MakeContext).layer(echo_header());
        let future = svc.call(Request::new(String::new()));
        assert_eq!(
            format!("{future:?}"),
            format!(
                "ObserveFuture {{ observer: {:?}, .. }}",
                std::any::type_name::<MakeContext>()
            )
        );
    }

    #[test]
    fn adapters_are_clone_send_sync_when_their_parts_are() {
        fn assert_all<T: Clone + Send + Sync + 'static>(_: &T) {}
        let svc = echo_header();
        assert_all(&MiddlewareLayer::new(Stamp("x")).layer(svc.clone()));
        assert_all(&HookLayer::new(RequireHeader).layer(svc));
        assert_all(&MiddlewareLayer::new(Stamp("x")));
        assert_all(&HookLayer::new(()));
        assert_all(&ObserveLayer::new(MakeContext).layer(echo_header()));
        assert_all(&ObserveLayer::new(()));
    }

    #[test]
    fn response_futures_are_send() {
        fn assert_send<T: Send + 'static>(_: T) {}
        let mut around = MiddlewareLayer::new(Stamp("x").then(Deny)).layer(echo_header());
        assert_send(around.call(Request::new(String::new())));
        let mut hook = HookLayer::new(RequireHeader).layer(echo_header());
        assert_send(hook.call(Request::new(String::new())));
        let mut observe = ObserveLayer::new(MakeContext).layer(echo_header());
        assert_send(observe.call(Request::new(String::new())));
    }

    // ----- fixtures -----------------------------------------------------------------------

    /// Sets `x-seen` on the request and `x-stamp` on the response.
    #[derive(Debug)]
    struct Stamp(&'static str);

    impl Middleware for Stamp {
        async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
            req.headers_mut()
                .insert("x-seen", HeaderValue::from_static(self.0));
            let mut res = next.run(req).await?;
            res.headers_mut()
                .insert("x-stamp", HeaderValue::from_static(self.0));
            Ok(res)
        }
    }

    /// Answers 403 through the error model.
    struct Deny;

    impl Middleware for Deny {
        async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, _next: N) -> Outcome<N> {
            let cx = crate::RequestExt::context(&mut req).clone();
            Ok(crate::Error::new(StatusCode::FORBIDDEN).into_response(&cx))
        }
    }

    struct Record(&'static str, Arc<Mutex<Vec<String>>>);

    impl Middleware for Record {
        async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
            self.1.lock().unwrap().push(format!("{}>", self.0));
            let res = next.run(req).await;
            self.1.lock().unwrap().push(format!("<{}", self.0));
            res
        }
    }

    struct Capture(Arc<Mutex<Vec<Context>>>);

    impl Middleware for Capture {
        async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
            let cx = crate::RequestExt::context(&mut req).clone();
            self.0.lock().unwrap().push(cx);
            next.run(req).await
        }
    }

    struct CaptureHook(Arc<Mutex<Vec<Context>>>);

    impl Hook for CaptureHook {
        type State = ();

        fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
            let cx = crate::RequestExt::try_context(req).expect("an outer layer created it");
            self.0.lock().unwrap().push(cx.clone());
            ControlFlow::Continue(())
        }

        fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
    }

    struct RequireHeader;

    impl Hook for RequireHeader {
        type State = HeaderValue;

        fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>, HeaderValue> {
            if let Some(key) = req.headers().get("x-key") {
                ControlFlow::Continue(key.clone())
            } else {
                let mut res = Response::new(Bytes::from_static(b"missing x-key"));
                *res.status_mut() = StatusCode::BAD_REQUEST;
                ControlFlow::Break(res)
            }
        }

        fn after<B>(&self, key: HeaderValue, res: &mut Response<ResponseBody<B>>) {
            res.headers_mut().insert("x-key-echo", key);
        }
    }

    /// Logs `before`, `after` (with the state it got) and a state dropped without `after`;
    /// stamps `x-trace` on the request and `x-after` on the response.
    #[derive(Clone)]
    struct Trace(&'static str, Arc<Mutex<Vec<String>>>);

    /// A state that reports being dropped unless `after` consumed it.
    struct TraceState {
        name: String,
        log: Option<Arc<Mutex<Vec<String>>>>,
    }

    impl Drop for TraceState {
        fn drop(&mut self) {
            if let Some(log) = self.log.take() {
                log.lock().unwrap().push(format!("dropped {}", self.name));
            }
        }
    }

    impl Observe for Trace {
        type State = TraceState;

        fn before<B>(&self, req: &mut Request<B>) -> TraceState {
            self.1.lock().unwrap().push(format!("before {}", self.0));
            let trace = match req.headers().get("x-trace") {
                Some(seen) => format!("{},{}", seen.to_str().unwrap(), self.0),
                None => self.0.to_owned(),
            };
            req.headers_mut()
                .insert("x-trace", HeaderValue::from_str(&trace).unwrap());
            TraceState {
                name: format!("{}#0", self.0),
                log: Some(Arc::clone(&self.1)),
            }
        }

        fn after<B>(&self, mut state: TraceState, res: &mut Response<B>) {
            state.log = None;
            self.1
                .lock()
                .unwrap()
                .push(format!("after {} (state: {})", self.0, state.name));
            res.headers_mut()
                .insert("x-after", HeaderValue::from_static(self.0));
        }
    }

    /// Panics in `before` (with `true`) or in `after`, as an observer and as a hook.
    #[derive(Clone)]
    struct Panics(bool);

    impl Observe for Panics {
        type State = ();

        fn before<B>(&self, _: &mut Request<B>) {
            assert!(!self.0, "before panicked");
        }

        fn after<B>(&self, (): (), _: &mut Response<B>) {
            panic!("after panicked");
        }
    }

    impl Hook for Panics {
        type State = ();

        fn before<B>(&self, _: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
            assert!(!self.0, "before panicked");
            ControlFlow::Continue(())
        }

        fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {
            panic!("after panicked");
        }
    }

    /// An observer that creates the request's context.
    #[derive(Clone, Debug)]
    struct MakeContext;

    impl Observe for MakeContext {
        type State = ();

        fn before<B>(&self, req: &mut Request<B>) {
            let _ = crate::RequestExt::context(req);
        }

        fn after<B>(&self, (): (), _: &mut Response<B>) {}
    }

    /// An observer that creates the request's context and keeps a handle to it.
    #[derive(Clone)]
    struct Remember(Arc<Mutex<Option<Context>>>);

    impl Observe for Remember {
        type State = ();

        fn before<B>(&self, req: &mut Request<B>) {
            let cx = crate::RequestExt::context(req).clone();
            *self.0.lock().unwrap() = Some(cx);
        }

        fn after<B>(&self, (): (), _: &mut Response<B>) {}
    }

    type BoxFut<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

    fn echo_header() -> impl Service<
        Request<String>,
        Response = Response<String>,
        Error = Infallible,
        Future = BoxFut<Result<Response<String>, Infallible>>,
    > + Clone
    + Send
    + Sync
    + 'static {
        service_fn(|req: Request<String>| -> BoxFut<_> {
            let seen = req.headers().get("x-seen").cloned();
            Box::pin(async move {
                let mut res = Response::new(String::from("echo"));
                if let Some(seen) = seen {
                    res.headers_mut().insert("x-seen", seen);
                }
                Ok(res)
            })
        })
    }

    fn counting(
        calls: &Arc<AtomicUsize>,
    ) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static {
        let calls = Arc::clone(calls);
        service_fn(move |_: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(Response::new(String::from("inner"))))
        })
    }

    async fn body_string<B: http_body::Body>(res: Response<B>) -> String
    where
        B::Error: std::fmt::Debug,
    {
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    /// A service that is ready only while the handle allows it.
    #[derive(Clone)]
    struct Gate(Arc<AtomicUsize>);

    struct GateHandle(Arc<AtomicUsize>);

    impl GateHandle {
        fn allow(&mut self, n: usize) {
            self.0.store(n, Ordering::SeqCst);
        }
    }

    fn tower_test_mock() -> (Gate, GateHandle) {
        let permits = Arc::new(AtomicUsize::new(0));
        (Gate(Arc::clone(&permits)), GateHandle(permits))
    }

    impl Service<Request<String>> for Gate {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
            if self.0.load(Ordering::SeqCst) > 0 {
                self.0.fetch_sub(1, Ordering::SeqCst);
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }

        fn call(&mut self, _: Request<String>) -> Self::Future {
            std::future::ready(Ok(Response::new(String::new())))
        }
    }
}
