//! [`LimitedBody`]: a request body cut at a byte limit while it streams.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context as TaskContext, Poll, ready},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use middleware_core::{BoxError, body::BodyFailedError};

use super::error::LengthLimitError;

pin_project_lite::pin_project! {
    /// A request body that lets at most `limit` data bytes through, frame by frame, without
    /// buffering.
    ///
    /// The frame that would pass the limit is dropped (never handed on in part) and the read
    /// fails with a [`LengthLimitError`] instead; every later read fails the same way, so a
    /// cut body never looks complete. A body of exactly `limit` bytes passes. Errors of the
    /// wrapped body pass through, boxed, and every later read fails with a
    /// [`BodyFailedError`]. Trailers are not counted.
    ///
    /// `size_hint` is the wrapped body's (unknown once cut or failed). `Default` is an empty wrapped body with a limit of
    /// `0` (an empty body passes any limit).
    ///
    /// See the [module docs](super) for an example.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        remaining: u64,
        limit: u64,
        exceeded: bool,
        // The wrapped body failed: every later read fails too.
        failed: bool,
        // Raised when the limit is passed; the layer's future reads it before the head.
        signal: Option<Arc<AtomicBool>>,
    }
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`, letting at most `limit` data bytes through.
    pub const fn new(inner: B, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            exceeded: false,
            failed: false,
            signal: None,
        }
    }

    pub(crate) fn with_signal(inner: B, limit: u64, signal: Option<Arc<AtomicBool>>) -> Self {
        Self {
            signal,
            ..Self::new(inner, limit)
        }
    }

    /// The limit, in bytes.
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the body passed its limit (its reads now fail with [`LengthLimitError`]).
    pub const fn is_exceeded(&self) -> bool {
        self.exceeded
    }

    /// The wrapped body.
    pub const fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The wrapped body, mutably.
    pub const fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Consumes `self`, returning the wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Default> Default for LimitedBody<B> {
    fn default() -> Self {
        Self::new(B::default(), 0)
    }
}

impl<B> std::fmt::Debug for LimitedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(stringify!(LimitedBody))
            .field("limit", &self.limit)
            .field("remaining", &self.remaining)
            .field("exceeded", &self.exceeded)
            .finish_non_exhaustive()
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.exceeded {
            return Poll::Ready(Some(Err(LengthLimitError::new(*this.limit).into())));
        }
        if *this.failed {
            // The wrapped error cannot be repeated; a clean end would make a cut body look
            // complete.
            return Poll::Ready(Some(Err(BodyFailedError::new().into())));
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    // `usize` fits in `u64` on every supported target.
                    let len = data.remaining() as u64;
                    if len > *this.remaining {
                        *this.exceeded = true;
                        *this.remaining = 0;
                        if let Some(signal) = this.signal {
                            signal.store(true, Ordering::Release);
                        }
                        return Poll::Ready(Some(Err(LengthLimitError::new(*this.limit).into())));
                    }
                    *this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => {
                *this.failed = true;
                Poll::Ready(Some(Err(err.into())))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.exceeded && !self.failed && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.exceeded || self.failed {
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
        let mut body = std::pin::pin!(LimitedBody::new(ErrorsOnce::new(), 1024));
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        let Poll::Ready(Some(Err(err))) = body.as_mut().poll_frame(&mut cx) else {
            panic!("the inner error passes through");
        };
        assert_eq!(err.to_string(), "reset");
        for _ in 0..2 {
            let Poll::Ready(Some(Err(err))) = body.as_mut().poll_frame(&mut cx) else {
                panic!("a failed body ended cleanly");
            };
            assert!(err.is::<BodyFailedError>(), "{err}");
        }
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), None);
    }
}
