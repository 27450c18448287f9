//! The pass-through body wrapper that tells a watcher how its body streams and ends.
//!
//! Six std body types watch a body go by without changing it: the access log ([`LogBody`]),
//! the request body capture ([`CaptureBody`]), the dump ([`DumpBody`]), the connection
//! lifecycle ([`TimedBody`]), the concurrency limit's place ([`PermitBody`]) and the HTTP
//! metrics ([`MetricsBody`]). Each is a [`Watched`] body with a [`Watcher`] of its own, so they
//! agree on what "the end" is and on what follows an error:
//!
//! - the end is the first of: the inner body returns `None` (complete) or an error (failed),
//!   yields trailers or reports [`Body::is_end_stream`] after a frame (complete: servers stop
//!   polling then), or the watcher says it has seen enough; the watcher hears it once, by value;
//! - once the body has streamed the length the response declared, the watcher is told it was
//!   [`sent`](Watcher::sent): a body dropped from then on was complete (hyper's HTTP/1 server
//!   drops a body unpolled once its `Content-Length` is written), while a body polled on (HTTP/2
//!   polls to the end) still ends by what the next poll yields, an error included;
//! - a watcher dropped before the end (the body dropped: a client gone, a panic) covers that case
//!   in its own `Drop`;
//! - after the inner body's error the wrapper never ends cleanly (see [`Failed`]): not at its
//!   end, its size unknown, and a clean end polled after the error stays pending.
//!
//! [`LogBody`]: crate::logging::LogBody
//! [`CaptureBody`]: crate::logging::CaptureBody
//! [`DumpBody`]: crate::dump::DumpBody
//! [`TimedBody`]: crate::lifecycle::TimedBody
//! [`PermitBody`]: crate::limit::PermitBody
//! [`MetricsBody`]: crate::metrics::MetricsBody

