//! `error.type` by the HTTP semantic conventions: one vocabulary for the access span
//! (`logging`, `otel`), the client span (`otel`) and the server and client metrics (`metrics`),
//! so that one request or call carries the same value on every signal.

use std::fmt;

use http::StatusCode;

use crate::{CancelCause, Context, Expiry};

/// The `error.type` of a failed request or call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorType {
    /// The status code of a failed response (a 5xx on the server, a 4xx or 5xx for a call).
    Status(u16),
    /// An error of the inner service or of a body: the conventions' `_OTHER`.
    Other,
    /// A panic in the inner service, its future or a body.
    Panic,
    /// The server's deadline (or the call's) passed.
    Timeout,
    /// The deadline that expired was the client's own (a timeout layer said so).
    ClientDeadline,
    /// A call given up (or a request cancelled explicitly) before its end.
    Cancelled,
    /// A request whose response future or body was dropped before the end with no other
    /// cause: the client went away.
    Disconnected,
}

impl ErrorType {
    /// The value, when it is not a status code.
    pub(crate) const fn as_static(self) -> Option<&'static str> {
        Some(match self {
            Self::Status(_) => return None,
            Self::Other => "_OTHER",
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::ClientDeadline => "client_deadline",
            Self::Cancelled => "cancelled",
            Self::Disconnected => "disconnected",
        })
    }

    /// A server request whose response future or body was dropped before the end: a panic
    /// when it unwound (`panicking`), else by its context's cancel cause.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))] // the access record has its own
    pub(crate) const fn dropped(panicking: bool, cause: Option<CancelCause>) -> Self {
        if panicking {
            return Self::Panic;
        }
        match cause {
            Some(CancelCause::Deadline) => Self::Timeout,
            Some(CancelCause::Explicit) => Self::Cancelled,
            Some(CancelCause::Panicked) => Self::Panic,
            _ => Self::Disconnected,
        }
    }

    /// A server request's `error` (`None`: it completed), refined by the expiry a timeout
    /// layer reported: a client's own deadline, else the server's. A body error is the timeout
    /// layer's own when it reported an expiry (a response body cut by its deadline).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))] // the access record has its own
    pub(crate) fn with_expiry(error: Option<Self>, expiry: Option<Expiry>) -> Option<Self> {
        match (error, expiry) {
            (None | Some(Self::Timeout | Self::Disconnected | Self::Other), Some(expiry))
                if expiry.is_by_client() =>
            {
                Some(Self::ClientDeadline)
            }
            (None | Some(Self::Disconnected | Self::Other), Some(_)) => Some(Self::Timeout),
            (error, _) => error,
        }
    }

    /// A completed server request's: the status of a 5xx response.
    pub(crate) fn server_status(status: Option<StatusCode>) -> Option<Self> {
        status
            .filter(StatusCode::is_server_error)
            .map(|status| Self::Status(status.as_u16()))
    }

    /// An outbound call dropped before its response head: `timeout` when the call's context
    /// was cancelled with its deadline (or the deadline passed), else `cancelled`.
    #[cfg_attr(
        not(any(feature = "otel", feature = "metrics")),
        allow(dead_code) // the client layers' only
    )]
    pub(crate) fn call_dropped(cx: Option<&Context>) -> Self {
        let timed_out = cx.is_some_and(|cx| {
            cx.cause() == Some(CancelCause::Deadline)
                || (cx.cause().is_none() && cx.remaining() == Some(std::time::Duration::ZERO))
        });
        if timed_out {
            Self::Timeout
        } else {
            Self::Cancelled
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_static() {
            Some(value) => f.write_str(value),
            None => match self {
                Self::Status(status) => write!(f, "{status}"),
                _ => Ok(()),
            },
        }
    }
}
