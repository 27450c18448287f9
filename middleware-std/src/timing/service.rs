use std::{
    fmt,
    sync::atomic::AtomicBool,
    task::{Context as TaskContext, Poll},
};

use http::{Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{
    DefaultTimingFilter, OnBodyEnd, ResponseFuture, ServerTimingLayer, TimingBody, TimingFilter,
    future::State, layer::Config,
};
use crate::{RequestExt, compose};

/// The service of [`ServerTimingLayer`]. See the [module docs](super) for an example.
#[derive(Clone)]
pub struct ServerTiming<S, H = (), F = DefaultTimingFilter> {
    pub(crate) inner: S,
    pub(crate) config: Config,
    pub(crate) on_body_end: H,
    pub(crate) filter: F,
}

impl<S> ServerTiming<S> {
    /// Wraps `inner` with the default settings of [`ServerTimingLayer::new`].
    pub const fn new(inner: S) -> Self {
        let layer = ServerTimingLayer::new();
        Self {
            inner,
            config: layer.config,
            on_body_end: (),
            filter: layer.filter,
        }
    }

    /// The layer form, same as [`ServerTimingLayer::new`].
    pub const fn layer() -> ServerTimingLayer {
        ServerTimingLayer::new()
    }
}

impl<S, H, F> ServerTiming<S, H, F> {
    define_inner_service_accessors!();
}

impl<S: fmt::Debug, H, F> fmt::Debug for ServerTiming<S, H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(stringify!(ServerTiming));
        d.field("inner", &self.inner);
        self.config
            .debug_fields(&mut d, &self.on_body_end, &self.filter);
        d.finish()
    }
}

impl<S, H, F, B, RB> Service<Request<B>> for ServerTiming<S, H, F>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Body,
    H: OnBodyEnd + Clone,
    F: TimingFilter + Clone,
{
    type Response = Response<TimingBody<RB, H>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, H, F>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // A context made right here was made now: no need to read the clock again.
        let fresh = req.try_context().is_none();
        // The marks recorded inside are read through this handle, so the context must exist.
        req.context();
        // Marked after the context exists, so that the mark never makes the extension map.
        let nested = compose::enter(req.extensions_mut(), compose::TIMING) & compose::TIMING != 0;
        if nested {
            warn_nested();
        }
        let cx = req.context();
        if self.config.per_layer && !nested {
            cx.request_layer_times();
        }
        let cx = cx.clone();
        // hyper never polls the body of a response to HEAD: it ends at the head.
        let head = req.method() == Method::HEAD;
        let start = if fresh {
            0
        } else {
            u64::try_from(cx.elapsed().as_nanos()).unwrap_or(u64::MAX)
        };
        ResponseFuture::new(
            self.inner.call(req),
            State {
                cx,
                start,
                config: self.config,
                hook: self.on_body_end.clone(),
                filter: self.filter.clone(),
                head,
                nested,
            },
        )
    }
}

/// Warns, once per process, that a timing layer found another one outside it.
fn warn_nested() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    compose::once(&WARNED, || {
        tracing::warn!(
            "two `ServerTimingLayer`s on one request (a per-route one under a global one, or \
             under `StackLayer`, which has one): the inner one writes no `Server-Timing` header, \
             the outer one does; remove the inner `ServerTimingLayer` (or give its settings to \
             the outer one: `StackLayer::timing`)"
        );
    });
}

// ----- stack introspection -----

impl<S: middleware_core::Describe, H, F> middleware_core::Describe for ServerTiming<S, H, F> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.config.describe::<H, F>(description);
        self.inner.describe(description);
    }
}