use std::{
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use http_body::{Body, SizeHint};
use pin_project_lite::pin_project;

use bytes::Buf;

use super::{Failed, FrameOf};

/// What a [`Watched`] body tells about the body it streams.
pub(crate) trait Watcher<B: Body>: Sized {
    /// A data frame went by. Returns `true` when the watcher has seen all it wants: it is then
    /// ended as if the body had completed (the rest streams through unwatched).
    fn data(&mut self, data: &B::Data) -> bool {
        let _ = data;
        false
    }

    /// Everything the response declared has streamed: if the body is dropped from now on, it
    /// was complete (a server stops polling there), not cut. The end, if the body is polled
    /// again, is still told by [`end`](Self::end).
    fn sent(&mut self) {}

    /// Runs one poll of the inner body; a watcher that must tell a panic inside the poll from a
    /// drop marks the poll here.
    fn polling<T>(&mut self, poll: impl FnOnce() -> T) -> T {
        poll()
    }

    /// The body ended: completely (`Ok`) or with the inner body's error. Called at most once.
    fn end(self, end: Result<(), &B::Error>);
}

pin_project! {
    /// A body that streams `B` through unchanged and tells the watcher `W` about it. See the
    /// [module docs](self).
    pub(crate) struct Watched<B, W> {
        #[pin]
        inner: B,
        watcher: Option<W>,
        // The bytes still to stream before the declared length is reached, if one was declared.
        left: Option<u64>,
        failed: Failed,
    }
}

impl<B, W> Watched<B, W> {
    /// `inner`, watched by `watcher` (or by nobody).
    pub(crate) const fn new(inner: B, watcher: Option<W>) -> Self {
        Self {
            inner,
            watcher,
            left: None,
            failed: Failed::new(),
        }
    }

    /// The watcher is told the body was [`sent`](Watcher::sent) once `length` bytes have
    /// streamed (see [`declared_length`]; a length of 0 is the caller's: a response that ends
    /// at its head).
    ///
    /// [`declared_length`]: super::declared_length
    pub(crate) const fn with_length(mut self, length: Option<u64>) -> Self {
        self.left = length;
        self
    }

    /// The watcher, until the body ends.
    pub(crate) const fn watcher(&self) -> Option<&W> {
        self.watcher.as_ref()
    }

    /// Whether the inner body has yielded an error.
    pub(crate) const fn failed(&self) -> bool {
        self.failed.get()
    }

    /// The inner body.
    pub(crate) const fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body; the watcher is dropped (as for a body dropped before its end).
    pub(crate) fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body, W: Watcher<B>> Watched<B, W> {
    /// [`Body::poll_frame`]: the inner body's frame, after telling the watcher.
    #[inline]
    pub(crate) fn poll_frame(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<FrameOf<B>> {
        let mut this = self.project();
        // Ended (or never watched): nothing to tell. A failed body has ended.
        let Some(watcher) = this.watcher.as_mut() else {
            return this.failed.poll_through(this.inner, cx);
        };
        let frame = ready!(watcher.polling(|| this.failed.poll_through(this.inner.as_mut(), cx)));
        let end = match &frame {
            None => Some(Ok(())),
            Some(Err(error)) => Some(Err(error)),
            Some(Ok(frame)) => {
                let mut done = frame.is_trailers() || this.inner.is_end_stream();
                if let Some(data) = frame.data_ref() {
                    done |= watcher.data(data);
                    if let Some(left) = this.left.as_mut() {
                        *left = left.saturating_sub(data.remaining() as u64);
                        if *left == 0 {
                            *this.left = None;
                            watcher.sent();
                        }
                    }
                }
                done.then_some(Ok(()))
            }
        };
        if let Some(end) = end {
            if let Some(watcher) = this.watcher.take() {
                watcher.end(end);
            }
        }
        Poll::Ready(frame)
    }

    /// [`Body::is_end_stream`]: the inner body's, and never once it failed.
    pub(crate) fn is_end_stream(&self) -> bool {
        self.failed.is_end_stream(&self.inner)
    }

    /// [`Body::size_hint`]: the inner body's; unknown once it failed (`0` would say "complete").
    pub(crate) fn size_hint(&self) -> SizeHint {
        if self.failed.get() {
            return SizeHint::new();
        }
        self.inner.size_hint()
    }
}

/// `impl Body` for a public body type whose pinned field `body` is a [`Watched`] body with
/// watcher `$watcher`: frames, end and size are the watched body's.
///
/// `watched_body!(impl[B, L: MakeLevel] LogBody<B, L>, Access<L>);`
macro_rules! watched_body {
    (impl[$($generics:tt)*] $ty:ty, $watcher:ty) => {
        impl<$($generics)*> http_body::Body for $ty
        where
            B: http_body::Body,
            $watcher: $crate::body_state::watched::Watcher<B>,
        {
            type Data = B::Data;
            type Error = B::Error;

            #[inline]
            fn poll_frame(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
                self.project().body.poll_frame(cx)
            }

            #[inline]
            fn is_end_stream(&self) -> bool {
                self.body.is_end_stream()
            }

            #[inline]
            fn size_hint(&self) -> http_body::SizeHint {
                self.body.size_hint()
            }
        }
    };
}

pub(crate) use watched_body;

#[cfg(test)]
mod tests {
    use std::{
        collections::VecDeque,
        sync::{Arc, Mutex},
        task::Waker,
    };

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body::Frame;

    use super::*;

    /// A body that yields the given frames, then ends; `is_end_stream` once they are out.
    struct Script(VecDeque<Item>);

    impl Body for Script {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<FrameOf<Self>> {
            Poll::Ready(self.0.pop_front())
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(7)
        }
    }

    /// A data frame, as the script yields it.
    type Item = Result<Frame<Bytes>, &'static str>;

    fn data(s: &'static str) -> Frame<Bytes> {
        Frame::data(Bytes::from_static(s.as_bytes()))
    }

    /// What a watcher was told, in order.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Log {
        fn push(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }
        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    /// Notes every call; has seen enough after `enough` data frames.
    struct Noter {
        log: Log,
        enough: usize,
    }

    impl Watcher<Script> for Noter {
        fn data(&mut self, data: &Bytes) -> bool {
            self.log.push(format!("data {}", data.len()));
            self.enough -= 1;
            self.enough == 0
        }

        fn polling<T>(&mut self, poll: impl FnOnce() -> T) -> T {
            self.log.push("poll".into());
            poll()
        }

        fn end(self, end: Result<(), &&'static str>) {
            self.log.push(format!("end {end:?}"));
        }
    }

    impl Drop for Noter {
        fn drop(&mut self) {
            self.log.push("drop".into());
        }
    }

    fn watched(frames: Vec<Item>, enough: usize) -> (Watched<Script, Noter>, Log) {
        let log = Log::default();
        let noter = Noter {
            log: log.clone(),
            enough,
        };
        (Watched::new(Script(frames.into()), Some(noter)), log)
    }

    fn poll(body: &mut Watched<Script, Noter>) -> Poll<FrameOf<Script>> {
        Pin::new(body).poll_frame(&mut TaskContext::from_waker(Waker::noop()))
    }

    #[test]
    fn the_end_is_told_once_at_the_last_frame() {
        let (mut body, log) = watched(vec![Ok(data("ab")), Ok(data("c"))], 9);
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert!(body.watcher().is_none());
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert_eq!(
            log.lines(),
            ["poll", "data 2", "poll", "data 1", "end Ok(())", "drop"]
        );
    }

    #[test]
    fn trailers_end_the_body() {
        let trailers = Ok(Frame::trailers(HeaderMap::new()));
        let (mut body, log) = watched(vec![Ok(data("a")), trailers, Ok(data("late"))], 9);
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert_eq!(
            log.lines(),
            ["poll", "data 1", "poll", "end Ok(())", "drop"]
        );
    }

    #[test]
    fn an_error_ends_the_body_and_no_clean_end_follows() {
        let (mut body, log) = watched(vec![Ok(data("a")), Err("cut")], 9);
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Err("cut")))));
        assert_eq!(
            log.lines(),
            ["poll", "data 1", "poll", "end Err(\"cut\")", "drop"]
        );
        assert!(body.failed());
        // The inner body is at its end, the wrapper is not: a cut body never looks complete.
        assert!(body.get_ref().is_end_stream());
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), None);
        assert!(poll(&mut body).is_pending());
    }

    #[test]
    fn a_watcher_that_has_seen_enough_is_ended_and_the_rest_streams() {
        let (mut body, log) = watched(vec![Ok(data("a")), Ok(data("b")), Ok(data("c"))], 1);
        for _ in 0..3 {
            assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        }
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert_eq!(log.lines(), ["poll", "data 1", "end Ok(())", "drop"]);
    }

    #[test]
    fn a_body_dropped_before_its_end_drops_the_watcher_unended() {
        let (mut body, log) = watched(vec![Ok(data("a")), Ok(data("b"))], 9);
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        drop(body);
        assert_eq!(log.lines(), ["poll", "data 1", "drop"]);
    }

    #[test]
    fn an_unwatched_body_streams_and_sizes_like_its_inner_body() {
        let mut body: Watched<Script, Noter> = Watched::new(Script([Ok(data("a"))].into()), None);
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert!(body.is_end_stream());
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
    }
}
