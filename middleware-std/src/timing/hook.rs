//! [`OnBodyEnd`]: the end-of-stream callback (a metrics histogram hook).

use std::time::Duration;

use http::StatusCode;

/// Called once per response, when its body ends (or is dropped): the place to feed a latency
/// histogram with the full duration, body streaming included.
///
/// Implemented for `()` (do nothing, the default) and for closures `FnOnce(BodyEnd)` that are
/// `Clone` (the layer clones the hook into each response body, so capture an `Arc`, not a
/// large value). See the [module docs](super) for an example.
pub trait OnBodyEnd {
    /// Whether this hook wants to be told at all. `false` (only `()` says so) lets the
    /// response body skip tracking its end: it then carries nothing extra. When `true`, each
    /// response body keeps what the hook will be told behind one allocation.
    const ENABLED: bool = true;

    /// Reports the end of one response body.
    fn on_body_end(self, end: BodyEnd);
}

impl OnBodyEnd for () {
    const ENABLED: bool = false;

    fn on_body_end(self, _: BodyEnd) {}
}

impl<F> OnBodyEnd for F
where
    F: FnOnce(BodyEnd),
{
    fn on_body_end(self, end: BodyEnd) {
        self(end);
    }
}

/// What [`OnBodyEnd`] is told about one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BodyEnd {
    /// The response status.
    pub status: StatusCode,
    /// Time from the layer's `call` to the response headers (the `total` of `Server-Timing`).
    pub headers: Duration,
    /// Time from the layer's `call` to the end of the body.
    pub duration: Duration,
    /// How the body ended.
    pub stream: StreamEnd,
}

/// How a response body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamEnd {
    /// The body was read to its end.
    Complete,
    /// The body yielded an error.
    Error,
    /// The body was dropped before its end: the client went away, or a poll panicked.
    Dropped,
}

impl StreamEnd {
    /// A short lowercase name for metrics labels: `complete`, `error`, `dropped`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Error => "error",
            Self::Dropped => "dropped",
        }
    }
}
