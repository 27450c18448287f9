//! A circuit breaker for outbound calls, with a fallback, per-upstream circuits and a two-step
//! form for calls that are not tower services.
//!
//! [`BreakerLayer`] sits in front of a *client* service and calls it through a
//! [`CircuitBreaker`], whose state every clone shares:
//!
//! - **Closed**: calls go through and their outcomes are counted. The circuit **opens** after
//!   [`consecutive_failures`](BreakerConfig::consecutive_failures) failures in a row (5), or
//!   when the [`failure_rate`](BreakerConfig::failure_rate) over a sliding window reaches the
//!   threshold with at least a minimum number of calls (half of at least 20 calls in 10 s).
//! - **Open**: calls are refused at once, without touching the upstream, for the
//!   [`cool_down`](BreakerConfig::cool_down) (5 s). The refusal is the fallback: a
//!   [`BreakerOpenError`] (the default), or a copy of a configured response
//!   ([`fallback_response`](BreakerLayer::fallback_response)) carrying the header
//!   `x-circuit-breaker: open` and the [`BreakerFallback`] extension. Each refusal is a
//!   `DEBUG` event (target `middleware_std::breaker`) with the field `breaker_state = "open"`.
//! - **Half-open**: after the cool-down, at most [`probes`](BreakerConfig::probes) calls (1) go
//!   through at once; others are refused as when open. The first probe that succeeds
//!   **closes** the circuit; one that fails opens it again for another cool-down. A probe
//!   whose call future is dropped counts for nothing and frees its slot.
//!
//! **What is a failure** is the [`FailurePolicy`]'s call: by default every error of the inner
//! service (transport errors, a [`CallTimeoutError`](crate::call_timeout) from a per-call timeout
//! inside) and every `5xx`, never a `4xx`. Calls whose future is dropped count for nothing.
//!
//! **State changes** are logged once each (a `WARN` event, target `middleware_std::breaker`,
//! fields `breaker_key`, `breaker_from`, `breaker_state`), by the call that made the change,
//! and passed to the [`on_state_change`](CircuitBreaker::on_state_change) callback.
//!
//! **Per upstream.** [`per_host`](BreakerLayer::per_host) keeps one circuit per host of the
//! request URI; without it one circuit covers every call of the layer. The in-process
//! [`MemoryStore`] bounds the number of circuits (see its docs) because hosts may come from
//! untrusted input.
//!
//! **Storage.** A [`BreakerStore`] holds the state machine: [`MemoryStore`] in process, or an
//! implementation of the trait over a shared store so that every instance of a service sees
//! one circuit.
//!
//! **Two steps.** For calls that are not tower services (a database driver, a queue),
//! [`CircuitBreaker::ask`] gives a [`Ticket`]; make the call, then
//! [`report`](Ticket::report) its outcome.
//!
//! **Scopes.** Each call runs in a [child scope](crate::Context::child) of the request's
//! context; dropping the call future cancels that scope with `Dropped`, never the caller's.
//!
//! The service answers `Response<ResponseBody<B>>` (the inner body streamed through, or the
//! fallback's) and boxes errors into [`BoxError`](crate::BoxError), so an open circuit can
//! answer either way. Put it *outside* a [`RetryLayer`](crate::retry) to count a retried call
//! once, or inside to let retries see refusals (the default retry policy retries errors).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::{convert::Infallible, time::Duration};
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use middleware_std::breaker::{BreakerConfig, BreakerLayer, BreakerState, CircuitBreaker};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let upstream = service_fn(|req: Request<()>| async move {
//!     let status = if req.uri().path() == "/down" { 503 } else { 200 };
//!     Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
//! });
//! let breaker = CircuitBreaker::new(
//!     BreakerConfig::new().consecutive_failures(2).cool_down(Duration::from_secs(1)),
//! );
//! let fallback = Response::builder().status(503).body(Bytes::from("try later")).unwrap();
//! let client = ServiceBuilder::new()
//!     .layer(BreakerLayer::new(breaker.clone()).fallback_response(fallback))
//!     .service(upstream);
//!
//! for _ in 0..2 {
//!     let res = client.clone().oneshot(Request::get("/down").body(()).unwrap()).await.unwrap();
//!     assert!(res.headers().get("x-circuit-breaker").is_none(), "the upstream's answer");
//! }
//! assert_eq!(breaker.state(""), BreakerState::Open);
//!
//! let res = client.clone().oneshot(Request::get("/up").body(()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(res.headers()["x-circuit-breaker"], "open", "the fallback");
//!
//! tokio::time::advance(Duration::from_secs(1)).await;
//! let res = client.oneshot(Request::get("/up").body(()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK, "a probe went through");
//! assert_eq!(breaker.state(""), BreakerState::Closed);
//! # }
//! ```

mod handle;
mod layer;
mod service;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;

#[doc(inline)]
pub use self::{
    handle::{CircuitBreaker, OnStateChange, Ticket},
    layer::{BreakerLayer, DefaultFailurePolicy, FailurePolicy},
    service::{Breaker, BreakerFallback, ResponseFuture},
    store::{
        Acquired, BreakerConfig, BreakerState, BreakerStore, CallOutcome, MemoryStore, Permit,
        Transition,
    },
};

/// A call was refused because its circuit is open (or half-open with every probe out).
///
/// Display: "circuit breaker is open".
#[derive(Debug)]
pub struct BreakerOpenError(());

impl BreakerOpenError {
    pub(crate) const fn new() -> Self {
        Self(())
    }
}

impl fmt::Display for BreakerOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit breaker is open")
    }
}

impl std::error::Error for BreakerOpenError {}
