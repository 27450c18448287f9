//! `error.type` by the HTTP semantic conventions: one vocabulary for the access span
//! (`logging`, `otel`), the client span (`otel`) and the server and client metrics (`metrics`),
//! so that one request or call carries the same value on every signal.

use std::fmt;

use crate::Context;

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
            Self::Cancelled => "cancelled",
            Self::Disconnected => "disconnected",
        })
    }

    /// An outbound call dropped before its response head: `timeout` when the call's context
    /// was cancelled with its deadline (or the deadline passed), else `cancelled`.
    pub(crate) fn call_dropped(cx: Option<&Context>) -> Self {
        let timed_out = cx.is_some_and(|cx| {
            cx.cause() == Some(crate::CancelCause::Deadline)
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
