//! [`MiddlewareLayer`], [`HookLayer`] and [`ObserveLayer`]: turn a middleware into a tower
//! [`Layer`].

use std::{fmt, sync::Arc};

use tower_layer::Layer;

use crate::{
    middleware::{Hook, Middleware, Observe},
    service::{HookService, MiddlewareService, ObserveService},
};

/// A tower [`Layer`] for an around-style [`Middleware`].
///
/// The middleware is shared (`Arc`) by every service the layer makes, so cloning the layer or
/// its services never clones the middleware. See the [`Middleware`] docs for an example.
#[must_use]
pub struct MiddlewareLayer<M> {
    middleware: Arc<M>,
}

impl<M: Middleware> MiddlewareLayer<M> {
    /// A layer that runs `middleware` around the inner service.
    pub fn new(middleware: M) -> Self {
        Self {
            middleware: Arc::new(middleware),
        }
    }
}

impl<M> MiddlewareLayer<M> {
    /// The middleware.
    #[must_use]
    pub fn middleware(&self) -> &M {
        &self.middleware
    }
}

impl<M> Clone for MiddlewareLayer<M> {
    fn clone(&self) -> Self {
        Self {
            middleware: Arc::clone(&self.middleware),
        }
    }
}

impl<M: fmt::Debug> fmt::Debug for MiddlewareLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(MiddlewareLayer))
            .field("middleware", &self.middleware)
            .finish()
    }
}

impl<M, S> Layer<S> for MiddlewareLayer<M> {
    type Service = MiddlewareService<M, S>;

    fn layer(&self, inner: S) -> Self::Service {
        MiddlewareService::from_arc(Arc::clone(&self.middleware), inner)
    }
}

/// A tower [`Layer`] for a hook-style [`Hook`].
///
/// See the [`Hook`] docs for an example.
#[must_use]
pub struct HookLayer<H> {
    hook: Arc<H>,
}

impl<H: Hook> HookLayer<H> {
    /// A layer that runs `hook` before and after the inner service.
    pub fn new(hook: H) -> Self {
        Self {
            hook: Arc::new(hook),
        }
    }
}

impl<H> HookLayer<H> {
    /// The hook.
    #[must_use]
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

impl<H> Clone for HookLayer<H> {
    fn clone(&self) -> Self {
        Self {
            hook: Arc::clone(&self.hook),
        }
    }
}

impl<H: fmt::Debug> fmt::Debug for HookLayer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(HookLayer))
            .field("hook", &self.hook)
            .finish()
    }
}

impl<H, S> Layer<S> for HookLayer<H> {
    type Service = HookService<H, S>;

    fn layer(&self, inner: S) -> Self::Service {
        HookService::from_arc(Arc::clone(&self.hook), inner)
    }
}

/// A tower [`Layer`] for an [`Observe`]: a hook that never answers early, whose service
/// returns the inner service's response type unchanged.
///
/// The observer is held by value and cloned into each service and each request's future, as
/// tower-http's layers clone their callbacks: free for the usual stateless observer; put shared
/// state behind an `Arc` inside it.
///
/// See the [`Observe`] docs for an example, and for when to pick it over a [`HookLayer`].
#[derive(Clone)]
#[must_use]
pub struct ObserveLayer<O> {
    observer: O,
}

impl<O: Observe + Clone> ObserveLayer<O> {
    /// A layer that runs `observer` before and after the inner service.
    pub fn new(observer: O) -> Self {
        Self { observer }
    }
}

impl<O> ObserveLayer<O> {
    /// The observer.
    #[must_use]
    pub fn observer(&self) -> &O {
        &self.observer
    }
}

impl<O: fmt::Debug> fmt::Debug for ObserveLayer<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ObserveLayer))
            .field("observer", &self.observer)
            .finish()
    }
}

impl<O: Clone, S> Layer<S> for ObserveLayer<O> {
    type Service = ObserveService<O, S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService::from_parts(self.observer.clone(), inner)
    }
}
