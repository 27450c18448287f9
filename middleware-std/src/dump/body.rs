//! The body wrapper that dumps a body's first bytes as they stream through.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll, ready},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::body_state::{Failed, Polled, copy_prefix};

use super::{Emitter, render};

pin_project! {
    /// A body that passes every frame through unchanged and dumps its first bytes (at most the
    /// layer's limit) once it has them, at its end, on an error or when dropped.
    ///
    /// See the [module docs](super) for an example.
    pub struct DumpBody<B> {
        #[pin]
        inner: B,
        capture: Option<Capture>,
        failed: Failed,
    }
}

impl<B> DumpBody<B> {
    /// Passes `inner` through without dumping it.
    pub const fn new(inner: B) -> Self {
        Self {
            inner,
            capture: None,
            failed: Failed::new(),
        }
    }

    pub(crate) fn dumping(inner: B, capture: Option<Capture>) -> Self {
        Self {
            inner,
            capture,
            failed: Failed::new(),
        }
    }
}

impl<B: Default> Default for DumpBody<B> {
    fn default() -> Self {
        Self::new(B::default())
    }
}

impl<B> std::fmt::Debug for DumpBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(stringify!(DumpBody))
            .field("dumping", &self.capture.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for DumpBody<B> {
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
        if let Some(capture) = this.capture.as_mut() {
            let done = match &frame {
                None | Some(Err(_)) => true,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        capture.take(data);
                    }
                    capture.is_full() || frame.is_trailers() || this.inner.is_end_stream()
                }
            };
            if done {
                let end = match &frame {
                    Some(Err(_)) => End::Error,
                    _ if capture.is_full() => End::Cut,
                    _ => End::Complete,
                };
                if let Some(capture) = this.capture.take() {
                    capture.emit(end);
                }
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

/// How a dumped body ended, as far as the dump saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The body ended within the limit.
    Complete,
    /// The limit was reached; the rest streamed on without being dumped.
    Cut,
    /// The body failed.
    Error,
    /// The body was dropped before its end.
    Dropped,
}

impl End {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Cut => "cut",
            Self::Error => "error",
            Self::Dropped => "dropped",
        }
    }
}

/// The first bytes of a body, and what to do with them.
#[derive(Debug)]
pub(crate) struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    emitter: Arc<Emitter>,
    what: &'static str,
}

impl Capture {
    pub(crate) fn new(limit: usize, emitter: Arc<Emitter>, what: &'static str) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            emitter,
            what,
        }
    }

    fn take(&mut self, data: &impl Buf) {
        copy_prefix(&mut self.bytes, self.limit, data);
    }

    fn is_full(&self) -> bool {
        self.bytes.len() >= self.limit
    }

    fn emit(mut self, end: End) {
        let bytes = std::mem::take(&mut self.bytes);
        self.emitter.body(self.what, &bytes, end.as_str());
        // Emitted: the drop below must not emit again.
        self.limit = 0;
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.limit > 0 {
            let bytes = std::mem::take(&mut self.bytes);
            self.emitter.body(self.what, &bytes, End::Dropped.as_str());
        }
    }
}

/// Renders the first bytes of a body for an event.
pub(crate) fn render_body(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    render::write_body(&mut out, bytes);
    out
}
