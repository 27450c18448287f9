use std::{
    fmt,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use http_body::{Body, Frame, SizeHint};

use crate::body_state::Failed;

use super::{MakeLevel, RequestOutcome, access::Access};

pin_project_lite::pin_project! {
    /// The response body of [`Log`](super::Log): streams the inner body through unchanged and
    /// emits the access event when it ends.
    ///
    /// The end is the first of: the inner body returns `None` or an error, yields trailers, or
    /// reports [`Body::is_end_stream`] after a frame (servers stop polling then); otherwise the
    /// drop of this body, logged as a disconnect (or a panic, a timeout; see
    /// [`RequestOutcome`]).
    ///
    /// After the inner body yields an error, this body never reports a clean end: it is not
    /// at its end ([`Body::is_end_stream`] is `false`) and, polled again, passes on what the
    /// inner body yields except a clean end (`None`), for which it stays pending. A cut
    /// response never looks complete.
    pub struct LogBody<B, L: MakeLevel> {
        #[pin]
        inner: B,
        access: Option<Access<L>>,
        failed: Failed,
    }
}

impl<B, L: MakeLevel> LogBody<B, L> {
    #[inline]
    pub(crate) const fn new(inner: B, access: Option<Access<L>>) -> Self {
        Self {
            inner,
            access,
            failed: Failed::new(),
        }
    }

    /// The inner body.
    pub const fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B, L: MakeLevel> fmt::Debug for LogBody<B, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(LogBody))
            .field("inner", &"...")
            .field("access", &self.access)
            .field("failed", &self.failed.get())
            .finish()
    }
}

impl<B: Default, L: MakeLevel> Default for LogBody<B, L> {
    /// The inner body's default, with no access record (nothing is logged for it).
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B, L> Body for LogBody<B, L>
where
    B: Body,
    B::Error: fmt::Display,
    L: MakeLevel,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        // The access record is gone once the body failed (its end is logged at the error).
        let Some(access) = this.access.as_mut() else {
            return this.failed.poll_through(this.inner, cx);
        };
        let frame = ready!(access.polling(|| this.failed.poll_through(this.inner.as_mut(), cx)));
        let end = match &frame {
            None => Some((access.completed(), None)),
            Some(Err(err)) => Some((RequestOutcome::Error, Some(err as &dyn fmt::Display))),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    access.data(data);
                }
                (frame.is_trailers() || this.inner.is_end_stream())
                    .then(|| (access.completed(), None))
            }
        };
        if let Some((outcome, error)) = end {
            access.finish(outcome, error);
            *this.access = None;
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
