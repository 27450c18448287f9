//! The request id: a validated header value, set once per request.

use std::fmt;

use http::HeaderValue;

#[allow(unused_imports)] // intra-doc links
use super::Context;

/// A request id: a non-empty header value of visible ASCII, cheap to clone.
///
/// The slot on the [`Context`] is set once ([`Context::set_request_id`]); generating and
/// validating ids from untrusted headers is the job of a request-id layer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Wraps a header value.
    ///
    /// # Errors
    ///
    /// Fails when the value is empty or holds anything but visible ASCII (`0x21..=0x7e`), so an
    /// id can always be logged and echoed in a header without escaping.
    pub fn new(value: HeaderValue) -> Result<Self, InvalidRequestId> {
        let bytes = value.as_bytes();
        // Every byte is looked at, without an early exit: one subtraction and one comparison
        // each, which the compiler turns into vector instructions (ids are short and nearly
        // always valid: a generated UUID is checked here on every request).
        let visible = bytes.iter().fold(true, |visible, &b| {
            visible & (b.wrapping_sub(0x21) <= 0x7e - 0x21)
        });
        if bytes.is_empty() || !visible {
            return Err(InvalidRequestId(()));
        }
        Ok(Self(value))
    }

    /// The id as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Checked in `new`: visible ASCII is valid UTF-8.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value, ready to be echoed in a response.
    #[must_use]
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl TryFrom<&str> for RequestId {
    type Error = InvalidRequestId;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        HeaderValue::from_str(value)
            .map_err(|_| InvalidRequestId(()))
            .and_then(Self::new)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(stringify!(RequestId))
            .field(&self.as_str())
            .finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a value is not a valid [`RequestId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequestId(());

impl fmt::Display for InvalidRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request id must be non-empty visible ascii")
    }
}

impl std::error::Error for InvalidRequestId {}
