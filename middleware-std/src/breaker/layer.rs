//! [`BreakerLayer`], what counts as a failure, and the fallback.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use tower_layer::Layer;

use super::{BreakerStore, CircuitBreaker, MemoryStore, OnStateChange, service::Breaker};

/// Decides which outcomes count as failures for the breaker.
///
/// Implemented for [`DefaultFailurePolicy`] and for closures
/// `Fn(Result<&Response<RB>, &E>) -> bool` (`true`: a failure).
pub trait FailurePolicy<RB, E> {
    /// Whether `outcome` is a failure.
    fn is_failure(&self, outcome: Result<&Response<RB>, &E>) -> bool;
}

/// The default [`FailurePolicy`]: every error of the inner service (transport errors, a
/// per-call timeout's [`CallTimeoutError`](crate::call_timeout)) and every `5xx` response.
/// Never a `4xx`: the caller's mistake says nothing about the upstream's health.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DefaultFailurePolicy;

impl<RB, E> FailurePolicy<RB, E> for DefaultFailurePolicy {
    fn is_failure(&self, outcome: Result<&Response<RB>, &E>) -> bool {
        outcome.map_or(true, |res| res.status().is_server_error())
    }
}

impl<F, RB, E> FailurePolicy<RB, E> for F
where
    F: Fn(Result<&Response<RB>, &E>) -> bool,
{
    fn is_failure(&self, outcome: Result<&Response<RB>, &E>) -> bool {
        self(outcome)
    }
}

/// What an open circuit answers.
#[derive(Clone)]
pub(crate) enum Fallback {
    /// A [`BreakerOpenError`](super::BreakerOpenError).
    Error,
    /// A copy of this response, with `x-circuit-breaker: open`.
    Response {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

/// Refuses calls fast while the upstream is failing; see the [module docs](super) for an
/// example.
#[must_use]
pub struct BreakerLayer<St = MemoryStore, C = (), F = DefaultFailurePolicy> {
    pub(crate) breaker: CircuitBreaker<St, C>,
    pub(crate) failure: F,
    pub(crate) fallback: Fallback,
    pub(crate) per_host: bool,
}

impl<St: BreakerStore, C: OnStateChange> BreakerLayer<St, C> {
    /// Calls through `breaker` (its clones share its state); an open circuit answers with a
    /// [`BreakerOpenError`](super::BreakerOpenError).
    pub fn new(breaker: CircuitBreaker<St, C>) -> Self {
        Self {
            breaker,
            failure: DefaultFailurePolicy,
            fallback: Fallback::Error,
            per_host: false,
        }
    }
}

impl<St, C, F> BreakerLayer<St, C, F> {
    /// Counts failures with `policy` instead.
    pub fn failure_policy<F2>(self, policy: F2) -> BreakerLayer<St, C, F2> {
        BreakerLayer {
            breaker: self.breaker,
            failure: policy,
            fallback: self.fallback,
            per_host: self.per_host,
        }
    }

    /// An open circuit answers with a copy of `response` (status, headers, body) and the
    /// header `x-circuit-breaker: open`, instead of an error.
    pub fn fallback_response(mut self, response: Response<Bytes>) -> Self {
        let (parts, body) = response.into_parts();
        self.fallback = Fallback::Response {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        self
    }

    /// Keeps one circuit per upstream host (the request URI's host, lowercased; `""` for a
    /// URI without one) instead of one for every call.
    pub const fn per_host(mut self) -> Self {
        self.per_host = true;
        self
    }

    /// The breaker the layer calls through.
    #[must_use]
    pub const fn breaker(&self) -> &CircuitBreaker<St, C> {
        &self.breaker
    }
}

impl<St, C, F: Clone> Clone for BreakerLayer<St, C, F> {
    fn clone(&self) -> Self {
        Self {
            breaker: self.breaker.clone(),
            failure: self.failure.clone(),
            fallback: self.fallback.clone(),
            per_host: self.per_host,
        }
    }
}

impl<St: fmt::Debug, C, F> fmt::Debug for BreakerLayer<St, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(BreakerLayer))
            .field("breaker", &self.breaker)
            .field("failure", &std::any::type_name::<F>())
            .field(
                "fallback",
                &match self.fallback {
                    Fallback::Error => "error",
                    Fallback::Response { .. } => "response",
                },
            )
            .field("per_host", &self.per_host)
            .finish()
    }
}

impl<S, St, C, F: Clone> Layer<S> for BreakerLayer<St, C, F> {
    type Service = Breaker<S, St, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker::from_layer(inner, self.clone())
    }
}

// ----- stack introspection -----

impl<St, C, F> middleware_core::Describe for BreakerLayer<St, C, F> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("BreakerLayer")
            .setting("store", crate::compose::short_name::<St>())
            .setting("failure_policy", crate::compose::short_name::<F>())
            .setting(
                "fallback",
                match self.fallback {
                    Fallback::Error => "error",
                    Fallback::Response { .. } => "response",
                },
            )
            .setting("per_host", self.per_host);
    }
}
