//! The recommended stack in one call: request id, logging, timing, panic recovery and a request
//! budget, in the order that makes each of them see what it needs.
//!
//! ```text
//! request  ─▶ SetRequestId ─▶ Log ─▶ ServerTiming ─▶ CatchPanic ─▶ Timeout ─▶ [RequestBodyTimeout] ─▶ your service
//! response ◀─ (x-request-id) ◀─ (one event) ◀─ (Server-Timing) ◀─ (500) ◀─ (503) ◀─ (408) ◀─
//! ```
//!
//! Outermost first, and why:
//!
//! 1. **[`SetRequestIdLayer`]** — first, so that the id is in the context before anything logs,
//!    and last on the way out, so that *every* response carries `x-request-id`, including the
//!    ones the layers below make (a 503 from the timeout, a 500 from a panic, a 401 from auth).
//! 2. **[`LogLayer`]** — inside the id, so its span and event carry it; outside everything
//!    else, so it records the final status of every response (the timeout's 503, the panic's
//!    500) and sees client disconnects while the body streams.
//! 3. **[`ServerTimingLayer`]** — outside panic recovery and the budget, so that their
//!    responses carry `Server-Timing` too; it creates the request's
//!    [`Context`](crate::Context), so every layer below and the handler share it. The header
//!    carries `total` and the handler's marks. For the std layers' own times (`mw.timeout`,
//!    `mw.catch_panic`, `mw.auth`, ...) pass a timing layer with
//!    [`per_layer_times`](ServerTimingLayer::per_layer_times) to [`StackLayer::timing`]: they
//!    cost a clock read per layer and the list of marks, and they say more about the server
//!    than a production response should (see the timing module's advice for production).
//! 4. **[`CatchPanicLayer`]** — turns a panic anywhere below (the budget layer, auth, the
//!    handler, its response future or its body) into a 500 that still passes through timing,
//!    logging and the request id on its way out.
//! 5. **[`TimeoutLayer`]** — closest to the work it bounds: it sets the context deadline the
//!    handler sees, cancels the context with cause `deadline` and drops the work at expiry. One
//!    budget for every phase: waiting for the service to become ready (at most one budget,
//!    then `503` with `x-timeout-phase: ready`), the response head (`503`), and the response
//!    body (a stream cut by the budget ends with an error, not cleanly). Each expiry is
//!    reported to the request ([`Context::expiry`](crate::Context::expiry)) with its phase,
//!    so the access log names it.
//! 6. **[`RequestBodyTimeoutLayer`]** (opt in: [`StackLayer::request_body_timeout`], or
//!    [`StackLayer::request_body_deadlines`] for deadlines derived from the budget) — innermost,
//!    where the handler reads the body: a client that stalls its upload gets `408` with
//!    `Connection: close` and the phase `request_body`, not the `503` of an overloaded server;
//!    a client that goes away mid-body cancels the request with cause `dropped`. Inside the
//!    budget, so its deadlines only ever name an earlier expiry. It is not on by default
//!    because it changes the request body type the service sees to
//!    [`TimeoutBody<B>`](crate::timeout::TimeoutBody): a service written for
//!    `Request<String>` (or any concrete body) would no longer fit.
//!
//! Authentication is per route: put an [`AuthLayer`](crate::auth::AuthLayer) on the routes that
//! need it, inside this stack (its 401s then carry the id, timing and one log event).
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use http::{Request, Response, StatusCode};
//! use middleware_std::stack::StackLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let app = ServiceBuilder::new()
//!     .layer(StackLayer::new(Duration::from_secs(1)))
//!     .service(service_fn(|req: Request<String>| async move {
//!         if req.uri().path() == "/slow" {
//!             tokio::time::sleep(Duration::from_secs(5)).await;
//!         }
//!         Ok::<_, Infallible>(Response::new(String::from("ok")))
//!     }));
//!
//! let res = app.clone().oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert!(res.headers().contains_key("x-request-id"));
//! assert!(res.headers().contains_key("server-timing"));
//!
//! let slow = Request::builder().uri("/slow").body(String::new()).unwrap();
//! let res = app.oneshot(slow).await.unwrap();
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert!(res.headers().contains_key("x-request-id"));
//! assert!(res.headers().contains_key("server-timing"));
//! # }
//! ```
//!
//! # Differences from tower-http
//!
//! tower-http leaves the order to you, and the natural `ServiceBuilder` order of its pieces
//! (`TraceLayer` inside `SetRequestIdLayer` inside `PropagateRequestIdLayer`...) is easy to get
//! subtly wrong: a timeout or panic response without the request id, a trace span without it.
//! Here the order is fixed and explained; each piece stays replaceable.

