#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

#[cfg(feature = "axum")]
pub mod axum;
pub mod body;
pub mod context;
pub mod describe;
pub mod error;
pub mod future;
mod layer;
mod middleware;
pub mod next;
mod service;
#[cfg(feature = "testing")]
pub mod testing;

#[doc(inline)]
pub use self::{
    body::ResponseBody,
    context::{
        CancelCause, Cancelled, Context, DropGuard, Expiry, Mark, RequestExt, RequestId,
        TimeoutPhase,
    },
    describe::{Describe, describe, described},
    error::{BoxError, Error, ProblemDetails, RenderError, Renderer},
    layer::{HookLayer, MiddlewareLayer, ObserveLayer},
    middleware::{Chain, EnsureContext, Hook, Middleware, Observe, Outcome},
    next::Next,
    service::{HookService, MiddlewareService, ObserveService},
};

#[cfg(feature = "macros")]
#[doc(inline)]
pub use middleware_macros::{Layer, middleware_fn};

// The crates a layer's signatures are made of, so that a layer crate depends on
// `middleware-core` alone.
/// The `bytes` crate, re-exported.
pub use bytes;
/// The `http` crate, re-exported.
pub use http;
/// The `http-body` crate, re-exported.
pub use http_body;
/// The `tower-layer` crate, re-exported.
pub use tower_layer;
/// The `tower-service` crate, re-exported.
pub use tower_service;

/// Paths used by code that `middleware-macros` generates.
///
/// Not public API: nothing here is covered by semver.
#[doc(hidden)]
pub mod __private {
    /// Not public API.
    #[cfg(feature = "axum")]
    pub use crate::axum::Provides;
    /// Not public API.
    pub use crate::{
        Context, Hook, HookService, Middleware, MiddlewareService, Next, Observe, ObserveService,
        Outcome, RequestExt, ResponseBody,
    };
    /// Not public API.
    pub use ::bytes::Bytes;
    /// Not public API.
    pub use ::http;
    /// Not public API.
    pub use ::std::{
        boxed::Box, clone::Clone, default::Default, fmt, future::Future, marker::Copy,
        ops::ControlFlow, option::Option, pin::Pin, result::Result, unreachable,
    };
    /// Not public API.
    pub use ::tower_layer::Layer;
    /// Not public API.
    pub use ::tower_service::Service;
}
