//! [`CatchPanic`], the service.

use std::{
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use http::{Request, Response};
use middleware_core::{Context, RequestExt};
use tower_service::Service;

use super::{
    body::CatchPanicBody,
    future::ResponseFuture,
    layer::CatchPanicLayer,
    panic::{DefaultResponseForPanic, Panic, PanicSite, ResponseForPanic},
};
use crate::{compose, layer_time};

/// Catches panics in `S`'s `poll_ready`, `call`, response future and response body. See
/// [`CatchPanicLayer`] and the [module docs](super) for an example.
pub struct CatchPanic<S, R = DefaultResponseForPanic> {
    inner: S,
    responder: R,
    // A panic caught in `poll_ready`, answered by the next `call` without calling `inner`. In a
    // `Mutex` only so that the service stays `Sync` (a panic payload is `Send`, not `Sync`),
    // as axum's `Router::layer` requires; it is never contended (`&mut self` everywhere).
    ready_panic: Option<std::sync::Mutex<Panic>>,
}

impl<S> CatchPanic<S> {
    /// Wraps `inner` with the default responder.
    pub const fn new(inner: S) -> Self {
        Self::from_parts(inner, DefaultResponseForPanic)
    }

    /// The layer form, same as [`CatchPanicLayer::new`].
    pub const fn layer() -> CatchPanicLayer {
        CatchPanicLayer::new()
    }
}

impl<S, R> CatchPanic<S, R> {
    /// Wraps `inner`, answering panics with `responder`.
    pub const fn custom(inner: S, responder: R) -> Self
    where
        R: ResponseForPanic,
    {
        Self::from_parts(inner, responder)
    }

    pub(crate) const fn from_parts(inner: S, responder: R) -> Self {
        Self {
            inner,
            responder,
            ready_panic: None,
        }
    }

    define_inner_service_accessors!();
}

impl<S: Clone, R: Clone> Clone for CatchPanic<S, R> {
    fn clone(&self) -> Self {
        // A clone is not ready: it does not inherit a pending `poll_ready` panic.
        Self::from_parts(self.inner.clone(), self.responder.clone())
    }
}

impl<S: fmt::Debug, R> fmt::Debug for CatchPanic<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(CatchPanic))
            .field("inner", &self.inner)
            .field("responder", &std::any::type_name::<R>())
            .field("ready_panic", &self.ready_panic)
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for CatchPanic<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: ResponseForPanic,
{
    type Response = Response<CatchPanicBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        if self.ready_panic.is_some() {
            return Poll::Ready(Ok(()));
        }
        match catch_unwind(AssertUnwindSafe(|| self.inner.poll_ready(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                // Ready to answer one request: with the 500, without touching `inner`.
                self.ready_panic = Some(std::sync::Mutex::new(Panic::new(
                    payload,
                    PanicSite::PollReady,
                )));
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let cx = req.try_context().cloned();
        if cx.is_none() {
            // A request-id layer inside warns: the id it sets would not reach this layer.
            compose::enter(req.extensions_mut(), compose::PANIC_WITHOUT_CONTEXT);
        }
        // This layer's own time in `call` (up to, not including, the inner `call`), read on
        // the context's clock only when per-layer times are wanted.
        let started = cx
            .as_ref()
            .filter(|cx| layer_time::wanted(Some(cx)))
            .map(Context::elapsed);
        let responder = self.responder.clone();
        if let Some(panic) = self.ready_panic.take() {
            let panic = panic
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let spent = since(cx.as_ref(), started);
            return ResponseFuture::panicked(panic, responder, cx, spent);
        }
        // Up to the inner `call`: what that call takes is the inner service's time.
        let spent = since(cx.as_ref(), started);
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => ResponseFuture::new(future, responder, cx, spent),
            Err(payload) => {
                ResponseFuture::panicked(Panic::new(payload, PanicSite::Call), responder, cx, spent)
            }
        }
    }
}

/// The time on `cx`'s clock since `started`, if it was read.
fn since(cx: Option<&Context>, started: Option<Duration>) -> Option<Duration> {
    let started = started?;
    Some(cx?.elapsed().saturating_sub(started))
}

// ----- stack introspection -----

impl<S: middleware_core::Describe, R> middleware_core::Describe for CatchPanic<S, R> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("CatchPanicLayer")
            .setting("responder", crate::compose::short_name::<R>());
        self.inner.describe(description);
    }
}
