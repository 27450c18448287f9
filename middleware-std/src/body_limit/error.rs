//! [`LengthLimitError`]: what a cut request body ends with.

use std::fmt;

/// The error a [`LimitedBody`](super::LimitedBody) yields once the request body passes the
/// layer's limit; every later read yields it again (a cut body never ends cleanly).
///
/// Body errors are [`BoxError`](crate::BoxError)s; find this one with `downcast_ref`:
///
/// ```
/// use middleware_std::{BoxError, body_limit::LengthLimitError};
///
/// fn is_too_large(err: &BoxError) -> bool {
///     err.downcast_ref::<LengthLimitError>().is_some()
/// }
/// # let _ = is_too_large;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthLimitError {
    limit: u64,
}

impl LengthLimitError {
    pub(crate) const fn new(limit: u64) -> Self {
        Self { limit }
    }

    /// The limit the body passed, in bytes.
    #[must_use]
    pub const fn limit(&self) -> u64 {
        self.limit
    }
}

impl fmt::Display for LengthLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request body exceeded its limit of {} bytes", self.limit)
    }
}

impl std::error::Error for LengthLimitError {}
