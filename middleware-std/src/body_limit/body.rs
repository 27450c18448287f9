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
use middleware_core::BoxError;

use super::error::LengthLimitError;

pin_project_lite::pin_project! {
    /// A request body that lets at most `limit` data bytes through, frame by frame, without
    /// buffering.
    ///
    /// The frame that would pass the limit is dropped (never handed on in part) and the read
    /// fails with a [`LengthLimitError`] instead; every later read fails the same way, so a
    /// cut body never looks complete. A body of exactly `limit` bytes passes. Errors of the
    /// wrapped body pass through, boxed. Trailers are not counted.
    ///
    /// `size_hint` is the wrapped body's. `Default` is an empty wrapped body with a limit of
    /// `0` (an empty body passes any limit).
    ///
    /// See the [module docs](super) for an example.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        remaining: u64,
        limit: u64,
        exceeded: bool,
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
            Some(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.exceeded && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
