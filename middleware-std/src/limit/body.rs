//! [`PermitBody`]: a response body that holds its request's place in the limit.

use std::{
    fmt,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use http_body::{Body, Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;

pin_project_lite::pin_project! {
    /// A response body that holds its request's place in the
    /// [`ConcurrencyLimit`](super::ConcurrencyLimit) until the body ends, fails or is dropped
    /// (a client that goes away mid-stream), whichever comes first; the place is given back
    /// exactly once. A body that is already at its end when the head is ready (`HEAD`, `204`,
    /// `304`, an empty body) gives it back at the head.
    ///
    /// Frames, `size_hint`, `is_end_stream` and `Default` are the wrapped body's.
    ///
    /// See the [module docs](super) for an example.
    pub struct PermitBody<B> {
        #[pin]
        inner: B,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<B> PermitBody<B> {
    pub(crate) const fn new(inner: B, permit: Option<OwnedSemaphorePermit>) -> Self {
        Self { inner, permit }
    }

    /// Whether this body still holds a place in the limit.
    pub const fn holds_permit(&self) -> bool {
        self.permit.is_some()
    }

    /// The wrapped body.
    pub const fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Consumes `self`, returning the wrapped body (and giving the place back).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Default> Default for PermitBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B> fmt::Debug for PermitBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(PermitBody))
            .field("holds_permit", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let done = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
        };
        if done {
            // The permit is released here, once; `take` makes a second release impossible.
            drop(this.permit.take());
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
