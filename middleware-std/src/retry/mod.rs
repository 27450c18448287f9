//! Retries for outbound calls: within the caller's deadline, within a budget shared by clones,
//! with jittered exponential backoff, and honouring `Retry-After`.
//!
//! [`RetryLayer`] sits in front of a *client* service. For each request:
//!
//! 1. **What is retried.** The [`RetryPolicy`] decides, once per request, whether it may be
//!    retried at all ([`is_retryable`](RetryPolicy::is_retryable): by default only idempotent
//!    methods, `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`), and after each attempt,
//!    whether its outcome calls for another ([`should_retry`](RetryPolicy::should_retry): by
//!    default any error of the inner service, and `429`, `502`, `503`, `504`).
//! 2. **Request bodies.** A retried request is sent again from a copy made before the first
//!    attempt, so the layer needs a body type that is `Clone` (`Full<Bytes>`, `Empty`,
//!    `String`, `Bytes`, `()`): the bound is checked at compile time, so no body is ever half
//!    replayed. A streaming body cannot be replayed: collect it first (bounded, e.g. with
//!    `http_body_util::Limited`) into a `Full<Bytes>` when its calls must be retried, or put
//!    the layer only in front of services whose bodies can be cloned. A request the policy
//!    does not allow to retry is sent without a copy.
//! 3. **When it stops.** After [`max_attempts`](RetryLayer::max_attempts) (3, the first
//!    included); when the wait before the next attempt would reach the caller's deadline (the
//!    request's [`Context`]: a retry always starts with time left); when the caller's scope is
//!    cancelled; when the [`RetryBudget`] is spent; when `Retry-After` asks for more than
//!    [`max_retry_after`](RetryLayer::max_retry_after) and there is no deadline. The last
//!    outcome is then returned as it came: the response, or the inner service's error. The
//!    layer never changes the error type.
//! 4. **How long it waits.** The [`Backoff`] (jittered, exponential), or the response's
//!    `Retry-After` when that asks for longer (delay-seconds or an HTTP-date; a malformed,
//!    negative or repeated value is ignored, a date in the past asks for no wait, a value too
//!    large to hold saturates and then meets the caps of point 3).
//! 5. **Scopes.** Each attempt runs in its own [child scope](crate::Context::child) of the
//!    request's context, carried in the attempt's extensions: a per-call timeout or an adapter's
//!    drop guard below cancels only that attempt. Dropping the retry future mid-attempt cancels
//!    the attempt's scope with [`CancelCause::Dropped`](crate::CancelCause::Dropped), never the
//!    caller's.
//! 6. **Events.** Each attempt emits one `tracing` event (target `middleware_std::retry`,
//!    message `outbound attempt`) with `attempt` (1 for the first), `request_id`, `status` or
//!    `error = true`, `decision` (`retry`, `done`, `not-retryable`, `attempts-exhausted`,
//!    `deadline`, `budget-exhausted`, `retry-after-too-long`, `cancelled`) and `delay_ms`
//!    before a retry. A first attempt that is the answer is logged at `DEBUG`, every other
//!    attempt at `INFO`. No header, URI or error text is logged.
//!
//! Put a [`CallTimeoutLayer`](crate::call_timeout) *inside* this layer to cap each attempt.
//!
//! # How it differs from tower's `Retry`
//!
//! `tower::retry` takes any request type and leaves cloning, backoff and budgets to the policy
//! you write. This layer is for HTTP clients: it knows idempotent methods, `Retry-After` and the
//! request's deadline, and brings the budget and backoff.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::{
//!     convert::Infallible,
//!     sync::{Arc, atomic::{AtomicUsize, Ordering}},
//!     time::Duration,
//! };
//!
//! use http::{Request, Response, StatusCode};
//! use middleware_std::{Context, retry::RetryLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // An upstream that is unavailable twice, asking to come back in one second.
//! let calls = Arc::new(AtomicUsize::new(0));
//! let upstream = service_fn({
//!     let calls = Arc::clone(&calls);
//!     move |_: Request<String>| {
//!         let n = calls.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             let res = if n < 2 {
//!                 Response::builder().status(503).header("retry-after", "1").body(())
//!             } else {
//!                 Response::builder().body(())
//!             };
//!             Ok::<_, Infallible>(res.unwrap())
//!         }
//!     }
//! });
//! let client = ServiceBuilder::new().layer(RetryLayer::new()).service(upstream);
//!
//! let request = Context::new();
//! request.set_timeout(Duration::from_secs(10));
//! let mut call = Request::new(String::from("a replayable body"));
//! call.extensions_mut().insert(request.clone());
//!
//! let started = tokio::time::Instant::now();
//! let res = client.clone().oneshot(call).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After was honoured");
//!
//! // A POST is not idempotent: sent once.
//! let post = Request::post("/").body(String::new()).unwrap();
//! let res = client.oneshot(post).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(calls.load(Ordering::SeqCst), 4);
//! # }
//! ```
//!
//! [`Context`]: crate::Context

mod backoff;
mod budget;
mod layer;
mod policy;
mod service;
#[cfg(test)]
mod tests;

#[doc(inline)]
pub use self::{
    backoff::Backoff,
    budget::RetryBudget,
    layer::RetryLayer,
    policy::{DefaultRetryPolicy, RetryPolicy},
    service::{ResponseFuture, Retry},
};
