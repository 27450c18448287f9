use std::{
    fmt,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::{ErrorType, server::Measure};

pin_project! {
    /// The response body of [`HttpMetrics`](super::HttpMetrics): counts the bytes streamed and
    /// ends the request's measurement at the last frame, at a body error (recorded with
    /// `error.type`; the error is passed on as it is), or when dropped early (a client that
    /// went away, or a panic while polling).
    pub struct MetricsBody<B> {
        #[pin]
        inner: B,
        measure: Option<Measure>,
    }
}

impl<B> MetricsBody<B> {
    pub(crate) const fn new(inner: B, measure: Option<Measure>) -> Self {
        Self { inner, measure }
    }
}

impl<B: Default> Default for MetricsBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B: Body> Body for MetricsBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(measure) = this.measure.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        measure.polling = true;
        let frame = this.inner.as_mut().poll_frame(cx);
        measure.polling = false;
        match &frame {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    measure.body_bytes = measure.body_bytes.saturating_add(data.remaining() as u64);
                }
                if this.inner.is_end_stream() {
                    measure.finish(None);
                    *this.measure = None;
                }
            }
            Poll::Ready(Some(Err(_))) => {
                measure.finish(Some(ErrorType::Other));
                *this.measure = None;
            }
            Poll::Ready(None) => {
                measure.finish(None);
                *this.measure = None;
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: fmt::Debug> fmt::Debug for MetricsBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(MetricsBody))
            .field("inner", &self.inner)
            .field("measure", &self.measure)
            .finish()
    }
}
