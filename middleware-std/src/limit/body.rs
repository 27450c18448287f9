//! [`PermitBody`]: a response body that holds its request's place in the limit.

use std::{
    fmt,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use http_body::{Body, Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;

use crate::body_state::Failed;

pin_project_lite::pin_project! {
    /// A response body that holds its request's place in the
    /// [`ConcurrencyLimit`](super::ConcurrencyLimit) until the body ends, fails or is dropped
    /// (a client that goes away mid-stream), whichever comes first; the place is given back
    /// exactly once. A body that is already at its end when the head is ready (`HEAD`, `204`,
    /// `304`, an empty body) gives it back at the head.
    ///
    /// Frames, `size_hint`, `is_end_stream` and `Default` are the wrapped body's, until it fails:
    /// after an error it never ends cleanly (a clean end becomes pending, `is_end_stream` is
    /// `false`, the size unknown).
    ///
    /// See the [module docs](super) for an example.
    pub struct PermitBody<B> {
        #[pin]
        inner: B,
        permit: Option<OwnedSemaphorePermit>,
        failed: Failed,
    }
}

impl<B> PermitBody<B> {
    pub(crate) const fn new(inner: B, permit: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            inner,
            permit,
            failed: Failed::new(),
        }
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
        // After an error, never a clean end: a cut body must not look complete.
        let frame = ready!(this.failed.poll_through(this.inner.as_mut(), cx));
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
        self.failed.is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        if self.failed.get() {
            return SizeHint::new();
        }
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::test_helpers::ErrorsOnce;

    #[test]
    fn a_body_that_failed_never_ends_cleanly_afterwards() {
        let mut body = std::pin::pin!(PermitBody::new(ErrorsOnce::new(), None));
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Err("reset")))
        ));
        // The inner body now says it ended; the wrapper must not.
        assert!(body.as_mut().poll_frame(&mut cx).is_pending());
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), None);
    }
}
