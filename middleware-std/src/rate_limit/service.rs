//! [`RateLimit`].

use std::{
    fmt, mem,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Instant,
};

use http::{Request, Response};
use middleware_core::{RequestExt, ResponseBody};
use tower_service::Service;

use crate::layer_time;

use super::{
    future::{ResponseFuture, limited},
    key::{Key, MakeKey, PeerIp},
    layer::RateLimitLayer,
    policy::Policy,
    store::{Check, MemoryStore, RateLimitStore},
};

/// Counts each request against its key's quota and answers `429` past it. See
/// [`RateLimitLayer`] and the [module docs](super) for an example.
pub struct RateLimit<S, M = PeerIp, St = MemoryStore> {
    inner: S,
    layer: RateLimitLayer<M, St>,
}

impl<S> RateLimit<S> {
    /// Wraps `inner` with `policy` per client address, same as
    /// `RateLimitLayer::new(policy).layer(inner)`.
    pub fn new(inner: S, policy: Policy) -> Self {
        Self::from_layer(inner, RateLimitLayer::new(policy))
    }

    /// The layer form, same as [`RateLimitLayer::new`].
    pub fn layer(policy: Policy) -> RateLimitLayer {
        RateLimitLayer::new(policy)
    }
}

impl<S, M, St> RateLimit<S, M, St> {
    pub(crate) const fn from_layer(inner: S, layer: RateLimitLayer<M, St>) -> Self {
        Self { inner, layer }
    }

    /// The store (shared by every clone).
    pub fn store(&self) -> &St {
        &self.layer.store
    }

    define_inner_service_accessors!();
}

impl<S: Clone, M: Clone, St> Clone for RateLimit<S, M, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, M, St: fmt::Debug> fmt::Debug for RateLimit<S, M, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(RateLimit))
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, M, St, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, M, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    M: MakeKey<ReqBody>,
    St: RateLimitStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, Request<ReqBody>, St::Future>;

    /// The inner service's readiness, unchanged: the limit answers, it does not hold callers
    /// back.
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clock is read only when per-layer times were asked for.
        let started = layer_time::wanted(req.try_context()).then(Instant::now);
        let layer = &self.layer;
        let key = layer.make_key.make_key(&req).unwrap_or_else(Key::anonymous);
        // A store across the network bounds its call by the request's remaining budget.
        let budget = req.try_context().and_then(crate::Context::remaining);
        let check = layer.store.check_within(&key, budget);
        if let Some(started) = started {
            layer_time::record(req.try_context(), "mw.rate_limit", started.elapsed());
        }
        match check {
            Check::Ready(decision) if decision.is_allowed() => {
                // The policy is shared only when allowed responses carry its headers (and
                // there is a quota to report: not when the store could not check it).
                let headers = (layer.on_allowed && !decision.is_unavailable())
                    .then(|| (Arc::clone(&layer.policy), decision));
                // Called right here: the service that reported ready is the one called.
                ResponseFuture::running(self.inner.call(req), headers)
            }
            Check::Ready(decision) => {
                ResponseFuture::rejected(limited(req.context(), &layer.policy, decision))
            }
            Check::Pending(future) => {
                // The ready service waits with the request; a fresh clone stays behind.
                let clone = self.inner.clone();
                let inner = mem::replace(&mut self.inner, clone);
                let policy = Arc::clone(&layer.policy);
                ResponseFuture::checking(future, inner, req, policy, layer.on_allowed)
            }
        }
    }
}

// ----- stack introspection -----

impl<S: middleware_core::Describe, M, St: super::RateLimitStore> middleware_core::Describe
    for RateLimit<S, M, St>
{
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.layer.describe(description);
        self.inner.describe(description);
    }
}
