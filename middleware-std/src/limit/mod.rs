//! A concurrency limit with load shedding and a bounded queue: [`ConcurrencyLimitLayer`].
//!
//! At most `max` requests are inside the wrapped service at once. A request counts from the
//! moment it is admitted until its **response body** ends, fails or is dropped (not just until
//! the head: a streaming response keeps its place while it streams). The place is given back
//! exactly once on every path: a normal end, an inner error, a panic (the future or body is
//! dropped while unwinding), a timeout of an outer layer (the future is dropped), a client that
//! goes away (hyper drops the future or the body).
//!
//! When the limit is full:
//!
//! - **load shedding** ([`ConcurrencyLimitLayer::new`], no queue): the request is answered at
//!   once with `503 Service Unavailable` and `Retry-After` (tower's `load_shed` semantics);
//! - **a bounded queue** ([`ConcurrencyLimitLayer::queue`]`(backlog, timeout)`, chi's `Throttle`
//!   with a backlog): up to `backlog` requests wait, first come first in (tokio's fair
//!   semaphore: no waiter starves); a request that finds the queue full is answered at once with
//!   the overflow status (`503`, or `429` with
//!   [`with_overflow_status`](ConcurrencyLimitLayer::with_overflow_status)); a waiter whose
//!   `timeout` passes, or whose context's [deadline](crate::Context::deadline) passes first, gets
//!   `503`. In the deadline case the layer reports
//!   [`Expiry`](crate::Expiry)`(`[`TimeoutPhase::Ready`](crate::TimeoutPhase::Ready)`)` to the
//!   context, so the access log names it.
//!
//! Every rejection is a response rendered by the request's [`Renderer`](crate::Renderer) (RFC
//! 9457 problem details by default) with `Retry-After` (1 s by default,
//! [`retry_after`](ConcurrencyLimitLayer::retry_after)); no `HandleErrorLayer` is needed.
//!
//! # Backpressure / readiness
//!
//! `poll_ready` is the inner service's readiness, unchanged: the limit does not hold callers
//! back in `poll_ready`, it applies in the response future. That is what lets every clone of
//! the service, and every service the layer made, share one `tokio::sync::Semaphore` (owned
//! permits), and what turns a full server into fast answers instead of a stalled accept loop.
//! An admitted request calls the inner service in `call`, as usual. A queued request takes the
//! ready inner service with it (a clone stays behind, `mem::replace`) and calls it when it is
//! admitted, so an inner service whose readiness is a reservation (tower's `Buffer`) keeps that
//! reservation while the request waits; a rejected waiter drops it at once.
//!
//! The fast path (a free place) allocates nothing; a request that has to wait allocates once,
//! its wait (tokio's `acquire_owned` future cannot be named).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::{convert::Infallible, time::Duration};
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header};
//! use http_body_util::{BodyExt, Full};
//! use middleware_std::limit::ConcurrencyLimitLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let limit = ConcurrencyLimitLayer::new(1);
//! let svc = limit.layer(service_fn(|_: Request<()>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//! }));
//!
//! // The first response holds the only place until its body is read or dropped.
//! let first = svc.clone().oneshot(Request::new(())).await.unwrap();
//! assert_eq!(limit.in_flight(), 1);
//!
//! // Shedding: the second request is answered at once.
//! let shed = svc.clone().oneshot(Request::new(())).await.unwrap();
//! assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
//!
//! // Reading the body to its end gives the place back.
//! assert_eq!(first.into_body().collect().await.unwrap().to_bytes(), "hello");
//! assert_eq!(limit.in_flight(), 0);
//! let ok = svc.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(ok.status(), StatusCode::OK);
//!
//! // A queue of 8 waiters, 2 s each, `429` when it is full.
//! let _queued = ConcurrencyLimitLayer::new(64)
//!     .queue(8, Duration::from_secs(2))
//!     .with_overflow_status(StatusCode::TOO_MANY_REQUESTS);
//! # }
//! ```
//!
//! # Differences from tower
//!
//! - tower's `ConcurrencyLimit` applies the limit in `poll_ready` (a permit per service handle,
//!   so it needs `Buffer` to be shared and `LoadShed` plus `HandleErrorLayer` to answer), and
//!   gives the permit back when the response *future* completes; here the limit lives in the
//!   response future and the permit in the response body, one limit shared by every clone.
//! - tower's `LoadShed` turns "not ready" into an `Overloaded` *error*; here shedding is a
//!   `503` response with `Retry-After`.
//! - tower has no bounded queue with a timeout: its waiters queue without bound in
//!   `poll_ready`. chi's `Throttle` has one (backlog and backlog timeout); this layer follows
//!   it, and also honours the request's own deadline.
//! - tower's `ConcurrencyLimitLayer` makes a new semaphore for each `layer` call (its
//!   `GlobalConcurrencyLimitLayer` shares one); here one layer value is one limit.

mod body;
mod future;
mod layer;
mod service;
#[cfg(test)]
mod tests;

#[doc(inline)]
pub use self::{
    body::PermitBody, future::ResponseFuture, layer::ConcurrencyLimitLayer,
    service::ConcurrencyLimit,
};
