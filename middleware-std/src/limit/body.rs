//! [`PermitBody`]: a response body that holds its request's place in the limit.

use std::fmt;

use http_body::Body;
use tokio::sync::OwnedSemaphorePermit;

use crate::body_state::watched::{Watched, Watcher, watched_body};

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
        body: Watched<B, OwnedSemaphorePermit>,
    }
}

/// The place is given back when the body ends (the permit dropped), or with the body.
impl<B: Body> Watcher<B> for OwnedSemaphorePermit {
    fn end(self, _: Result<(), &B::Error>) {}
}

impl<B> PermitBody<B> {
    pub(crate) const fn new(inner: B, permit: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            body: Watched::new(inner, permit),
        }
    }

    /// Whether this body still holds a place in the limit.
    pub const fn holds_permit(&self) -> bool {
        self.body.watcher().is_some()
    }

    /// The wrapped body.
    pub const fn get_ref(&self) -> &B {
        self.body.get_ref()
    }

    /// Consumes `self`, returning the wrapped body (and giving the place back).
    pub fn into_inner(self) -> B {
        self.body.into_inner()
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
            .field("holds_permit", &self.holds_permit())
            .finish_non_exhaustive()
    }
}

watched_body!(impl[B] PermitBody<B>, OwnedSemaphorePermit);

#[cfg(test)]
mod tests {
    use std::task::{Context as TaskContext, Poll, Waker};

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