use std::{fmt, time::Duration};

use tower_layer::{Identity, Layer};

use crate::{
    catch_panic::{CatchPanic, CatchPanicLayer, DefaultResponseForPanic},
    logging::{DefaultLevel, Log, LogLayer, PassRequestBody},
    request_id::{DefaultMakeRequestId, SetRequestId, SetRequestIdLayer},
    timeout::{RequestBodyTimeoutLayer, Timeout, TimeoutLayer},
    timing::{DefaultTimingFilter, ServerTiming, ServerTimingLayer},
};

/// The service made by [`StackLayer`], outermost first. `Q` is the request-body layer
/// ([`Identity`] when there is none, [`RequestBodyTimeoutLayer`] after
/// [`StackLayer::request_body_timeout`]).
pub type StackService<
    S,
    M = DefaultMakeRequestId,
    L = DefaultLevel,
    C = PassRequestBody,
    H = (),
    R = DefaultResponseForPanic,
    Q = Identity,
    F = DefaultTimingFilter,
> = SetRequestId<
    Log<ServerTiming<CatchPanic<Timeout<<Q as Layer<S>>::Service>, R>, H, F>, L, C>,
    M,
>;

/// The recommended stack as one layer. See the [module docs](self) for the order and why.
///
/// Each piece can be replaced by a configured one ([`StackLayer::request_id`],
/// [`StackLayer::log`], [`StackLayer::timing`], [`StackLayer::catch_panic`],
/// [`StackLayer::timeout`], [`StackLayer::request_body_timeout`]); the order stays.
#[must_use]
pub struct StackLayer<
    M = DefaultMakeRequestId,
    L = DefaultLevel,
    C = PassRequestBody,
    H = (),
    R = DefaultResponseForPanic,
    Q = Identity,
    F = DefaultTimingFilter,
> {
    request_id: SetRequestIdLayer<M>,
    log: LogLayer<L, C>,
    timing: ServerTimingLayer<H, F>,
    catch_panic: CatchPanicLayer<R>,
    timeout: TimeoutLayer,
    request_body: Q,
}

impl StackLayer {
    /// The default stack with a whole-request budget of `budget` (answered `503` when spent).
    pub fn new(budget: Duration) -> Self {
        Self {
            request_id: SetRequestIdLayer::new(),
            log: LogLayer::new(),
            timing: ServerTimingLayer::new(),
            catch_panic: CatchPanicLayer::new(),
            timeout: TimeoutLayer::new(budget),
            request_body: Identity::new(),
        }
    }
}

impl<M, L, C, H, R, Q, F> StackLayer<M, L, C, H, R, Q, F> {
    /// Replaces the request-id layer.
    pub fn request_id<M2>(self, layer: SetRequestIdLayer<M2>) -> StackLayer<M2, L, C, H, R, Q, F> {
        StackLayer {
            request_id: layer,
            log: self.log,
            timing: self.timing,
            catch_panic: self.catch_panic,
            timeout: self.timeout,
            request_body: self.request_body,
        }
    }

