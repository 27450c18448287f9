use std::fmt;

use http_body::Body;

use crate::body_state::watched::{Watched, Watcher, watched_body};

use super::{MakeLevel, RequestOutcome, access::Access};

pin_project_lite::pin_project! {
    /// The response body of [`Log`](super::Log): streams the inner body through unchanged and
    /// emits the access event when it ends.
    ///
    /// The end is the first of: the inner body returns `None` or an error, yields trailers,
    /// reports [`Body::is_end_stream`] after a frame, or has streamed the response's exact size
    /// or `Content-Length` (servers stop polling then); otherwise the drop of this body, logged as a disconnect (or a panic, a timeout; see
    /// [`RequestOutcome`]).
    ///
    /// After the inner body yields an error, this body never reports a clean end: it is not
    /// at its end ([`Body::is_end_stream`] is `false`, its size unknown) and, polled again,
    /// passes on what the inner body yields except a clean end (`None`), for which it stays
    /// pending. A cut response never looks complete.
    pub struct LogBody<B, L: MakeLevel> {
        #[pin]
        body: Watched<B, Access<L>>,
    }
}

impl<B, L: MakeLevel> LogBody<B, L> {
    #[inline]
    pub(crate) const fn new(inner: B, access: Option<Access<L>>) -> Self {
        Self {
            body: Watched::new(inner, access),
        }
    }

    /// Dropped once `length` bytes have streamed (the length a server will send), the body was
    /// complete.
    pub(crate) fn with_length(mut self, length: Option<u64>) -> Self {
        self.body = self.body.with_length(length);
        self
    }

    /// The inner body.
    pub const fn get_ref(&self) -> &B {
        self.body.get_ref()
    }
}

/// The access event is emitted at the body's end or error (the error shown), and by the
/// record's `Drop` when the body is dropped first. Each poll runs inside the request span.
impl<B, L> Watcher<B> for Access<L>
where
    B: Body,
    B::Error: fmt::Display,
    L: MakeLevel,
{
    fn data(&mut self, data: &B::Data) -> bool {
        Self::data(self, data);
        false
    }

    fn sent(&mut self) {
        Self::sent(self);
    }

    fn polling<T>(&mut self, poll: impl FnOnce() -> T) -> T {
        Self::polling(self, poll)
    }

    fn end(mut self, end: Result<(), &B::Error>) {
        match end {
            Ok(()) => self.finish(self.completed(), None),
            Err(error) => self.finish(RequestOutcome::Error, Some(error as &dyn fmt::Display)),
        }
    }
}

impl<B, L: MakeLevel> fmt::Debug for LogBody<B, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(LogBody))
            .field("inner", &"...")
            .field("access", &self.body.watcher())
            .field("failed", &self.body.failed())
            .finish()
    }
}

impl<B: Default, L: MakeLevel> Default for LogBody<B, L> {
    /// The inner body's default, with no access record (nothing is logged for it).
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

watched_body!(impl[B, L: MakeLevel] LogBody<B, L>, Access<L>);
