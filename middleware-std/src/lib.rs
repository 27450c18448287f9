//! Batteries for [`middleware_core`]: one dependency for an application.
//!
//! This crate re-exports `middleware-core` (and its macros with the default `macros` feature),
//! so an application depends on `middleware-std` alone. The std layers (auth, logging, timing,
//! timeout, panic recovery, request id) land here behind one feature each.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use middleware_core::*;
