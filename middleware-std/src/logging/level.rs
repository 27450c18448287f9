//! How a request ended, and the level its access event is logged at.

use std::fmt;

use http::StatusCode;
use tracing::Level;

/// How a request ended, as the access event's `outcome` field says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// A response was produced and its body read to the end (whatever the status).
    Completed,
    /// The inner service or the response body returned an error.
    Error,
    /// The inner service panicked: in `call`, in its future, or while the body streamed.
    Panicked,
    /// The server's deadline for the request passed: the future was dropped after its context
    /// was cancelled with cause `deadline`, the response arrived after the deadline (an inner
    /// timeout layer's answer), or a timeout layer reported an expiry that was not the
    /// client's ([`ClientDeadline`](Self::ClientDeadline) is).
    TimedOut,
    /// The request was dropped after its context was cancelled explicitly.
    Cancelled,
    /// The response future or body was dropped before the end with no other cause: the client
    /// went away (or an outer layer gave up without cancelling the context).
    Disconnected,
    /// The deadline that expired was the client's own (an inbound `grpc-timeout`, say), as the
    /// timeout layer reported it with
    /// [`Context::record_expiry`](crate::Context::record_expiry): the client asked for less
    /// time than the work takes, which is not a server failure, whatever the status (a 503
    /// included).
    ClientDeadline,
}

impl RequestOutcome {
    /// The field value: `completed`, `error`, `panic`, `timeout`, `cancelled`, `disconnected`,
    /// `client_deadline`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Panicked => "panic",
            Self::TimedOut => "timeout",
            Self::Cancelled => "cancelled",
            Self::Disconnected => "disconnected",
            Self::ClientDeadline => "client_deadline",
        }
    }
}

impl fmt::Display for RequestOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Chooses the level of a request's access event.
///
/// Implemented for [`DefaultLevel`] and for closures
/// `Fn(RequestOutcome, Option<StatusCode>) -> Level` (the status is `None` when no response was
/// produced).
pub trait MakeLevel {
    /// The level for a request that ended with `outcome` and, if a response was produced,
    /// `status`.
    fn make_level(&self, outcome: RequestOutcome, status: Option<StatusCode>) -> Level;
}

impl<F> MakeLevel for F
where
    F: Fn(RequestOutcome, Option<StatusCode>) -> Level,
{
    fn make_level(&self, outcome: RequestOutcome, status: Option<StatusCode>) -> Level {
        self(outcome, status)
    }
}

/// The default levels: server errors (a 5xx, an error, a panic, a timeout) at `ERROR`, client
/// errors (a 4xx) and expired client deadlines ([`RequestOutcome::ClientDeadline`], whatever
/// the status) at `WARN`, everything else (successes, disconnects, cancellations) at `INFO`.
/// Each is configurable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultLevel {
    server_error: Level,
    client_error: Level,
    client_deadline: Level,
    other: Level,
}

impl DefaultLevel {
    /// `ERROR` / `WARN` (4xx and client deadlines) / `INFO`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            server_error: Level::ERROR,
            client_error: Level::WARN,
            client_deadline: Level::WARN,
            other: Level::INFO,
        }
    }

    /// The level for 5xx responses, errors, panics and timeouts.
    #[must_use]
    pub const fn server_error(mut self, level: Level) -> Self {
        self.server_error = level;
        self
    }

    /// The level for 4xx responses.
    #[must_use]
    pub const fn client_error(mut self, level: Level) -> Self {
        self.client_error = level;
        self
    }

    /// The level for requests whose client's own deadline expired
    /// ([`RequestOutcome::ClientDeadline`]), whatever the status.
    #[must_use]
    pub const fn client_deadline(mut self, level: Level) -> Self {
        self.client_deadline = level;
        self
    }

    /// The level for everything else.
    #[must_use]
    pub const fn other(mut self, level: Level) -> Self {
        self.other = level;
        self
    }
}

impl Default for DefaultLevel {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeLevel for DefaultLevel {
    fn make_level(&self, outcome: RequestOutcome, status: Option<StatusCode>) -> Level {
        match outcome {
            RequestOutcome::ClientDeadline => self.client_deadline,
            RequestOutcome::Error | RequestOutcome::Panicked | RequestOutcome::TimedOut => {
                self.server_error
            }
            _ => match status {
                Some(s) if s.is_server_error() => self.server_error,
                Some(s) if s.is_client_error() => self.client_error,
                _ => self.other,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_levels_follow_the_outcome_and_status() {
        let level = DefaultLevel::new();
        let table = [
            (RequestOutcome::Completed, Some(200), Level::INFO),
            (RequestOutcome::Completed, Some(304), Level::INFO),
            (RequestOutcome::Completed, Some(404), Level::WARN),
            (RequestOutcome::Completed, Some(503), Level::ERROR),
            (RequestOutcome::TimedOut, Some(503), Level::ERROR),
            (RequestOutcome::TimedOut, None, Level::ERROR),
            (RequestOutcome::Error, None, Level::ERROR),
            (RequestOutcome::Panicked, None, Level::ERROR),
            (RequestOutcome::Disconnected, Some(200), Level::INFO),
            (RequestOutcome::Disconnected, Some(500), Level::ERROR),
            (RequestOutcome::Cancelled, None, Level::INFO),
            (RequestOutcome::ClientDeadline, Some(503), Level::WARN),
            (RequestOutcome::ClientDeadline, None, Level::WARN),
        ];
        for (outcome, status, expected) in table {
            let status = status.map(|s| StatusCode::from_u16(s).unwrap());
            assert_eq!(
                level.make_level(outcome, status),
                expected,
                "{outcome} {status:?}"
            );
        }
        assert_eq!(
            level.client_deadline(Level::DEBUG).make_level(
                RequestOutcome::ClientDeadline,
                Some(StatusCode::SERVICE_UNAVAILABLE)
            ),
            Level::DEBUG
        );
        let quiet = level.client_error(Level::DEBUG).other(Level::TRACE);
        assert_eq!(
            quiet.make_level(RequestOutcome::Completed, Some(StatusCode::NOT_FOUND)),
            Level::DEBUG
        );
        assert_eq!(
            quiet.make_level(RequestOutcome::Completed, Some(StatusCode::OK)),
            Level::TRACE
        );
    }
}
