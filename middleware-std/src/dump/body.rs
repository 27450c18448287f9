//! The body wrapper that dumps a body's first bytes as they stream through.

use std::{fmt, sync::Arc};

use bytes::Buf;
use http_body::Body;
use pin_project_lite::pin_project;

use crate::{
    body_state::copy_prefix,
    body_state::watched::{Watched, Watcher, watched_body},
};

use super::{Emitter, render};

pin_project! {
    /// A body that passes every frame through unchanged and dumps its first bytes (at most the
    /// layer's limit) once it has them, at its end, on an error or when dropped.
    ///
    /// See the [module docs](super) for an example.
    pub struct DumpBody<B> {
        #[pin]
        body: Watched<B, Capture>,
    }
}

impl<B> DumpBody<B> {
    /// Passes `inner` through without dumping it.
    pub const fn new(inner: B) -> Self {
        Self::dumping(inner, None)
    }

    pub(crate) const fn dumping(inner: B, capture: Option<Capture>) -> Self {
        Self {
            body: Watched::new(inner, capture),
        }
    }
}

impl<B: Default> Default for DumpBody<B> {
    fn default() -> Self {
        Self::new(B::default())
    }
}

impl<B> fmt::Debug for DumpBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(DumpBody))
            .field("dumping", &self.body.watcher().is_some())
            .finish_non_exhaustive()
    }
}

watched_body!(impl[B] DumpBody<B>, Capture);

/// The dump is emitted once it has its bytes (the rest streams on undumped), at the body's end,
/// at its error, or (by `Drop`) when the body is dropped first.
impl<B: Body> Watcher<B> for Capture {
    fn data(&mut self, data: &B::Data) -> bool {
        self.take(data);
        self.is_full()
    }

    fn end(self, end: Result<(), &B::Error>) {
        let end = match end {
            Err(_) => End::Error,
            Ok(()) if self.is_full() => End::Cut,
            Ok(()) => End::Complete,
        };
        self.emit(end);
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
