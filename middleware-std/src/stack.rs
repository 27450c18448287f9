//! The recommended stack in one call: request id, logging, timing, panic recovery and a request
//! budget, in the order that makes each of them see what it needs.
//!
//! ```text
//! request  ─▶ SetRequestId ─▶ Log ─▶ ServerTiming ─▶ CatchPanic ─▶ Timeout ─▶ your service
//! response ◀─ (x-request-id) ◀─ (one event) ◀─ (Server-Timing) ◀─ (500) ◀─ (503) ◀─
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
//!    [`Context`](crate::Context), so every layer below and the handler share it.
//! 4. **[`CatchPanicLayer`]** — turns a panic anywhere below (the budget layer, auth, the
//!    handler, its response future or its body) into a 500 that still passes through timing,
//!    logging and the request id on its way out.
//! 5. **[`TimeoutLayer`]** — innermost, closest to the work it bounds: it sets the context
//!    deadline the handler sees, cancels the context with cause `deadline` and drops the work
//!    at expiry.
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

use tower_layer::Layer;

use crate::{
    catch_panic::{CatchPanic, CatchPanicLayer, DefaultResponseForPanic},
    logging::{DefaultLevel, Log, LogLayer, PassRequestBody},
    request_id::{DefaultMakeRequestId, SetRequestId, SetRequestIdLayer},
    timeout::{Timeout, TimeoutLayer},
    timing::{ServerTiming, ServerTimingLayer},
};

/// The service made by [`StackLayer`], outermost first.
pub type StackService<
    S,
    M = DefaultMakeRequestId,
    L = DefaultLevel,
    C = PassRequestBody,
    H = (),
    R = DefaultResponseForPanic,
> = SetRequestId<Log<ServerTiming<CatchPanic<Timeout<S>, R>, H>, L, C>, M>;

/// The recommended stack as one layer. See the [module docs](self) for the order and why.
///
/// Each piece can be replaced by a configured one ([`StackLayer::request_id`],
/// [`StackLayer::log`], [`StackLayer::timing`], [`StackLayer::catch_panic`],
/// [`StackLayer::timeout`]); the order stays.
#[must_use]
pub struct StackLayer<
    M = DefaultMakeRequestId,
    L = DefaultLevel,
    C = PassRequestBody,
    H = (),
    R = DefaultResponseForPanic,
> {
    request_id: SetRequestIdLayer<M>,
    log: LogLayer<L, C>,
    timing: ServerTimingLayer<H>,
    catch_panic: CatchPanicLayer<R>,
    timeout: TimeoutLayer,
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
        }
    }
}

impl<M, L, C, H, R> StackLayer<M, L, C, H, R> {
    /// Replaces the request-id layer.
    pub fn request_id<M2>(self, layer: SetRequestIdLayer<M2>) -> StackLayer<M2, L, C, H, R> {
        StackLayer {
            request_id: layer,
            log: self.log,
            timing: self.timing,
            catch_panic: self.catch_panic,
            timeout: self.timeout,
        }
    }

    /// Replaces the logging layer.
    pub fn log<L2, C2>(self, layer: LogLayer<L2, C2>) -> StackLayer<M, L2, C2, H, R> {
        StackLayer {
            request_id: self.request_id,
            log: layer,
            timing: self.timing,
            catch_panic: self.catch_panic,
            timeout: self.timeout,
        }
    }

    /// Replaces the timing layer.
    pub fn timing<H2>(self, layer: ServerTimingLayer<H2>) -> StackLayer<M, L, C, H2, R> {
        StackLayer {
            request_id: self.request_id,
            log: self.log,
            timing: layer,
            catch_panic: self.catch_panic,
            timeout: self.timeout,
        }
    }

    /// Replaces the panic-recovery layer.
    pub fn catch_panic<R2>(self, layer: CatchPanicLayer<R2>) -> StackLayer<M, L, C, H, R2> {
        StackLayer {
            request_id: self.request_id,
            log: self.log,
            timing: self.timing,
            catch_panic: layer,
            timeout: self.timeout,
        }
    }

    /// Replaces the budget layer.
    pub fn timeout(mut self, layer: TimeoutLayer) -> Self {
        self.timeout = layer;
        self
    }
}

impl<M: Clone, L: Clone, C: Clone, H: Clone, R: Clone> Clone for StackLayer<M, L, C, H, R> {
    fn clone(&self) -> Self {
        Self {
            request_id: self.request_id.clone(),
            log: self.log.clone(),
            timing: self.timing.clone(),
            catch_panic: self.catch_panic.clone(),
            timeout: self.timeout.clone(),
        }
    }
}

impl<M, L, C, H, R> fmt::Debug for StackLayer<M, L, C, H, R>
where
    SetRequestIdLayer<M>: fmt::Debug,
    LogLayer<L, C>: fmt::Debug,
    ServerTimingLayer<H>: fmt::Debug,
    CatchPanicLayer<R>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(StackLayer))
            .field("request_id", &self.request_id)
            .field("log", &self.log)
            .field("timing", &self.timing)
            .field("catch_panic", &self.catch_panic)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<S, M: Clone, L: Clone, C: Clone, H: Clone, R: Clone> Layer<S> for StackLayer<M, L, C, H, R> {
    type Service = StackService<S, M, L, C, H, R>;

    fn layer(&self, inner: S) -> Self::Service {
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
    use middleware_core::testing::Conformance;

    use crate::{CancelCause, RequestExt};

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
    }
}
