#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

#[doc(inline)]
pub use middleware_core::*;
/// Annotates an async fn handler with per-handler layers; see the
/// [`middleware-macros` docs](middleware_macros::handler).
#[cfg(feature = "macros")]
#[doc(inline)]
pub use middleware_macros::handler;

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "catch-panic")]
pub mod catch_panic;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "request-id")]
pub mod request_id;
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

mod layer_time;
#[cfg(test)]
mod test_helpers;

#[cfg(feature = "axum")]
pub mod axum;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
