//! The "after an error, never a clean end" state of std's pass-through body wrappers.
//!
//! A body wrapper that keeps its inner body's error type (logging, dump, lifecycle, the
//! captured request body) cannot repeat the error it passed on. Once the inner body failed it
//! stays failed: it is not at its end, and polled again it passes on what the inner body
//! yields except a clean end (`None`), for which it stays pending. A cut body never looks
//! complete. Crate-private: the wrappers are std's; a layer author's wrapper with its own
//! error type repeats [`BodyFailedError`](middleware_core::body::BodyFailedError) instead.
//!
//! A wrapper with a boxed error of its own (timeout, catch-panic) keeps a [`Cut`] instead: once
//! cut, by its own cause or by the inner body's error, every later poll repeats an error.
//!
//! [`watched`] is the wrapper the six pass-through bodies share: one definition of a body's
//! end, told once to a watcher.
//!
//! [`copy_prefix`] is the other piece two wrappers share: the dump and the access log keep the
//! first bytes of a body as it streams.

// Each wrapper's feature uses part of this module (and of `watched`, with its macro); with all
// of them on (as clippy and the tests build it) every item is used, so dead code is still caught
// there.
#![cfg_attr(
    not(all(
        feature = "catch-panic",
        feature = "dump",
        feature = "lifecycle",
        feature = "limit",
        feature = "logging",
        feature = "metrics",
        feature = "timeout",
        feature = "timing"
    )),
    allow(dead_code, unused_macros, unused_imports)
)]

pub(crate) mod watched;