    /// Replaces the logging layer.
    pub fn log<L2, C2>(self, layer: LogLayer<L2, C2>) -> StackLayer<M, L2, C2, H, R, Q, F> {
        StackLayer {
            request_id: self.request_id,
            log: layer,
            timing: self.timing,
            catch_panic: self.catch_panic,
            timeout: self.timeout,
            request_body: self.request_body,
        }
    }

    /// Replaces the timing layer (the default one reports per-layer times; in production, see
    /// the timing module's advice on [`NotForRejected`](crate::timing::NotForRejected) and
    /// [`Precision`](crate::timing::Precision)).
    pub fn timing<H2, F2>(
        self,
        layer: ServerTimingLayer<H2, F2>,
    ) -> StackLayer<M, L, C, H2, R, Q, F2> {
        StackLayer {
            request_id: self.request_id,
            log: self.log,
            timing: layer,
            catch_panic: self.catch_panic,
            timeout: self.timeout,
            request_body: self.request_body,
        }
    }

    /// Replaces the panic-recovery layer.
    pub fn catch_panic<R2>(self, layer: CatchPanicLayer<R2>) -> StackLayer<M, L, C, H, R2, Q, F> {
        StackLayer {
            request_id: self.request_id,
            log: self.log,
            timing: self.timing,
            catch_panic: layer,
            timeout: self.timeout,
            request_body: self.request_body,
        }
    }

    /// Replaces the budget layer. The request-body deadlines set with
    /// [`request_body_deadlines`](Self::request_body_deadlines) before stay as they were.
    pub fn timeout(mut self, layer: TimeoutLayer) -> Self {
        self.timeout = layer;
        self
    }

    /// Puts `layer` innermost, inside the budget: the service then sees
    /// `Request<TimeoutBody<B>>`. See the [module docs](self) for why it goes there.
    pub fn request_body_timeout(
        self,
        layer: RequestBodyTimeoutLayer,
    ) -> StackLayer<M, L, C, H, R, RequestBodyTimeoutLayer, F> {
        StackLayer {
            request_id: self.request_id,
            log: self.log,
            timing: self.timing,
            catch_panic: self.catch_panic,
            timeout: self.timeout,
            request_body: layer,
        }
    }

    /// Request-body deadlines derived from the budget in force now: idle, half the budget
    /// (a client silent that long is stalled, not slow); total, nine tenths of it (so that a
    /// body still arriving when the budget is nearly spent is named as the client's slow
    /// upload, `408`, rather than as the server's `503`). Same as
    /// [`request_body_timeout`](Self::request_body_timeout) with
    /// [`RequestBodyTimeoutLayer::new`]`(budget / 2, budget * 9 / 10)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use middleware_std::stack::StackLayer;
    ///
    /// let stack = StackLayer::new(Duration::from_secs(10)).request_body_deadlines();
    /// assert!(format!("{stack:?}").contains("request_body"));
    /// ```
    pub fn request_body_deadlines(self) -> StackLayer<M, L, C, H, R, RequestBodyTimeoutLayer, F> {
        let budget = self.timeout.budget();
        self.request_body_timeout(RequestBodyTimeoutLayer::new(budget / 2, budget * 9 / 10))
    }
}

impl<M: Clone, L: Clone, C: Clone, H: Clone, R: Clone, Q: Clone, F: Clone> Clone
    for StackLayer<M, L, C, H, R, Q, F>
{
    fn clone(&self) -> Self {
        Self {
            request_id: self.request_id.clone(),
            log: self.log.clone(),
            timing: self.timing.clone(),
            catch_panic: self.catch_panic.clone(),
            timeout: self.timeout.clone(),
            request_body: self.request_body.clone(),
        }
    }
}

