//! What layers report to the whole request: which deadline expired, and which headers carry
//! credentials. Both are shared by every handle of a request, so an outer layer (the access log)
//! reads what an inner one (a timeout, an auth check) reported.

use std::fmt;

/// The phase of a request that ran out of time, reported by the layer that enforced the
/// deadline (see [`Expiry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Waiting for the inner service to become ready (`poll_ready`).
    Ready,
    /// Waiting for the response head.
    Head,
    /// Reading the request body.
    RequestBody,
    /// Streaming the response body, after the head went out. (Not `ResponseBody`: an enum
    /// variant shares the type namespace, and a second `ResponseBody` there would make rustc
    /// print core's body type with its full path in every diagnostic.)
    ResponseStream,
}

impl TimeoutPhase {
    /// A short lowercase name, stable for logs and metrics: `ready`, `head`, `request_body`,
    /// `response_stream`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Head => "head",
            Self::RequestBody => "request_body",
            Self::ResponseStream => "response_stream",
        }
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deadline that expired: in which phase, and whether the deadline was the client's own (an
/// inbound `grpc-timeout`, say) rather than the server's budget.
///
/// A timeout layer records one with [`Context::record_expiry`](super::Context::record_expiry)
/// when it gives up on a request; the access log reads it with
/// [`Context::expiry`](super::Context::expiry) to name the phase and to tell a client's own
/// short deadline (not an overload) from the server's budget running out.
///
/// ```
/// use middleware_core::{Context, Expiry, TimeoutPhase};
///
/// let cx = Context::new();
/// assert!(cx.record_expiry(Expiry::new(TimeoutPhase::Head).by_client(true)));
/// assert!(!cx.record_expiry(Expiry::new(TimeoutPhase::ResponseStream)), "the first one wins");
///
/// let expiry = cx.clone().expiry().unwrap();
/// assert_eq!(expiry.phase(), TimeoutPhase::Head);
/// assert!(expiry.is_by_client());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Expiry {
    phase: TimeoutPhase,
    by_client: bool,
}

impl Expiry {
    /// The server's deadline expired in `phase`.
    #[must_use]
    pub const fn new(phase: TimeoutPhase) -> Self {
        Self {
            phase,
            by_client: false,
        }
    }

    /// Whether the deadline that expired was the client's own.
    #[must_use]
    pub const fn by_client(mut self, by_client: bool) -> Self {
        self.by_client = by_client;
        self
    }

    /// The phase that ran out of time.
    #[must_use]
    pub const fn phase(self) -> TimeoutPhase {
        self.phase
    }

    /// Whether the deadline that expired was the client's own.
    #[must_use]
    pub const fn is_by_client(self) -> bool {
        self.by_client
    }
}
