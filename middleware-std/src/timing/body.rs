use std::{
    fmt,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
    time::Duration,
};

use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use middleware_core::Context;

use super::{BodyEnd, OnBodyEnd, StreamEnd};

/// The hook and what it will be told, until the body ends. Reports `Dropped` when dropped
/// unreported.
pub(crate) struct Pending<H: OnBodyEnd> {
    pub(crate) hook: Option<H>,
    pub(crate) cx: Context,
    pub(crate) start: Duration,
    pub(crate) headers: Duration,
    pub(crate) status: StatusCode,
}

impl<H: OnBodyEnd> Pending<H> {
    fn report(&mut self, stream: StreamEnd) {
        if let Some(hook) = self.hook.take() {
            hook.on_body_end(BodyEnd {
                status: self.status,
                headers: self.headers,
                duration: self.cx.elapsed().saturating_sub(self.start),
                stream,
            });
        }
    }
}

impl<H: OnBodyEnd> Drop for Pending<H> {
    fn drop(&mut self) {
        self.report(StreamEnd::Dropped);
    }
}

pin_project_lite::pin_project! {
    /// The response body of [`ServerTiming`](super::ServerTiming): streams the inner body
    /// through unchanged and calls the [`OnBodyEnd`] hook once, when it ends.
    ///
    /// The end is the first of: the inner body returns `None` or an error, yields trailers, or
    /// reports [`Body::is_end_stream`] after a frame (servers stop polling then); otherwise
    /// the drop of this body, reported as [`StreamEnd::Dropped`].
    pub struct ResponseBody<B, H: OnBodyEnd> {
        #[pin]
        inner: B,
        // Boxed: only a hook that wants the end (`OnBodyEnd::ENABLED`) pays for it.
        pending: Option<Box<Pending<H>>>,
    }
}

impl<B: Body, H: OnBodyEnd> ResponseBody<B, H> {
    #[inline]
    pub(crate) fn new(inner: B, mut pending: Option<Box<Pending<H>>>) -> Self {
        if inner.is_end_stream() {
            // Nothing to stream: a server will not poll it.
            end(&mut pending, StreamEnd::Complete);
        }
        Self { inner, pending }
    }
}

impl<B, H: OnBodyEnd> ResponseBody<B, H> {
    /// The inner body.
    pub const fn get_ref(&self) -> &B {
        &self.inner
    }
}

fn end<H: OnBodyEnd>(pending: &mut Option<Box<Pending<H>>>, stream: StreamEnd) {
    if let Some(mut pending) = pending.take() {
        pending.report(stream);
    }
}

impl<B, H: OnBodyEnd> fmt::Debug for ResponseBody<B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseBody))
            .field("inner", &"...")
            .field("ended", &self.pending.is_none())
            .finish()
    }
}

impl<B: Body, H: OnBodyEnd> Body for ResponseBody<B, H> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            None => end(this.pending, StreamEnd::Complete),
            Some(Err(_)) => end(this.pending, StreamEnd::Error),
            Some(Ok(frame)) => {
                if frame.is_trailers() || this.inner.is_end_stream() {
                    end(this.pending, StreamEnd::Complete);
                }
            }
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
