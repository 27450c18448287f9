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
    fn should_retry(&self, request: &Request<B>, outcome: Result<&Response<RB>, &E>) -> bool;
}

/// The default [`RetryPolicy`]: idempotent methods; retried after any error of the inner
/// service (a transport error, a [`CallTimeoutError`](crate::call_timeout) from a per-call
/// timeout inside) and after `429`, `502`, `503` and `504`. Never after another status.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DefaultRetryPolicy;

impl<B, RB, E> RetryPolicy<B, RB, E> for DefaultRetryPolicy {
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
