//! The response body wrapper that notes the end of the body.

use std::{
    fmt,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::body_state::{Failed, Polled};

use super::{Call, OnTimings, Timings};

pin_project! {
    /// A response body that passes every frame through unchanged and finishes its call's
    /// [`Timings`] at its end, on an error, or when dropped.
    ///
    /// See the [module docs](super) for an example.
    pub struct TimedBody<B, H = ()>
    where
        H: OnTimings,
    {
        #[pin]
        inner: B,
        pending: Option<Pending<H>>,
        failed: Failed,
    }
}

/// A call whose body has not ended yet.
pub(crate) struct Pending<H: OnTimings>(Option<(Call<H>, Timings)>);

impl<H: OnTimings> Drop for Pending<H> {
    fn drop(&mut self) {
        if let Some((call, timings)) = self.0.take() {
            call.finish(timings, false);
        }
    }
}

impl<B, H: OnTimings> TimedBody<B, H> {
    pub(crate) fn new(inner: B, pending: Option<(Call<H>, Timings)>) -> Self {
        Self {
            inner,
            pending: pending.map(|p| Pending(Some(p))),
            failed: Failed::new(),
        }
    }
}

impl<B: Default, H: OnTimings> Default for TimedBody<B, H> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B, H: OnTimings> fmt::Debug for TimedBody<B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(TimedBody))
            .field("timing", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body, H: OnTimings> Body for TimedBody<B, H> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = match ready!(this.failed.poll_frame(this.inner.as_mut(), cx)) {
            Polled::Fresh(frame) => frame,
            Polled::AfterError(frame) => return Poll::Ready(Some(frame)),
        };
        let end = match &frame {
            None => Some(true),
            Some(Err(_)) => Some(false),
            Some(Ok(frame)) => (frame.is_trailers() || this.inner.is_end_stream()).then_some(true),
        };
        if let Some(completed) = end {
            if let Some((call, timings)) = this.pending.take().and_then(|mut p| p.0.take()) {
                call.finish(timings, completed);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
