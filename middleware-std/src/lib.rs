#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

// Core's items by name, not by glob: a glob would let this crate's own `axum` and `__private`
// modules silently shadow core's.
#[doc(inline)]
pub use middleware_core::{
    BoxError, CancelCause, Cancelled, Chain, Context, Describe, DropGuard, EnsureContext, Error,
    Expiry, Hook, HookLayer, HookService, Mark, Middleware, MiddlewareLayer, MiddlewareService,
    Next, Observe, ObserveLayer, ObserveService, Outcome, ProblemDetails, RenderError, Renderer,
    RequestExt, RequestId, ResponseBody, TimeoutPhase, body, context, describe, described, error,
    future, next,
};
// The crates a layer's signatures are made of, so that an app or a layer crate depends on one
// crate (not inlined: they are documented where they come from).
#[cfg(feature = "macros")]
#[doc(inline)]
pub use middleware_core::{Layer, middleware_fn};
pub use middleware_core::{bytes, http, http_body, tower_layer, tower_service};
/// Annotates an async fn handler with per-handler layers; see the
/// [`middleware-macros` docs](middleware_macros::handler).
#[cfg(feature = "macros")]
#[doc(inline)]
pub use middleware_macros::handler;

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "body-limit")]
pub mod body_limit;
#[cfg(feature = "breaker")]
pub mod breaker;
#[cfg(feature = "call-timeout")]
pub mod call_timeout;
#[cfg(feature = "catch-panic")]
pub mod catch_panic;
#[cfg(feature = "dump")]
pub mod dump;
#[cfg(feature = "lifecycle")]
pub mod lifecycle;
#[cfg(feature = "limit")]
pub mod limit;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "request-id")]
pub mod request_id;
#[cfg(feature = "retry")]
pub mod retry;
#[cfg(all(
    feature = "request-id",
    feature = "logging",
    feature = "timing",
    feature = "catch-panic",
    feature = "timeout"
))]
pub mod stack;
#[cfg(feature = "timeout")]
pub mod timeout;
#[cfg(feature = "timing")]
pub mod timing;

#[cfg(any(feature = "limit", feature = "rate-limit"))]
mod admission;
// Compiled with every feature set: its items are dead (and allowed to be) when no wrapper that
// uses them is on.
mod body_state;
mod compose;
#[cfg(any(feature = "logging", feature = "metrics"))]
mod error_type;
mod layer_time;
#[cfg(any(feature = "logging", feature = "metrics"))]
mod route;
#[cfg(test)]
mod test_helpers;

#[cfg(feature = "axum")]
pub mod axum;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
