//! Phases, the body timeout error and the context marker for ignored deadline headers.

use std::fmt;

use http::{HeaderName, HeaderValue};

/// The response header naming the phase whose deadline passed: `request` on the whole-request
/// timeout response, `request-body` on the `408`. See [`TimeoutPhase`].
pub const TIMEOUT_PHASE: HeaderName = HeaderName::from_static("x-timeout-phase");

/// Which deadline of a request passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// The whole-request budget, until the response head: answered with the configured status
    /// (`503`, or `504` for gateways) and `x-timeout-phase: request`.
    Request,
    /// Reading the request body (idle or total): answered with `408`, `Connection: close` and
    /// `x-timeout-phase: request-body`.
    RequestBody,
    /// Streaming the response body (idle or total): the head is already sent, so the body ends
    /// with a [`BodyTimeoutError`] whose [`phase`](BodyTimeoutError::phase) says so.
    ResponseBody,
}

impl TimeoutPhase {
    /// The name used in the `x-timeout-phase` header and in error messages: `request`,
    /// `request-body`, `response-body`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::RequestBody => "request-body",
            Self::ResponseBody => "response-body",
        }
    }

    pub(crate) const fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error a [`TimeoutBody`](super::TimeoutBody) ends with when a body deadline passes.
///
/// Body errors are [`BoxError`](crate::BoxError)s; find this one with `downcast_ref`:
///
/// ```
/// use middleware_std::{BoxError, timeout::{BodyTimeoutError, TimeoutPhase}};
///
/// fn describe(err: &BoxError) -> Option<(TimeoutPhase, bool)> {
///     let err = err.downcast_ref::<BodyTimeoutError>()?;
///     Some((err.phase(), err.is_idle()))
/// }
/// # let _ = describe;
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeoutError {
    phase: TimeoutPhase,
    idle: bool,
}

impl BodyTimeoutError {
    pub(crate) const fn new(phase: TimeoutPhase, idle: bool) -> Self {
        Self { phase, idle }
    }

    /// [`TimeoutPhase::RequestBody`] or [`TimeoutPhase::ResponseBody`].
    #[must_use]
    pub const fn phase(&self) -> TimeoutPhase {
        self.phase
    }

    /// Whether the idle deadline (no frame for too long) passed, rather than the total one.
    #[must_use]
    pub const fn is_idle(&self) -> bool {
        self.idle
    }
}

impl fmt::Debug for BodyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(BodyTimeoutError))
            .field("phase", &self.phase)
            .field("idle", &self.idle)
            .finish()
    }
}

impl fmt::Display for BodyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match self.phase {
            TimeoutPhase::ResponseBody => "response body",
            _ => "request body",
        };
        let which = if self.idle { "idle" } else { "total" };
        write!(f, "{body} {which} timeout")
    }
}

impl std::error::Error for BodyTimeoutError {}

/// Context value inserted by [`Timeout`](super::Timeout) when the inbound deadline header was
/// present but malformed (or repeated) and therefore ignored. It carries nothing of the raw
/// value; a logging layer can report that the header was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MalformedDeadlineHeader;
