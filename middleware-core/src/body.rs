//! [`ResponseBody`], the body type users see on responses that pass through a middleware, and
//! [`BodyFailedError`], the error of a body wrapper polled again after its body failed.
//!
//! A middleware that short-circuits (an auth failure, a timeout) must produce a response
//! whatever the inner service's body type is, and must not buffer a streaming inner body to do
//! so. `ResponseBody<B>` is therefore an either-body: the inner body `B`, streamed through
//! untouched, or a fixed `Bytes` body written by a middleware.
//!
//! Every middleware of one chain shares the same `ResponseBody<B>` (no nesting), and a stack of
//! separate layers nests one level per layer, as tower-http's bodies do.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pin_project_lite::pin_project! {
    /// A response body: the inner service's body or a fixed body written by a middleware.
    ///
    /// See the [module docs](self).
    ///
    /// ```
    /// use http_body::Body;
    /// use middleware_core::ResponseBody;
    ///
    /// let body: ResponseBody<String> = ResponseBody::full("denied");
    /// assert_eq!(body.size_hint().exact(), Some(6));
    /// let body = ResponseBody::new(String::from("from the handler"));
    /// assert!(!body.is_end_stream());
    /// ```
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body; it streams through unchanged.
    pub const fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A fixed body written by a middleware.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// An empty body.
    #[must_use]
    pub const fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }

    /// Turns a fixed-body response (a short-circuit, a rendered error) into a response of this
    /// body type.
    #[must_use]
    pub fn response(response: http::Response<Bytes>) -> http::Response<Self> {
        response.map(Self::full)
    }

    /// The inner body, unless this is a fixed body.
    pub fn into_inner(self) -> Option<B> {
        match self.kind {
            Kind::Inner { body } => Some(body),
            Kind::Full { .. } => None,
        }
    }

    /// The inner body, unless this is a fixed body.
    pub const fn get_ref(&self) -> Option<&B> {
        match &self.kind {
            Kind::Inner { body } => Some(body),
            Kind::Full { .. } => None,
        }
    }
}

impl<B> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<B> From<Bytes> for ResponseBody<B> {
    fn from(data: Bytes) -> Self {
        Self::full(data)
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f
                .debug_tuple(concat!(stringify!(ResponseBody), "::", stringify!(Inner)))
                .field(&"..")
                .finish(),
            Kind::Full { data } => f
                .debug_struct(concat!(stringify!(ResponseBody), "::", stringify!(Full)))
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// The error a body wrapper yields when it is polled again after its body failed.
///
/// A wrapper does not poll a failed body again, and cannot clone the body's error; it answers
/// every later poll with this error instead, so a cut body never ends cleanly (a consumer that
/// polls once more cannot take it for a complete one).
///
/// ```
/// use middleware_core::body::BodyFailedError;
///
/// let err = BodyFailedError::new();
/// assert_eq!(err.to_string(), "body polled again after it failed");
/// assert_eq!(format!("{err:?}"), "BodyFailedError");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyFailedError(());

impl BodyFailedError {
    /// The error.
    #[must_use]
    pub const fn new() -> Self {
        Self(())
    }
}

impl fmt::Debug for BodyFailedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(stringify!(BodyFailedError))
    }
}

impl fmt::Display for BodyFailedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("body polled again after it failed")
    }
}

impl std::error::Error for BodyFailedError {}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_body_yields_its_bytes_once() {
        let body: ResponseBody<String> = ResponseBody::full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
    }

    #[tokio::test]
    async fn inner_body_streams_through() {
        let body = ResponseBody::new(String::from("inner"));
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"inner");
    }

    #[test]
    fn empty_body_is_at_end() {
        let body: ResponseBody<String> = ResponseBody::full("");
        assert!(body.is_end_stream());
        assert!(ResponseBody::<String>::empty().is_end_stream());
        assert_eq!(format!("{body:?}"), "ResponseBody::Full { len: 0 }");
    }
}
