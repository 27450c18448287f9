//! Phases, the body timeout error and the context marker for ignored deadline headers.

use std::fmt;

use http::{HeaderName, HeaderValue};
use middleware_core::{Context, Expiry};

/// The response header naming the phase whose deadline passed: `request` on the whole-request
/// timeout response, `ready` when the inner service stayed unready for the whole budget,
/// `request-body` on the `408`. See [`TimeoutPhase`].
pub const TIMEOUT_PHASE: HeaderName = HeaderName::from_static("x-timeout-phase");

/// Which deadline of a request passed: core's [`TimeoutPhase`](crate::TimeoutPhase), the
/// same phases the request-wide report ([`Expiry`](crate::Expiry)) names, here re-exported.
/// The `x-timeout-phase` header names them `ready`, `request` (the whole-request budget,
/// [`TimeoutPhase::Head`]), `request-body` and `response-body`.
pub use middleware_core::TimeoutPhase;

/// The `x-timeout-phase` value of `phase`.
pub(crate) const fn header_name(phase: TimeoutPhase) -> &'static str {
    match phase {
        TimeoutPhase::Ready => "ready",
        TimeoutPhase::RequestBody => "request-body",
        TimeoutPhase::ResponseStream => "response-body",
        // `Head`, and any phase a later core adds.
        _ => "request",
    }
}

/// The `x-timeout-phase` header value of `phase`.
pub(crate) const fn header_value(phase: TimeoutPhase) -> HeaderValue {
    HeaderValue::from_static(header_name(phase))
}

/// Reports to the whole request that the deadline of `phase` expired, and whether that
/// deadline was the client's own (see [`Expiry`](crate::Expiry)); the first report wins.
pub(crate) fn record_expiry(cx: &Context, phase: TimeoutPhase, by_client: bool) {
    cx.record_expiry(Expiry::new(phase).by_client(by_client));
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
    kind: Kind,
}

/// Which deadline cut the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The body's idle deadline.
    Idle,
    /// The body's total deadline.
    Total,
    /// The whole-request budget (the context's deadline) while the response body streamed.
    Budget,
}

impl BodyTimeoutError {
    /// A body deadline passed: the idle one or the total one.
    pub(crate) const fn new(phase: TimeoutPhase, idle: bool) -> Self {
        let kind = if idle { Kind::Idle } else { Kind::Total };
        Self { phase, kind }
    }

    /// The whole-request budget expired while the response body streamed, and the body's
    /// producer stopped (on the cancelled context).
    pub(crate) const fn budget() -> Self {
        Self {
            phase: TimeoutPhase::ResponseStream,
            kind: Kind::Budget,
        }
    }

    /// [`TimeoutPhase::RequestBody`] or [`TimeoutPhase::ResponseStream`].
    #[must_use]
    pub const fn phase(&self) -> TimeoutPhase {
        self.phase
    }

    /// Whether the idle deadline (no frame for too long) passed, rather than the total one.
    #[must_use]
    pub const fn is_idle(&self) -> bool {
        matches!(self.kind, Kind::Idle)
    }

    /// Whether the whole-request budget of [`TimeoutLayer`](super::TimeoutLayer) expired while
    /// the response body was streaming, rather than a deadline of the body itself: the body's
    /// producer stopped on the cancelled [`Context`](crate::Context), so the body was cut, not
    /// finished.
    #[must_use]
    pub const fn is_budget(&self) -> bool {
        matches!(self.kind, Kind::Budget)
    }
}

impl fmt::Debug for BodyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(BodyTimeoutError))
            .field("phase", &self.phase)
            .field("kind", &self.kind)
            .finish()
    }
}

impl fmt::Display for BodyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match self.phase {
            TimeoutPhase::ResponseStream => "response body",
            _ => "request body",
        };
        match self.kind {
            Kind::Idle => write!(f, "{body} idle timeout"),
            Kind::Total => write!(f, "{body} total timeout"),
            Kind::Budget => write!(f, "{body} cut by the request budget"),
        }
    }
}

impl std::error::Error for BodyTimeoutError {}

/// Context value inserted by [`Timeout`](super::Timeout) when the inbound deadline header was
/// present but malformed (or repeated) and therefore ignored. It carries nothing of the raw
/// value; a logging layer can report that the header was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MalformedDeadlineHeader;
