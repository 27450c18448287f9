use std::{
    fmt,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
    time::Duration,
};

use bytes::Buf;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use middleware_core::{BoxError, Context, body::BodyFailedError};

use crate::body_state::Failed;

use super::{BodyEnd, OnBodyEnd, StreamEnd};

/// The hook and what it will be told, until the body ends. Reports `Dropped` when dropped
/// unreported.
pub(crate) struct Pending<H: OnBodyEnd> {
    pub(crate) hook: Option<H>,
    pub(crate) cx: Context,
    pub(crate) start: Duration,
    pub(crate) headers: Duration,
    pub(crate) status: StatusCode,
    /// The response's declared length has streamed: dropped now, it was complete.
    pub(crate) sent: bool,
}

impl<H: OnBodyEnd> Pending<H> {
    pub(crate) fn report(&mut self, stream: StreamEnd) {
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
        // Dropped after its declared length streamed: a server stops polling there.
        self.report(if self.sent {
            StreamEnd::Complete
        } else {
            StreamEnd::Dropped
        });
    }
}

pin_project_lite::pin_project! {
    /// The response body of [`ServerTiming`](super::ServerTiming): streams the inner body
    /// through unchanged and calls the [`OnBodyEnd`] hook once, when it ends.
    ///
    /// The end is the first of: the response has no body on the wire (a response to `HEAD`,
    /// `1xx`, `204`, `304`: reported at the head, as [`StreamEnd::Complete`], since servers
    /// drop such a body unpolled), the inner body returns `None` or an error, yields trailers,
    /// or reports [`Body::is_end_stream`] after a frame (servers stop polling then); otherwise
    /// the drop of this body, reported as [`StreamEnd::Dropped`], or as
    /// [`StreamEnd::Complete`] once the response's exact size or `Content-Length` has streamed
    /// (hyper's HTTP/1 server drops the body unpolled there).
    ///
    /// After an error of the inner body, the inner body is not polled again and every later
    /// poll yields a [`BodyFailedError`]: a cut body never ends cleanly. `size_hint`,
    /// `is_end_stream` and `Default` pass through while the body streams.
    pub struct TimingBody<B, H: OnBodyEnd> {
        #[pin]
        inner: B,
        // Boxed: only a hook that wants the end (`OnBodyEnd::ENABLED`) pays for it.
        pending: Option<Box<Pending<H>>>,
        // The bytes still to stream before the declared length is reached, if one was declared.
        left: Option<u64>,
        failed: Failed,
    }
}

impl<B: Body, H: OnBodyEnd> TimingBody<B, H> {
    #[inline]
    pub(crate) fn new(inner: B, mut pending: Option<Box<Pending<H>>>, length: Option<u64>) -> Self {
        if inner.is_end_stream() {
            // Nothing to stream: a server will not poll it.
            end(&mut pending, StreamEnd::Complete);
        }
        Self {
            inner,
            pending,
            left: length,
            failed: Failed::new(),
        }
    }
}

impl<B, H: OnBodyEnd> TimingBody<B, H> {
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

impl<B, H: OnBodyEnd> fmt::Debug for TimingBody<B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(TimingBody))
            .field("inner", &"...")
            .field("ended", &self.pending.is_none())
            .field("left", &self.left)
            .field("failed", &self.failed.get())
            .finish()
    }
}

/// An empty inner body (`B::default()`), with nothing to report.
impl<B: Default, H: OnBodyEnd> Default for TimingBody<B, H> {
    fn default() -> Self {
        Self {
            inner: B::default(),
            pending: None,
            left: None,
            failed: Failed::new(),
        }
    }
}

impl<B, H> Body for TimingBody<B, H>
where
    B: Body,
    B::Error: Into<BoxError>,
    H: OnBodyEnd,
{
    type Data = B::Data;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if this.failed.get() {
            // A failed body stays failed: never a clean end after an error.
            return Poll::Ready(Some(Err(Box::new(BodyFailedError::new()))));
        }
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            None => end(this.pending, StreamEnd::Complete),
            Some(Err(_)) => {
                this.failed.set();
                end(this.pending, StreamEnd::Error);
            }
            Some(Ok(frame)) => {
                if let (Some(left), Some(data)) = (this.left.as_mut(), frame.data_ref()) {
                    *left = left.saturating_sub(data.remaining() as u64);
                    if *left == 0 {
                        *this.left = None;
                        if let Some(pending) = this.pending.as_mut() {
                            pending.sent = true;
                        }
                    }
                }
                if frame.is_trailers() || this.inner.is_end_stream() {
                    end(this.pending, StreamEnd::Complete);
                }
            }
        }
        Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
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
