//! [`ConcurrencyLimit`].

use std::{
    fmt, mem,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Instant,
};

use http::{Request, Response};
use http_body::Body;
use middleware_core::{Context, RequestExt, ResponseBody};
use tokio::sync::TryAcquireError;
use tower_service::Service;

use crate::layer_time;

use super::{
    body::PermitBody,
    future::{Rejection, ResponseFuture, WaitGuard},
    layer::{ConcurrencyLimitLayer, Shared},
};

/// Lets at most a fixed number of requests into `S` at once. See [`ConcurrencyLimitLayer`] and
/// the [module docs](super) for an example.
pub struct ConcurrencyLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ConcurrencyLimit<S> {
    /// Wraps `inner` with a limit of `max` requests and load shedding, same as
    /// `ConcurrencyLimitLayer::new(max).layer(inner)`.
    ///
    /// # Panics
    ///
    /// See [`ConcurrencyLimitLayer::new`].
    pub fn new(inner: S, max: usize) -> Self {
        Self::from_shared(inner, ConcurrencyLimitLayer::new(max).shared)
    }

    /// The layer form, same as [`ConcurrencyLimitLayer::new`].
    ///
    /// # Panics
    ///
    /// See [`ConcurrencyLimitLayer::new`].
    pub fn layer(max: usize) -> ConcurrencyLimitLayer {
        ConcurrencyLimitLayer::new(max)
    }

    pub(crate) const fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// Requests inside the limit now (shared by every clone).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }

    /// Requests waiting in the queue now (shared by every clone).
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.shared.waiting()
    }

    define_inner_service_accessors!();
}

impl<S: Clone> Clone for ConcurrencyLimit<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ConcurrencyLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ConcurrencyLimit))
            .field("inner", &self.inner)
            .field("max", &self.shared.max)
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ConcurrencyLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Body,
{
    type Response = Response<ResponseBody<PermitBody<ResBody>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, Request<ReqBody>>;

    /// The inner service's readiness, unchanged: the limit is applied in the response future,
    /// so a full limit answers (or queues) instead of holding the caller back.
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clock is read only when per-layer times were asked for.
        let started = layer_time::wanted(req.try_context()).then(Instant::now);
        let shared = &self.shared;
        let acquired = Arc::clone(&shared.semaphore).try_acquire_owned();
        if let Some(started) = started {
            layer_time::record(req.try_context(), "mw.limit", started.elapsed());
        }
        match acquired {
            Ok(permit) => {
                // The fast path: the service that reported ready is called right here.
                ResponseFuture::running(self.inner.call(req), permit)
            }
            // `Closed` cannot happen (the semaphore is never closed); the queue would answer it.
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                let Some(waiting) = WaitGuard::enter(shared) else {
                    return ResponseFuture::rejected(
                        Rejection::Overflow.response(shared, req.context()),
                    );
                };
                // The ready service goes with the request into the queue; a fresh clone stays
                // behind, to be made ready for the next request.
                let clone = self.inner.clone();
                let inner = mem::replace(&mut self.inner, clone);
                let deadline = req.try_context().and_then(Context::deadline);
                ResponseFuture::waiting(inner, req, deadline, shared, waiting)
            }
        }
    }
}

// ----- stack introspection -----

impl<S: middleware_core::Describe> middleware_core::Describe for ConcurrencyLimit<S> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.shared.describe(description);
        self.inner.describe(description);
    }
}
