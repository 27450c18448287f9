//! Request budgets that name their phases: the whole request, reading the request body, and
//! streaming the response body; inbound and outbound deadline propagation.
//!
//! # The whole-request budget: [`TimeoutLayer`]
//!
//! Each request gets a budget, which becomes the deadline of its [`Context`](crate::Context)
//! (created if the request has none). Deadlines only tighten, so nested budgets compose and the
//! earliest wins: the budget in force is `min(own budget, deadline already set)`, and the
//! handler sees it with [`Context::remaining`](crate::Context::remaining).
//!
//! When the deadline passes before the response head is ready:
//!
//! 1. the context is cancelled with [`CancelCause::Deadline`](crate::CancelCause) (so a
//!    handler, or work it spawned, that awaits [`Context::cancelled`](crate::Context::cancelled)
//!    sees the cause, including from `Drop` impls run in step 2);
//! 2. the inner future is dropped: the work is cancelled;
//! 3. the timeout response is returned: `503 Service Unavailable`
//!    ([`TimeoutLayer::new`]) or `504 Gateway Timeout` ([`TimeoutLayer::gateway`]), or any
//!    status ([`TimeoutLayer::with_status_code`]), with the problem details rendered by the
//!    request's renderer (carrying the request id) or a fixed body
//!    ([`TimeoutLayer::with_body`]), and the header `x-timeout-phase: request`.
//!
//! **The tie rule.** Every poll polls the inner future *first*. A response that is ready wins,
//! even if the deadline passed in the same instant; the timeout answers only when the inner
//! future is still pending after the deadline. This holds for a zero budget too: a handler that
//! answers without waiting is never timed out.
//!
//! **No timer on the fast path.** The `tokio::time::Sleep` is armed only when the inner future
//! returned `Pending` once, and boxed then (one allocation, on the slow path only), so the
//! response future stays small. A request answered in its first poll costs no timer
//! registration and no allocation beyond the context's (none when an outer layer already made
//! one). Arming the timer needs a tokio runtime with its time driver.
//!
//! # One budget for every phase
//!
//! **Readiness.** `poll_ready` is forwarded to the inner service, so backpressure stays
//! honest: while the inner service is not ready, neither is the layer, and a `Buffer`,
//! balancer or load shedder in front sees it. But a service that never becomes ready must not
//! hold a request forever, and `poll_ready` has no request whose deadline it could use. So the
//! wait is bounded by the layer's budget, counted from the first `Pending`: when it passes, the
//! layer reports ready, and the next `call` answers the timeout response (`x-timeout-phase:
//! ready`) *without* calling the inner service, which never said it was ready (tower's
//! `Service` contract). Each handle waits on its own (a clone starts afresh), and hyper-util
//! and axum clone the service for every request, so there the bound is per request. Behind a
//! `tower::buffer::Buffer` the budget cannot see a request's time in the queue: put the budget
//! outside the buffer. An inbound deadline header cannot shorten this wait (the request is not
//! known yet); the server's budget bounds it. Waiting needs a tokio timer, like the rest of the
//! layer.
//!
//! This differs from tower's `Oneshot`-style design, where the layer always reports ready and
//! drives the inner readiness inside each response future under the request's own deadline:
//! that design breaks the conformance kit's first rule (readiness is forwarded) and hides
//! backpressure from the callers that rely on it; it would also need `S: Clone` and the
//! request inside the future. Here a caller that polls readiness learns the truth for one
//! budget, and a request is never held longer than that.
//!
//! **The head.** The whole-request budget, until the response head (above).
//!
//! **The response body.** The budget keeps running after the head is sent: the context's
//! deadline only ever tightens and is shared by every handle of the request, so it cannot
//! honestly stop governing once the head passes. A body producer that stops on
//! [`Context::cancelled`](crate::Context::cancelled) (the documented pattern) ends its stream
//! early when the budget runs out; so behind [`TimeoutLayer`] a body that ends after the
//! budget's cancellation was acted on ([`Context::observed_cause`](crate::Context::observed_cause)
//! is `deadline`: the producer awaited `cancelled()` or asked `is_cancelled()`) ends with a
//! [`BodyTimeoutError`] ([`is_budget`](BodyTimeoutError::is_budget)) instead of cleanly: hyper
//! then aborts the connection (HTTP/1.1) or resets the stream (HTTP/2), the client sees a
//! failure rather than a short `200` that looks complete, and an access log records a timeout.
//! A producer that never looked at the context and finished after the deadline sent its whole
//! body: that body ends cleanly. Give streams that must outlive the budget a larger budget.
//!
//! # Naming the phase that expired
//!
//! | phase | seen as | reported as ([`Expiry::phase`](crate::Expiry::phase)) |
//! | --- | --- | --- |
//! | waiting for the inner service to become ready | the configured status, `x-timeout-phase: ready` | `ready` |
//! | whole request, until the response head | the configured status, `x-timeout-phase: request` | `head` |
//! | reading the request body ([`RequestBodyTimeoutLayer`]) | `408`, `Connection: close`, `x-timeout-phase: request-body` | `request_body` |
//! | streaming the response body ([`TimeoutLayer::response_body_idle`] / [`_total`](TimeoutLayer::response_body_total), or the budget) | the head is already sent: the body ends with a [`BodyTimeoutError`] whose [`phase`](BodyTimeoutError::phase) is [`TimeoutPhase::ResponseStream`] and the context is cancelled with `Deadline`; hyper then closes the connection | `response_body` |
//!
//! Every expiry is reported to the whole request with
//! [`Context::record_expiry`](crate::Context::record_expiry) (the first report wins), so an
//! access log outside the layer names the phase, and tells a client's own short deadline
//! ([`Expiry::is_by_client`](crate::Expiry::is_by_client): the inbound deadline header was the
//! tighter one) from the server's budget running out. A [`BodyTimeoutError`] coming out of a
//! nested layer's body is reported too.
//!
//! **After an error, never a clean end.** A [`TimeoutBody`] that yielded an error (its own
//! deadline's, or the wrapped body's) yields an error again at every further poll, and is not
//! at its end: a reader that polls once more cannot take a cut body for a complete one.
//!
//! # Request-body deadlines: [`RequestBodyTimeoutLayer`]
//!
//! It wraps the request body in a [`TimeoutBody`] with an idle deadline (the longest wait for
//! the next frame while the handler reads) and a total one (counted from the request's
//! arrival at the layer). When one passes, the handler's next read yields a
//! [`BodyTimeoutError`] and the body ends. The body also raises a flag shared with the layer's
//! future, and that flag — not whatever the handler makes of the error — decides the answer:
//! once it is raised, the response is `408 Request Timeout` with `Connection: close` (the rest
//! of the request body was not read, so the connection cannot be reused), whether the handler
//! then answers anything (its response is dropped) or keeps waiting (the layer cancels the
//! context with `Deadline` and drops it). A body costs two allocations: the flag, and its
//! deadline state with the timer (made when the body is wrapped, so waiting for the peer
//! allocates nothing more). An empty body (`is_end_stream`) is passed through without flag or
//! timer. Place it inside [`TimeoutLayer`].
//!
//! **A peer that goes away mid-body.** When the wrapped body itself fails — the client closed
//! the connection before sending all it announced (hyper's `incomplete message`), reset it, or
//! reset its HTTP/2 stream — the request's [`Context`](crate::Context) is cancelled with
//! [`CancelCause::Dropped`](crate::CancelCause::Dropped), and then the error reaches the
//! handler unchanged. The transport is gone and no answer will reach the client, so work
//! spawned for the request that awaits [`Context::cancelled`](crate::Context::cancelled) stops
//! at once, not when the handler gets round to finishing. The response is still whatever the
//! handler makes of the error (no deadline passed: no `408`). This holds with or without
//! deadlines; the context is the one an outer layer made (a request without one gets none: the
//! body then only passes the error on), watched through a clone, which costs no allocation.
//! The body's own deadline error does not count, nor does that of a nested request-body layer:
//! those take the `408` path and cancel with `Deadline`. Any other error of the wrapped body
//! counts, so put a body-size limit *inside* this layer (on the handler's side), not around
//! the body before it reaches this layer.
//!
//! # Deadline propagation
//!
//! **Inbound.** [`TimeoutLayer::inbound_grpc_timeout`] (or
//! [`inbound_header`](TimeoutLayer::inbound_header) with a [`DeadlineFormat`]) lets a caller
//! *shorten* the budget: the budget in force is `min(max(header, floor), server maximum)`.
//! The floor ([`TimeoutLayer::inbound_floor`], [`DEFAULT_INBOUND_FLOOR`] = 5 ms) keeps a
//! client from minting timeouts at will (`grpc-timeout: 1n`): a shorter deadline is raised to
//! it. When the client's deadline is the one that expires, the expiry is reported as the
//! client's, so a log does not read it as overload. A malformed or
//! repeated header is ignored (the server maximum applies) and the context gets a
//! [`MalformedDeadlineHeader`] marker, so a logging layer can report it; the raw value is not
//! kept. This feature has no logging of its own.
//!
//! **Outbound.** [`PropagateDeadlineLayer`] goes on a client: it stamps the request's remaining
//! budget (`grpc-timeout` by default, rounded down) on each outgoing request, and enforces it
//! with the same future, answering `504` when it runs out. A request whose budget is already
//! spent is not sent.
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use http::{Request, Response, StatusCode};
//! use middleware_std::{RequestExt, timeout::TimeoutLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)).inbound_grpc_timeout())
//!     .service(service_fn(|req: Request<String>| async move {
//!         // The caller's `grpc-timeout: 200m` tightened the one-second maximum.
//!         let left = req.try_context().and_then(|cx| cx.remaining()).unwrap();
//!         assert!(left <= Duration::from_millis(200));
//!         tokio::time::sleep(Duration::from_secs(5)).await;
//!         Ok::<_, Infallible>(Response::new(String::from("too late")))
//!     }));
//!
//! let req = Request::builder().header("grpc-timeout", "200m").body(String::new()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(res.headers()["x-timeout-phase"], "request");
//! # }
//! ```
//!
//! The request-body layer goes inside the budget, and a client stamps what is left:
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::BodyExt;
//! use middleware_std::{
//!     RequestExt,
//!     timeout::{PropagateDeadlineLayer, RequestBodyTimeoutLayer, TimeoutBody, TimeoutLayer},
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // An upstream client that reports the budget it was given.
//! let upstream = ServiceBuilder::new()
//!     .layer(PropagateDeadlineLayer::new())
//!     .service(service_fn(|req: Request<String>| async move {
//!         let budget = req.headers()["grpc-timeout"].to_str().unwrap().to_owned();
//!         Ok::<_, Infallible>(Response::new(budget))
//!     }));
//!
//! let app = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(2)))
//!     .layer(RequestBodyTimeoutLayer::idle(Duration::from_millis(500)))
//!     .service(service_fn(move |req: Request<TimeoutBody<String>>| {
//!         let upstream = upstream.clone();
//!         async move {
//!             let cx = req.try_context().unwrap().clone();
//!             let body = req.into_body().collect().await.unwrap().to_bytes();
//!             assert_eq!(body, "hello");
//!             // Pass the request's context on: the call gets what is left of the 2 s.
//!             let mut call = Request::new(String::new());
//!             call.extensions_mut().insert(cx);
//!             let res = upstream.oneshot(call).await.unwrap();
//!             let budget = res.into_body().collect().await.unwrap().to_bytes();
//!             Ok::<_, Infallible>(Response::new(String::from_utf8(budget.to_vec()).unwrap()))
//!         }
//!     }));
//!
//! let res = app.oneshot(Request::new(String::from("hello"))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let stamped = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(stamped, "2000000u"); // the clock is paused: all 2 s are left
//! # }
//! ```
//!
//! A client that goes away in the middle of its request body cancels the request:
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::BodyExt;
//! use middleware_std::{
//!     CancelCause, EnsureContext, HookLayer, RequestExt,
//!     timeout::{RequestBodyTimeoutLayer, TimeoutBody},
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! # use std::{pin::Pin, task::{Context as TaskContext, Poll}};
//! # use bytes::Bytes;
//! # use http_body::{Body, Frame};
//! # /// The first bytes of an upload, then the transport's error: the client went away.
//! # struct HungUp(bool);
//! # impl Body for HungUp {
//! #     type Data = Bytes;
//! #     type Error = std::io::Error;
//! #     fn poll_frame(
//! #         mut self: Pin<&mut Self>,
//! #         _: &mut TaskContext<'_>,
//! #     ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
//! #         if std::mem::replace(&mut self.0, true) {
//! #             return Poll::Ready(Some(Err(std::io::Error::other("incomplete message"))));
//! #         }
//! #         Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"the first bytes")))))
//! #     }
//! # }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let app = ServiceBuilder::new()
//!     .layer(HookLayer::new(EnsureContext)) // or any layer that makes the context
//!     .layer(RequestBodyTimeoutLayer::idle(Duration::from_secs(10)))
//!     .service(service_fn(|req: Request<TimeoutBody<HungUp>>| async move {
//!         let cx = req.try_context().unwrap().clone();
//!         // Work spawned for the request, which stops when the request is cancelled.
//!         let work = tokio::spawn(async move { cx.cancelled().await });
//!         let err = req.into_body().collect().await.unwrap_err();
//!         assert_eq!(err.to_string(), "incomplete message"); // passed on unchanged
//!         assert_eq!(work.await.unwrap(), CancelCause::Dropped);
//!         Ok::<_, Infallible>(Response::new(String::from("nobody reads this")))
//!     }));
//!
//! let res = app.oneshot(Request::new(HungUp(false))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK); // the handler's answer: no deadline passed
//! # }
//! ```
//!
//! # Differences from tower-http
//!
//! - tower-http's `TimeoutLayer` arms a `tokio::time::Sleep` for every request, before the
//!   inner future is polled; here the timer is armed only for requests still pending after
//!   their first poll.
//! - tower-http answers an expired request with `408 Request Timeout`, which tells the client
//!   that *it* was too slow to send the request. Here the server ran out of time, so the
//!   default is `503` (`504` for gateways) and `408` is kept for a stalled request body.
//! - tower-http knows nothing of a request context: here the budget is the context's deadline,
//!   shared by nested layers (earliest wins), visible to handlers, cancelled with a cause
//!   *before* the inner future is dropped, and propagated in and out with `grpc-timeout`.
//! - tower-http's `RequestBodyTimeoutLayer` and `ResponseBodyTimeoutLayer` have one deadline
//!   each (idle); here each body has an idle and a total deadline, and errors name the phase.
//! - tower-http's request-body layer passes a peer's abort on as a body error and nothing
//!   more; here it also cancels the request's context with `Dropped`, so spawned work stops.
//! - tower-http's `TimeoutLayer` forwards `poll_ready` without a bound; here an inner service
//!   that stays unready for a whole budget gets the request answered (`ready` phase).
//! - tower-http's timeout bounds only the response head; here a stream cut by the budget ends
//!   with an error rather than cleanly.

mod body;
mod error;
mod future;
mod header;
mod layer;
mod service;

#[doc(inline)]
pub use self::{
    body::TimeoutBody,
    error::{BodyTimeoutError, MalformedDeadlineHeader, TIMEOUT_PHASE, TimeoutPhase},
    future::{RequestBodyTimeoutFuture, ResponseFuture},
    header::DeadlineFormat,
    layer::{DEFAULT_INBOUND_FLOOR, PropagateDeadlineLayer, RequestBodyTimeoutLayer, TimeoutLayer},
    service::{PropagateDeadline, RequestBodyTimeout, Timeout},
};

#[cfg(test)]
mod tests;
