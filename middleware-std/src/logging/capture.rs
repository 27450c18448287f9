//! Bounded body capture: the first bytes of a body, copied as it streams through.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Buf;
use http::Request;
use http_body::Body;

use super::{MakeLevel, access::Access, escape::escape};
use crate::{
    body_state::copy_prefix,
    body_state::watched::{Watched, Watcher, watched_body},
};

/// The default request-body mode of [`LogLayer`](super::LogLayer): the request body is passed
/// to the inner service as it is, and not captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassRequestBody;

/// The request-body mode set by
/// [`LogLayer::capture_request_body`](super::LogLayer::capture_request_body): the inner service
/// receives a [`CaptureBody`] that copies the first bytes for the access event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureRequestBody {
    pub(crate) limit: usize,
}

/// A request-body mode of [`LogLayer`](super::LogLayer): what the log layer hands the inner
/// service as the request body. Implemented by [`PassRequestBody`] (the body as it is) and
/// [`CaptureRequestBody`] (a [`CaptureBody`]); sealed, so one `Service` impl of
/// [`Log`](super::Log) serves both modes.
pub trait RequestBodyMode<B>: Sealed {
    /// The request body the inner service receives.
    type Body;

    /// Hands the request on, wrapping its body when the mode captures it.
    #[doc(hidden)]
    #[allow(private_interfaces)] // sealed: only this crate calls it
    fn wrap<L: MakeLevel>(&self, req: Request<B>, access: &mut Access<L>) -> Request<Self::Body>;
}

/// Seals [`RequestBodyMode`]: nameable only in this module, so no other crate can implement it.
#[allow(unnameable_types)]
pub trait Sealed {}

impl Sealed for PassRequestBody {}
impl Sealed for CaptureRequestBody {}

impl<B> RequestBodyMode<B> for PassRequestBody {
    type Body = B;

    #[allow(private_interfaces)]
    fn wrap<L: MakeLevel>(&self, req: Request<B>, _: &mut Access<L>) -> Request<B> {
        req
    }
}

impl<B> RequestBodyMode<B> for CaptureRequestBody {
    type Body = CaptureBody<B>;

    #[allow(private_interfaces)]
    fn wrap<L: MakeLevel>(
        &self,
        req: Request<B>,
        access: &mut Access<L>,
    ) -> Request<CaptureBody<B>> {
        let capture = access.capture_request(self.limit);
        req.map(|body| CaptureBody::new(body, capture))
    }
}

/// The first `limit` bytes of a body and how many bytes went by.
#[derive(Debug)]
pub(crate) struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    size: u64,
}

impl Capture {
    pub(crate) const fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            size: 0,
        }
    }

    /// Copies what still fits of `data` (every chunk of a non-contiguous buffer, up to 16).
    pub(crate) fn push(&mut self, data: &impl Buf) {
        self.size = self.size.saturating_add(data.remaining() as u64);
        copy_prefix(&mut self.bytes, self.limit, data);
    }

    pub(crate) const fn size(&self) -> u64 {
        self.size
    }
}

impl fmt::Display for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", escape(&self.bytes))?;
        if self.size > self.bytes.len() as u64 {
            f.write_str("...[truncated]")?;
        }
        Ok(())
    }
}

/// A request body capture shared between the body (inside the inner service) and the access
/// record.
pub(crate) type SharedCapture = Arc<Mutex<Capture>>;

pub(crate) fn lock(capture: &SharedCapture) -> std::sync::MutexGuard<'_, Capture> {
    // A panic while copying bytes leaves a valid (if short) capture.
    capture.lock().unwrap_or_else(PoisonError::into_inner)
}

pin_project_lite::pin_project! {
    /// The request body the inner service sees when [`LogLayer::capture_request_body`] is on:
    /// the client's body, unchanged, whose first bytes are copied for the access event as the
    /// inner service reads them.
    ///
    /// After the client's body yields an error, this body never reports a clean end (see
    /// [`LogBody`](super::LogBody)): a cut upload never looks complete.
    ///
    /// [`LogLayer::capture_request_body`]: super::LogLayer::capture_request_body
    pub struct CaptureBody<B> {
        #[pin]
        body: Watched<B, SharedCapture>,
    }
}

/// Every data frame is copied (up to the capture's limit) until the body ends.
impl<B: Body> Watcher<B> for SharedCapture {
    fn data(&mut self, data: &B::Data) -> bool {
        lock(self).push(data);
        false
    }

    fn end(self, _: Result<(), &B::Error>) {}
}

impl<B> CaptureBody<B> {
    pub(crate) const fn new(inner: B, capture: SharedCapture) -> Self {
        Self {
            body: Watched::new(inner, Some(capture)),
        }
    }

    /// The client's body.
    pub const fn get_ref(&self) -> &B {
        self.body.get_ref()
    }

    /// The client's body, leaving the capture behind.
    pub fn into_inner(self) -> B {
        self.body.into_inner()
    }
}

impl<B> fmt::Debug for CaptureBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let captured = self.body.watcher().map_or(0, |c| lock(c).bytes.len());
        f.debug_struct(stringify!(CaptureBody))
            .field("inner", &"...")
            .field("captured", &captured)
            .field("failed", &self.body.failed())
            .finish()
    }
}

impl<B: Default> Default for CaptureBody<B> {
    /// The inner body's default, with no capture.
    fn default() -> Self {
        Self {
            body: Watched::new(B::default(), None),
        }
    }
}

watched_body!(impl[B] CaptureBody<B>, SharedCapture);

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(limit: usize, chunks: &[&'static [u8]]) -> String {
        let mut capture = Capture::new(limit);
        for chunk in chunks {
            capture.push(&bytes::Bytes::from_static(chunk));
        }
        capture.to_string()
    }

    #[test]
    fn only_the_first_bytes_are_kept_and_a_cut_is_marked() {
        assert_eq!(captured(8, &[b"hello"]), "hello");
        assert_eq!(captured(5, &[b"hello"]), "hello");
        assert_eq!(captured(4, &[b"hello"]), "hell...[truncated]");
        assert_eq!(captured(6, &[b"abc", b"def", b"g"]), "abcdef...[truncated]");
        assert_eq!(captured(0, &[b"x"]), "...[truncated]");
        assert_eq!(captured(3, &[]), "");
        assert_eq!(captured(4, &[b"\r\n\x1b\xff"]), r"\r\n\x1b\xff");
    }

    #[test]
    fn non_contiguous_buffers_are_copied_in_order() {
        let mut capture = Capture::new(5);
        let chained = bytes::Bytes::from_static(b"ab").chain(bytes::Bytes::from_static(b"cdef"));
        capture.push(&chained);
        assert_eq!(capture.to_string(), "abcde...[truncated]");
        assert_eq!(capture.size(), 6);
    }
}
