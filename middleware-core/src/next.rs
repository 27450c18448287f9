//! [`Next`]: the rest of the stack, as seen from an around-style [`Middleware`].

use std::{fmt, future::Future, marker::PhantomData, sync::OnceLock};

use http_body::Body;
use tower_service::Service;

use crate::{
    body::ResponseBody,
    context::{DropGuard, RequestExt},
    middleware::{Middleware, Outcome},
};

/// The rest of the stack after an around-style [`Middleware`]: the next middleware of a
/// [`Chain`](crate::Chain), or the inner tower service.
///
/// `run` consumes `self`, so a middleware calls the rest of the stack at most once. Middleware
/// code only names this trait as a bound (`fn handle<N: Next>`); the implementations are
/// [`ServiceNext`] and [`ChainNext`].
pub trait Next: Send + Sized {
    /// The request body type.
    type ReqBody: Body + Send + 'static;
    /// The inner service's response body type (wrapped in [`ResponseBody`]).
    type ResBody: Body + Send + 'static;
    /// The inner service's error type, passed through unchanged.
    type Error: Send + 'static;

    /// Runs the rest of the stack.
    fn run(self, req: http::Request<Self::ReqBody>) -> impl Future<Output = Outcome<Self>> + Send;
}

/// The [`Next`] that calls the inner tower service (already made ready).
///
/// When the request reaches the inner service with a [`Context`](crate::Context), it arms the
/// adapter's drop guard for it (if no guard is armed yet), so dropping the response future
/// cancels that context with [`CancelCause::Dropped`](crate::CancelCause::Dropped).
pub struct ServiceNext<'a, S, B> {
    inner: S,
    guard: &'a OnceLock<DropGuard>,
    _body: PhantomData<fn(B)>,
}

impl<'a, S, B> ServiceNext<'a, S, B> {
    /// Wraps an inner service that has reported ready; `guard` is the adapter's drop guard slot.
    pub(crate) fn new(inner: S, guard: &'a OnceLock<DropGuard>) -> Self {
        Self {
            inner,
            guard,
            _body: PhantomData,
        }
    }
}

impl<S: fmt::Debug, B> fmt::Debug for ServiceNext<'_, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ServiceNext))
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, B, RB> Next for ServiceNext<'_, S, B>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Body + Send + 'static,
    RB: Body + Send + 'static,
{
    type ReqBody = B;
    type ResBody = RB;
    type Error = S::Error;

    fn run(mut self, req: http::Request<B>) -> impl Future<Output = Outcome<Self>> + Send {
        // Two guards: the adapter's (for drops after the inner call, if the middleware created
        // the context itself) and this call's own (for a middleware that abandons the inner
        // call, e.g. on its own timer, and answers by itself).
        let mut call_guard = match req.try_context() {
            Some(cx) => {
                if self.guard.get().is_none() {
                    let _ = self.guard.set(cx.drop_guard());
                }
                cx.drop_guard()
            }
            None => DropGuard::none(),
        };
        let future = self.inner.call(req);
        async move {
            let result = future.await;
            call_guard.disarm();
            result.map(|res| res.map(ResponseBody::new))
        }
    }
}

/// The [`Next`] that runs the next middleware of a [`Chain`](crate::Chain).
pub struct ChainNext<'a, M, N> {
    middleware: &'a M,
    next: N,
}

impl<'a, M, N> ChainNext<'a, M, N> {
    pub(crate) fn new(middleware: &'a M, next: N) -> Self {
        Self { middleware, next }
    }
}

impl<M, N: fmt::Debug> fmt::Debug for ChainNext<'_, M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ChainNext))
            .field("middleware", &std::any::type_name::<M>())
            .field("next", &self.next)
            .finish()
    }
}

impl<M: Middleware, N: Next> Next for ChainNext<'_, M, N> {
    type ReqBody = N::ReqBody;
    type ResBody = N::ResBody;
    type Error = N::Error;

    fn run(self, req: http::Request<Self::ReqBody>) -> impl Future<Output = Outcome<Self>> + Send {
        self.middleware.handle(req, self.next)
    }
}