impl<M, L, C, H, R, Q, F> fmt::Debug for StackLayer<M, L, C, H, R, Q, F>
where
    SetRequestIdLayer<M>: fmt::Debug,
    LogLayer<L, C>: fmt::Debug,
    ServerTimingLayer<H, F>: fmt::Debug,
    CatchPanicLayer<R>: fmt::Debug,
    Q: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(StackLayer))
            .field("request_id", &self.request_id)
            .field("log", &self.log)
            .field("timing", &self.timing)
            .field("catch_panic", &self.catch_panic)
            .field("timeout", &self.timeout)
            .field("request_body", &self.request_body)
            .finish()
    }
}

impl<S, M: Clone, L: Clone, C: Clone, H: Clone, R: Clone, Q: Layer<S>, F: Clone> Layer<S>
    for StackLayer<M, L, C, H, R, Q, F>
{
    type Service = StackService<S, M, L, C, H, R, Q, F>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.request_body.layer(inner);
        let inner = self.timeout.layer(inner);
        let inner = self.catch_panic.layer(inner);
        let inner = self.timing.layer(inner);
        let inner = self.log.layer(inner);
        self.request_id.layer(inner)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response, StatusCode};
    use tower::{ServiceExt, service_fn};

    use super::*;
    use http_body_util::BodyExt;
    use middleware_core::testing::Conformance;

    use crate::{CancelCause, RequestExt, timeout::TimeoutBody};

    #[tokio::test(start_paused = true)]
    async fn every_layer_made_response_carries_the_id_and_timing() {
        let app = StackLayer::new(Duration::from_millis(100)).layer(service_fn(
            |req: Request<String>| async move {
                match req.uri().path() {
                    "/panic" => panic!("handler bug"),
                    "/slow" => {
                        let cx = req.try_context().expect("the stack made one").clone();
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        drop(cx);
                        Ok::<_, Infallible>(Response::new(String::new()))
                    }
                    _ => Ok(Response::new(String::new())),
                }
            },
        ));
        for (path, status) in [
            ("/", StatusCode::OK),
            ("/slow", StatusCode::SERVICE_UNAVAILABLE),
            ("/panic", StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let req = Request::builder().uri(path).body(String::new()).unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), status, "{path}");
            assert!(res.headers().contains_key("x-request-id"), "{path}");
            assert!(res.headers().contains_key("server-timing"), "{path}");
        }
    }

    #[cfg(feature = "auth")]
    #[tokio::test]
    async fn an_auth_rejection_inside_the_stack_carries_the_id_and_timing() {
        use crate::auth::{AuthLayer, Principal};
        let app = StackLayer::new(Duration::from_secs(1)).layer(
            AuthLayer::bearer("s3cret", Principal::new("ada")).layer(service_fn(
                |_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
            )),
        );
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().contains_key("www-authenticate"));
        assert!(res.headers().contains_key("x-request-id"));
        assert!(res.headers().contains_key("server-timing"));
    }

    #[cfg(feature = "auth")]
    #[tokio::test]
    async fn the_stack_takes_a_timing_layer_that_stays_off_rejected_requests() {
        use crate::{
            auth::{AuthLayer, Principal},
            timing::{NotForRejected, Precision},
        };
        let timing = ServerTimingLayer::new()
            .per_layer_times(true)
            .filter(NotForRejected)
            .precision(Precision::TenMillis);
        let app = StackLayer::new(Duration::from_secs(1))
            .timing(timing)
            .layer(
                AuthLayer::bearer("s3cret", Principal::new("ada")).layer(service_fn(
                    |_: Request<String>| async {
                        Ok::<_, Infallible>(Response::new(String::new()))
                    },
                )),
            );
        let res = app
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(!res.headers().contains_key("server-timing"));
        let req = Request::builder()
            .header("authorization", "Bearer s3cret")
            .body(String::new())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().contains_key("server-timing"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_handler_sees_the_budget_and_the_id() {
        let app = StackLayer::new(Duration::from_secs(2)).layer(service_fn(
            |req: Request<String>| async move {
                let cx = req.try_context().expect("context");
                assert!(cx.remaining().unwrap() <= Duration::from_secs(2));
                assert!(cx.request_id().is_some());
                assert_eq!(cx.cause(), None::<CancelCause>);
                Ok::<_, Infallible>(Response::new(cx.request_id().unwrap().to_string()))
            },
        ));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(header.as_bytes(), &body[..]);
    }

    #[tokio::test]
    async fn passes_the_conformance_kit() {
        Conformance::new(StackLayer::new(Duration::from_secs(5)))
            .run()
            .await;
        // With request-body deadlines the body type changes; unwrapping it again lets the
        // kit's `Request<String>` probe sit inside.
        let unwrap_body = tower::util::MapRequestLayer::new(|req: Request<TimeoutBody<String>>| {
            req.map(TimeoutBody::into_inner)
        });
        Conformance::new(tower::layer::util::Stack::new(
            unwrap_body,
            StackLayer::new(Duration::from_secs(5)).request_body_deadlines(),
        ))
        .with_request(|| Request::new(String::from("a body")))
        .run()
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn server_timing_carries_the_inner_layers_own_times_when_asked() {
        let handler = || {
            service_fn(|_: Request<String>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            })
        };
        let app = StackLayer::new(Duration::from_secs(1))
            .timing(ServerTimingLayer::new().per_layer_times(true))
            .layer(handler());
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let timing = res.headers()["server-timing"].to_str().unwrap();
        assert!(timing.starts_with("total;dur="), "{timing}");
        for layer in ["mw.catch_panic;dur=", "mw.timeout;dur="] {
            assert!(timing.contains(layer), "{layer} missing: {timing}");
        }
        // Not by default: they say more than a production response should.
        let app = StackLayer::new(Duration::from_secs(1)).layer(handler());
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let timing = res.headers()["server-timing"].to_str().unwrap();
        assert!(!timing.contains("mw."), "{timing}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unready_service_inside_the_stack_gets_503_after_the_budget() {
        let start = tokio::time::Instant::now();
        let app = StackLayer::new(Duration::from_millis(100)).layer(NeverReady);
        let res = app.oneshot(Request::new(String::new()));
        // Bounded: a stack that waits for readiness without end must fail, not hang.
        let res = tokio::time::timeout(Duration::from_secs(60), res)
            .await
            .expect("still waiting for readiness after 60 s")
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["x-timeout-phase"], "ready");
        assert!(res.headers().contains_key("x-request-id"));
        assert!(res.headers().contains_key("server-timing"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_upload_gets_408_from_the_request_body_deadlines() {
        let stack = StackLayer::new(Duration::from_secs(2)).request_body_deadlines();
        assert!(format!("{stack:?}").contains("idle: Some(1s)"), "{stack:?}");
        let app = stack.layer(service_fn(
            |req: Request<TimeoutBody<Stalled>>| async move {
                let read = req.into_body().collect().await;
                assert!(read.is_err());
                Ok::<_, Infallible>(Response::new(String::from("read failed")))
            },
        ));
        let start = tokio::time::Instant::now();
        let mut req = Request::new(Stalled);
        let cx = req.context().clone();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "idle: half the budget"
        );
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(res.headers()["x-timeout-phase"], "request-body");
        assert_eq!(res.headers()["connection"], "close");
        assert!(res.headers().contains_key("x-request-id"));
        let expiry = cx.expiry().expect("reported");
        assert_eq!(expiry.phase(), crate::TimeoutPhase::RequestBody);
        assert_eq!(cx.cause(), Some(CancelCause::Deadline));
    }

    /// A service that is never ready.
    #[derive(Clone, Copy, Debug)]
    struct NeverReady;

    impl tower_service::Service<Request<String>> for NeverReady {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Pending
        }

        fn call(&mut self, _: Request<String>) -> Self::Future {
            panic!("an unready service was called")
        }
    }

    /// A request body that never sends anything (and never ends).
    struct Stalled;

    impl http_body::Body for Stalled {
        type Data = bytes::Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
            std::task::Poll::Pending
        }
    }
}
