//! [`CatchPanicBody`] and [`PanicError`].

use std::{
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use middleware_core::{BoxError, CancelCause, Context, ResponseBody};

use super::panic::{Panic, PanicSite};
use crate::body_state::Cut;

pin_project_lite::pin_project! {
    /// The response body of [`CatchPanic`](super::CatchPanic): the inner body (or the panic
    /// response's fixed body) with every `poll_frame` inside `catch_unwind`.
    ///
    /// The head is already sent when the body streams, so a panic cannot become a `500`:
    /// the body yields a [`PanicError`], and again on every later poll (never a clean end,
    /// so a consumer that polls once more cannot take the cut body for a complete one). hyper
    /// answers a body error by closing the connection (HTTP/1.1) or resetting the stream
    /// (HTTP/2), so the client sees a truncated response, never a hang. The panic is logged
    /// once, like the others.
    ///
    /// An error of the inner body passes through; the inner body is not polled again after
    /// it, and every later poll yields a [`BodyFailedError`]. `size_hint`, `is_end_stream` and
    /// `Default` pass through while the body streams.
    pub struct CatchPanicBody<B> {
        #[pin]
        inner: ResponseBody<B>,
        cx: Option<Context>,
        state: State,
    }
}

/// Where the body stands: streaming, or cut by a panic or by the wrapped body's error.
type State = Cut<PanicError>;

impl<B> CatchPanicBody<B> {
    #[inline]
    pub(crate) const fn new(inner: ResponseBody<B>, cx: Option<Context>) -> Self {
        Self {
            inner,
            cx,
            state: State::Streaming,
        }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> ResponseBody<B> {
        self.inner
    }
}

impl<B> Body for CatchPanicBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // A failed body stays failed: never a clean end after an error.
        if let Some(err) = this.state.repeat() {
            return Poll::Ready(Some(Err(err)));
        }
        match catch_unwind(AssertUnwindSafe(|| this.inner.poll_frame(cx))) {
            Ok(Poll::Ready(Some(Err(err)))) => {
                *this.state = State::Failed;
                Poll::Ready(Some(Err(err.into())))
            }
            Ok(Poll::Ready(Some(Ok(frame)))) => Poll::Ready(Some(Ok(frame))),
            Ok(Poll::Ready(None)) => Poll::Ready(None),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                *this.state = State::By(PanicError(()));
                if let Some(context) = this.cx.as_ref() {
                    context.cancel_with(CancelCause::Panicked);
                }
                Panic::new(payload, PanicSite::ResponseBody).log(this.cx.as_ref());
                Poll::Ready(Some(Err(Box::new(PanicError(())))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A failed body is not at a clean end: its next poll yields the error again. A panic
        // here is reported by the next `poll_frame`, which panics again or answers.
        self.state.is_end_stream(|| {
            catch_unwind(AssertUnwindSafe(|| self.inner.is_end_stream())).unwrap_or(false)
        })
    }

    fn size_hint(&self) -> SizeHint {
        self.state.size_hint(|| {
            catch_unwind(AssertUnwindSafe(|| self.inner.size_hint())).unwrap_or_default()
        })
    }
}

/// An empty body, as [`ResponseBody`]'s `Default`.
impl<B> Default for CatchPanicBody<B> {
    fn default() -> Self {
        Self::new(ResponseBody::default(), None)
    }
}

impl<B> fmt::Debug for CatchPanicBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(CatchPanicBody))
            .field("inner", &self.inner)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The error a [`CatchPanicBody`] ends with when the inner body panicked. It carries nothing of
/// the payload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PanicError(pub(crate) ());

impl fmt::Debug for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(stringify!(PanicError))
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body panicked")
    }
}

impl std::error::Error for PanicError {}
