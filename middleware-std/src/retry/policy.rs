//! Which requests and outcomes are retried.

use http::{Method, Request, Response, StatusCode};

/// Decides which requests may be retried and after which outcomes.
///
/// Implemented for [`DefaultRetryPolicy`] and for closures
/// `Fn(&Request<B>, Result<&Response<RB>, &E>) -> bool` (which decide on outcomes and keep the
/// default [`is_retryable`](Self::is_retryable): idempotent methods only). See the
/// [module docs](super) for an example.
pub trait RetryPolicy<B, RB, E> {
    /// Whether `request` may be retried at all; asked once, before the first attempt. A request
    /// that may not is sent once, without keeping a copy.
    ///
    /// The default allows the idempotent methods of RFC 9110 section 9.2.2: `GET`, `HEAD`,
    /// `OPTIONS`, `TRACE`, `PUT` and `DELETE`.
    fn is_retryable(&self, request: &Request<B>) -> bool {
        is_idempotent(request.method())
    }

    /// Whether to retry after `outcome`, the result of an attempt of `request`.
    ///
    /// `request` is the copy of the request the retries are made from, extensions included
    /// unless [`reads_extensions`](Self::reads_extensions) says they are not read.
    fn should_retry(&self, request: &Request<B>, outcome: Result<&Response<RB>, &E>) -> bool;

    /// Whether [`should_retry`](Self::should_retry) reads the request's extensions (the
    /// caller's context among them). The default says it may.
    ///
    /// A policy that does not (as [`DefaultRetryPolicy`], which decides on the outcome alone)
    /// says so, and the layer keeps its copy of a request whose only extension is the context
    /// (a handler's call) without the extension map: three allocations fewer per call. Each
    /// attempt runs in a scope of its own, so the copy's context is never sent.
    fn reads_extensions(&self) -> bool {
        true
    }
}

/// The default [`RetryPolicy`]: idempotent methods; retried after any error of the inner
/// service (a transport error, a [`CallTimeoutError`](crate::call_timeout) from a per-call
/// timeout inside) and after `429`, `502`, `503` and `504`. Never after another status.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DefaultRetryPolicy;

impl<B, RB, E> RetryPolicy<B, RB, E> for DefaultRetryPolicy {
    fn reads_extensions(&self) -> bool {
        false
    }

    fn should_retry(&self, _request: &Request<B>, outcome: Result<&Response<RB>, &E>) -> bool {
        outcome.map_or(true, |res| {
            matches!(
                res.status(),
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            )
        })
    }
}

impl<F, B, RB, E> RetryPolicy<B, RB, E> for F
where
    F: Fn(&Request<B>, Result<&Response<RB>, &E>) -> bool,
{
    fn should_retry(&self, request: &Request<B>, outcome: Result<&Response<RB>, &E>) -> bool {
        self(request, outcome)
    }
}

/// Whether `method` is idempotent (RFC 9110 section 9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