use std::{
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use middleware_core::{BoxError, body::BodyFailedError};

/// A frame of `B`, as [`Body::poll_frame`] yields it.
pub(crate) type FrameOf<B> = Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>;

/// Whether a wrapper's inner body has yielded an error (one byte, like the `bool` it replaces).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Failed(bool);

/// What [`Failed::poll_frame`] read from the inner body.
pub(crate) enum Polled<B: Body> {
    /// A frame of a body that had not failed before it: the wrapper looks at it (an error in
    /// it has marked the body failed) and passes it on.
    Fresh(FrameOf<B>),
    /// What a failed body yielded when polled again: passed on as is, and nothing to look at.
    AfterError(Result<Frame<B::Data>, B::Error>),
}

impl Failed {
    /// Not failed.
    pub(crate) const fn new() -> Self {
        Self(false)
    }

    /// Whether the inner body has yielded an error.
    pub(crate) const fn get(self) -> bool {
        self.0
    }

    /// Marks the inner body failed.
    pub(crate) fn set(&mut self) {
        self.0 = true;
    }

    /// Polls the inner body. A first error marks it failed; once failed, a clean end becomes
    /// `Pending`, so the wrapper never ends cleanly after an error.
    pub(crate) fn poll_frame<B: Body>(
        &mut self,
        inner: Pin<&mut B>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Polled<B>> {
        let frame = ready!(inner.poll_frame(cx));
        if self.0 {
            return match frame {
                None => Poll::Pending,
                Some(frame) => Poll::Ready(Polled::AfterError(frame)),
            };
        }
        self.0 = matches!(frame, Some(Err(_)));
        Poll::Ready(Polled::Fresh(frame))
    }

    /// [`Failed::poll_frame`] for a wrapper with nothing to look at: the frame to pass on.
    pub(crate) fn poll_through<B: Body>(
        &mut self,
        inner: Pin<&mut B>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<FrameOf<B>> {
        Poll::Ready(match ready!(self.poll_frame(inner, cx)) {
            Polled::Fresh(frame) => frame,
            Polled::AfterError(frame) => Some(frame),
        })
    }

    /// The wrapper's [`Body::is_end_stream`]: the inner body's, and never once failed.
    pub(crate) fn is_end_stream<B: Body>(self, inner: &B) -> bool {
        !self.0 && inner.is_end_stream()
    }
}

/// Where a body wrapper with a boxed error stands: streaming, or cut, by its own cause `E`
/// (a deadline, a panic) or by the inner body's error, which it cannot repeat. A cut body never
/// ends cleanly: every later poll yields the cause again (or [`BodyFailedError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut<E> {
    /// Frames pass.
    Streaming,
    /// Cut by the wrapper's own cause.
    By(E),
    /// The inner body failed.
    Failed,
}

impl<E> Cut<E>
where
    E: Copy + Into<BoxError>,
{
    /// The error a cut body yields when polled again; `None` while it streams.
    pub(crate) fn repeat(self) -> Option<BoxError> {
        match self {
            Self::Streaming => None,
            Self::By(cause) => Some(cause.into()),
            Self::Failed => Some(Box::new(BodyFailedError::new())),
        }
    }

    /// Whether frames still pass.
    pub(crate) const fn is_streaming(&self) -> bool {
        matches!(self, Self::Streaming)
    }

    /// The wrapper's [`Body::is_end_stream`]: `inner_end()` while streaming; a cut body has
    /// not ended.
    pub(crate) fn is_end_stream(self, inner_end: impl FnOnce() -> bool) -> bool {
        self.is_streaming() && inner_end()
    }

    /// The wrapper's [`Body::size_hint`]: `inner_hint()` while streaming; a cut body promises no
    /// size (`0` would say "complete and empty").
    pub(crate) fn size_hint(self, inner_hint: impl FnOnce() -> SizeHint) -> SizeHint {
        if self.is_streaming() {
            inner_hint()
        } else {
            SizeHint::new()
        }
    }
}

/// The length of a response's body as a server will send it: the body's exact size, else a
/// valid `Content-Length` header (one value of digits, or repeats of it). A server writes that
/// many bytes and stops: hyper drops the body without polling it again once they are written,
/// so a wrapper that waited for `None` would take a complete response for a client gone.
pub(crate) fn declared_length<B: Body>(res: &http::Response<B>) -> Option<u64> {
    if let Some(exact) = res.body().size_hint().exact() {
        return Some(exact);
    }
    let mut values = res.headers().get_all(http::header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.any(|value| value != first) {
        return None;
    }
    let digits = first.as_bytes();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Copies what still fits of `data` into `bytes`, up to `limit` bytes in all, without consuming
/// `data` (every chunk of a non-contiguous buffer, up to 16 of them: a frame is almost always
/// one).
pub(crate) fn copy_prefix(bytes: &mut Vec<u8>, limit: usize, data: &impl Buf) {
    let mut slices = [std::io::IoSlice::new(&[]); 16];
    let n = data.chunks_vectored(&mut slices);
    for slice in &slices[..n] {
        let room = limit.saturating_sub(bytes.len());
        if room == 0 {
            return;
        }
        bytes.extend_from_slice(&slice[..slice.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, task::Waker};

    use bytes::Bytes;

    use super::*;

    /// A body that yields the given results, then ends (`None`) with `is_end_stream` true.
    struct Script(VecDeque<Result<Bytes, &'static str>>);

    impl Body for Script {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            Poll::Ready(self.0.pop_front().map(|r| r.map(Frame::data)))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn script(items: &[Result<&'static str, &'static str>]) -> Script {
        Script(
            items
                .iter()
                .map(|r| r.map(|s| Bytes::from_static(s.as_bytes())))
                .collect(),
        )
    }

    fn poll(failed: &mut Failed, body: &mut Script) -> Poll<FrameOf<Script>> {
        failed.poll_through(Pin::new(body), &mut TaskContext::from_waker(Waker::noop()))
    }

    #[test]
    fn a_body_that_never_failed_ends_cleanly() {
        let (mut failed, mut body) = (Failed::new(), script(&[Ok("a")]));
        assert!(matches!(
            poll(&mut failed, &mut body),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(failed.is_end_stream(&body));
        assert!(matches!(poll(&mut failed, &mut body), Poll::Ready(None)));
        assert!(!failed.get());
    }

    #[test]
    fn after_an_error_the_end_is_never_clean() {
        let (mut failed, mut body) = (Failed::new(), script(&[Err("cut")]));
        assert!(matches!(
            poll(&mut failed, &mut body),
            Poll::Ready(Some(Err("cut")))
        ));
        assert!(failed.get());
        assert!(body.is_end_stream());
        assert!(!failed.is_end_stream(&body));
        assert!(poll(&mut failed, &mut body).is_pending());
        assert!(poll(&mut failed, &mut body).is_pending());
    }

    #[test]
    fn after_an_error_later_frames_pass_as_after_error() {
        let (mut failed, mut body) = (Failed::new(), script(&[Err("cut"), Ok("b"), Err("again")]));
        let cx = &mut TaskContext::from_waker(Waker::noop());
        assert!(matches!(
            failed.poll_frame(Pin::new(&mut body), cx),
            Poll::Ready(Polled::Fresh(Some(Err("cut"))))
        ));
        assert!(matches!(
            failed.poll_frame(Pin::new(&mut body), cx),
            Poll::Ready(Polled::AfterError(Ok(_)))
        ));
        assert!(matches!(
            failed.poll_frame(Pin::new(&mut body), cx),
            Poll::Ready(Polled::AfterError(Err("again")))
        ));
        assert!(failed.get());
    }

    #[test]
    fn copy_prefix_keeps_what_fits_of_every_chunk() {
        let data = Bytes::from_static(b"abc").chain(Bytes::from_static(b"defg"));
        let mut bytes = Vec::new();
        copy_prefix(&mut bytes, 5, &data);
        assert_eq!(bytes, b"abcde");
        assert_eq!(data.remaining(), 7, "the data is not consumed");
        copy_prefix(&mut bytes, 5, &data);
        assert_eq!(bytes, b"abcde", "a full prefix takes nothing more");
        let mut none = Vec::new();
        copy_prefix(&mut none, 0, &data);
        assert!(none.is_empty());
    }

    #[test]
    fn failed_is_one_byte() {
        assert_eq!(std::mem::size_of::<Failed>(), std::mem::size_of::<bool>());
    }
}
