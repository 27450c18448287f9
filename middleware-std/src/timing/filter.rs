//! [`TimingFilter`]: which responses get the `Server-Timing` header.

use http::{HeaderMap, StatusCode};

/// Chooses, per response, whether the timing headers (`Server-Timing` and, when enabled,
/// `x-response-time`) are written at all.
///
/// Implemented for [`DefaultTimingFilter`] (every response), [`NotForRejected`] (not for
/// `401`, `403`, `407`: the production choice), `bool` (`false` is
/// [`ServerTimingLayer::off`](super::ServerTimingLayer::off)) and closures
/// `Fn(StatusCode, &HeaderMap) -> bool + Clone`.
///
/// The [`OnBodyEnd`](super::OnBodyEnd) hook runs whatever the filter says: it stays on the
/// server.
pub trait TimingFilter {
    /// Whether to write the timing headers on a response with this status and headers.
    fn should_send(&self, status: StatusCode, headers: &HeaderMap) -> bool;
}

/// The default [`TimingFilter`]: every response gets the header (the behaviour before filters
/// existed). For production, prefer [`NotForRejected`]; see the
/// [module docs](super#in-production).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultTimingFilter;

impl TimingFilter for DefaultTimingFilter {
    #[inline]
    fn should_send(&self, _: StatusCode, _: &HeaderMap) -> bool {
        true
    }
}

/// A [`TimingFilter`] that leaves the header off rejected requests: `401 Unauthorized`,
/// `403 Forbidden` and `407 Proxy Authentication Required`.
///
/// A credential check that does more work for a known user than for an unknown one answers
/// in a measurably different time; an exact server-side duration on its rejections would hand
/// that difference to the client without network noise. See the
/// [module docs](super#in-production).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotForRejected;

impl TimingFilter for NotForRejected {
    #[inline]
    fn should_send(&self, status: StatusCode, _: &HeaderMap) -> bool {
        !matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::PROXY_AUTHENTICATION_REQUIRED
        )
    }
}

/// `true` sends on every response, `false` on none.
impl TimingFilter for bool {
    #[inline]
    fn should_send(&self, _: StatusCode, _: &HeaderMap) -> bool {
        *self
    }
}

impl<F> TimingFilter for F
where
    F: Fn(StatusCode, &HeaderMap) -> bool + Clone,
{
    #[inline]
    fn should_send(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        self(status, headers)
    }
}
