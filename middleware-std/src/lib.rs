//! Batteries for [`middleware_core`]: one dependency for an application.
//!
//! This crate re-exports `middleware-core` (and its macros with the `macros` feature), so an
//! application depends on `middleware-std` alone. Each layer sits behind a feature of its own
//! name; `full` (the default) turns on all of them.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use middleware_core::*;

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
