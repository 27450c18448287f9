use std::fmt;

use bytes::Buf;
use http_body::Body;
use pin_project_lite::pin_project;

use crate::body_state::watched::{Watched, Watcher, watched_body};

use super::{ErrorType, server::Measure};

pin_project! {
    /// The response body of [`HttpMetrics`](super::HttpMetrics): counts the bytes streamed and
    /// ends the request's measurement at the last frame (trailers, or the last byte of the
    /// response's exact size or `Content-Length`: a server stops polling there), at a body error
    /// (recorded with `error.type`; the error is passed on as it is), or when dropped early (a
    /// client that went away, or a panic while polling). After an error it never ends cleanly.
    pub struct MetricsBody<B> {
        #[pin]
        body: Watched<B, Measure>,
    }
}

impl<B> MetricsBody<B> {
    pub(crate) const fn new(inner: B, measure: Option<Measure>) -> Self {
        Self {
            body: Watched::new(inner, measure),
        }
    }
}

impl<B> MetricsBody<B> {
    /// Dropped once `length` bytes have streamed (the length a server will send), the body was
    /// complete.
    pub(crate) fn with_length(mut self, length: Option<u64>) -> Self {
        self.body = self.body.with_length(length);
        self
    }
}

impl<B: Default> Default for MetricsBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

/// The measurement counts the body's bytes and ends with it; dropped first, `Measure`'s `Drop`
/// records the panic, timeout or disconnect.
impl<B: Body> Watcher<B> for Measure {
    fn data(&mut self, data: &B::Data) -> bool {
        self.body_bytes = self.body_bytes.saturating_add(data.remaining() as u64);
        false
    }

    fn sent(&mut self) {
        self.sent = true;
    }

    fn polling<T>(&mut self, poll: impl FnOnce() -> T) -> T {
        // A panic inside the poll unwinds with `polling` set: recorded as a panic.
        self.polling = true;
        let out = poll();
        self.polling = false;
        out
    }

    fn end(mut self, end: Result<(), &B::Error>) {
        self.finish(end.err().map(|_| ErrorType::Other));
    }
}

watched_body!(impl[B] MetricsBody<B>, Measure);

impl<B: fmt::Debug> fmt::Debug for MetricsBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(MetricsBody))
            .field("inner", self.body.get_ref())
            .field("measure", &self.body.watcher())
            .finish()
    }
}
