//! The body half of the kit: the checks that run on the layered response body, around a
//! [`BodyProbe`](super::BodyProbe) whose body is scripted frame by frame.

use std::{
    fmt,
    future::poll_fn,
    pin::{Pin, pin},
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use tower_layer::Layer;
use tower_service::Service;

use super::{
    Conformance, ProbeError,
    probe_body::{BodyProbe, Gate, Item},
    step,
};
use crate::context::{CancelCause, Context, RequestExt};

/// A frame as the kit compares it.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Data(Bytes),
    Trailers(HeaderMap),
}

fn got<D: Buf>(frame: Frame<D>) -> Got {
    match frame.into_data() {
        Ok(mut data) => Got::Data(data.copy_to_bytes(data.remaining())),
        Err(frame) => Got::Trailers(frame.into_trailers().unwrap_or_default()),
    }
}

/// What one `poll_frame` of `B` returns.
type Polled<B> = Poll<Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>>;

pub(super) fn poll_now<B: Body>(body: Pin<&mut B>) -> Polled<B> {
    body.poll_frame(&mut TaskContext::from_waker(Waker::noop()))
}

/// The next frame, failing as buffering when the layer took a frame from the inner body that
/// the caller did not get, and then waited for more.
async fn next_frame<B: Body>(
    mut body: Pin<&mut B>,
    gate: &Gate,
    received: usize,
    what: &str,
) -> Option<Result<Frame<B::Data>, B::Error>> {
    step(
        poll_fn(|cx| {
            let polled = body.as_mut().poll_frame(cx);
            assert!(
                !(polled.is_pending() && gate.handed_out() > received),
                "the body is buffered: the layer took frame {} from the inner body and waited for \
                 the next one instead of passing it on (stream frames through one at a time)",
                received + 1,
            );
            polled
        }),
        what,
    )
    .await
}

/// After an error: a few more polls must never end cleanly.
fn assert_never_ends_cleanly<B: Body>(mut body: Pin<&mut B>, after: &str) {
    for poll in 1..=3 {
        match poll_now(body.as_mut()) {
            Poll::Ready(None) => panic!(
                "an errored body ended cleanly afterwards: poll {poll} after {after} returned \
                 `None`; a cut body must keep returning an error (or stay pending), or it looks \
                 complete"
            ),
            Poll::Ready(Some(Ok(_))) => panic!(
                "an errored body went on afterwards: poll {poll} after {after} returned a frame"
            ),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        assert!(
            !body.is_end_stream(),
            "an errored body ended cleanly afterwards: `is_end_stream()` is true after {after}; \
             a cut body must not report its end"
        );
    }
}

fn trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-probe", HeaderValue::from_static("done"));
    trailers
}

impl<L> Conformance<L> {
    /// Runs the body checks (rules 5 to 9 of the [module docs](super)) on the layer wrapped
    /// around a [`BodyProbe`]; panics on the first broken rule.
    ///
    /// Whether the body type stays `Default` needs the concrete type: the
    /// [`check_conformance!`](crate::check_conformance) macro checks that too.
    ///
    /// # Panics
    ///
    /// When the layer breaks a rule, or a step hangs for more than 5 seconds.
    pub async fn run_bodies<B, E>(&self)
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        B: Body,
        B::Error: fmt::Debug,
        E: fmt::Debug,
    {
        self.frames_stream_through().await;
        self.an_empty_body_ends_at_the_head().await;
        self.errors_are_final().await;
        self.a_stalled_body_is_not_cut_clean().await;
        self.a_panicking_body_is_not_cut_clean().await;
        self.bodiless_responses_are_not_drops().await;
    }

    async fn send_scripted<B, E>(
        &self,
        method: Method,
        status: StatusCode,
        items: Vec<Item>,
    ) -> (Response<B>, Gate, Context)
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        E: fmt::Debug,
    {
        let probe = BodyProbe::default();
        let gate = Gate::new(items);
        probe.script(status, gate.clone());
        let mut svc = self.layer.layer(probe);
        let mut req = (self.make_request)();
        *req.method_mut() = method;
        let cx = req.context().clone();
        step(poll_fn(|cx| svc.poll_ready(cx)), "poll_ready")
            .await
            .expect("poll_ready failed");
        let res = step(svc.call(req), "call")
            .await
            .unwrap_or_else(|err| panic!("the request failed: {err:?}"));
        (res, gate, cx)
    }

    async fn frames_stream_through<B, E>(&self)
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        B: Body,
        B::Error: fmt::Debug,
        E: fmt::Debug,
    {
        let items = vec![
            Item::Data(Bytes::from_static(b"hello")),
            Item::Data(Bytes::from_static(b" world")),
            Item::Trailers(trailers()),
        ];
        let (res, gate, _cx) = self.send_scripted(Method::GET, StatusCode::OK, items).await;
        let mut body = pin!(res.into_body());
        assert_eq!(
            body.size_hint().exact(),
            Some(11),
            "`size_hint` is not passed through: the inner body's exact size is lost"
        );
        assert!(
            !body.is_end_stream(),
            "`is_end_stream` is not passed through: true before the inner body ended"
        );

        gate.release(1);
        let frame = next_frame(body.as_mut(), &gate, 0, "the first frame").await;
        match frame {
            Some(Ok(frame)) => assert_eq!(
                got(frame),
                Got::Data(Bytes::from_static(b"hello")),
                "frames are not passed through in order and unchanged"
            ),
            other => panic!(
                "frames are not passed through: the first frame came out as {:?}",
                other.map(|frame| frame.map(got))
            ),
        }
        assert_eq!(
            body.size_hint().exact(),
            Some(6),
            "`size_hint` is not passed through: it does not follow the inner body as it streams"
        );
        match poll_now(body.as_mut()) {
            Poll::Pending => {}
            Poll::Ready(None) => panic!(
                "the body ended before the inner body did: `None` while frames were still to come"
            ),
            Poll::Ready(Some(other)) => panic!(
                "frames are not passed through: a frame the inner body never released came out: \
                 {:?}",
                other.map(got)
            ),
        }

        gate.release(1);
        let frame = next_frame(body.as_mut(), &gate, 1, "the second frame").await;
        match frame {
            Some(Ok(frame)) => assert_eq!(
                got(frame),
                Got::Data(Bytes::from_static(b" world")),
                "frames are not passed through in order and unchanged"
            ),
            other => panic!(
                "frames are not passed through: the second frame came out as {:?}",
                other.map(|frame| frame.map(got))
            ),
        }
        assert!(
            !body.is_end_stream(),
            "`is_end_stream` is not passed through: true while the trailers are still to come"
        );

        gate.release(1);
        let frame = next_frame(body.as_mut(), &gate, 2, "the trailers").await;
        match frame {
            Some(Ok(frame)) => assert_eq!(
                got(frame),
                Got::Trailers(trailers()),
                "frames are not passed through: the trailers are lost or changed"
            ),
            other => panic!(
                "frames are not passed through: the trailers came out as {:?}",
                other.map(|frame| frame.map(got))
            ),
        }
        assert!(
            body.is_end_stream(),
            "`is_end_stream` is not passed through: false after the inner body ended"
        );
        let end = next_frame(body.as_mut(), &gate, 3, "the end of the body").await;
        assert!(
            end.is_none(),
            "the body did not end when the inner body ended: {:?}",
            end.map(|frame| frame.map(got))
        );
    }

    async fn an_empty_body_ends_at_the_head<B, E>(&self)
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        B: Body,
        B::Error: fmt::Debug,
        E: fmt::Debug,
    {
        let (res, gate, _cx) = self
            .send_scripted(Method::GET, StatusCode::OK, Vec::new())
            .await;
        let mut body = pin!(res.into_body());
        assert!(
            body.is_end_stream(),
            "`is_end_stream` is not passed through: false for an empty inner body"
        );
        assert_eq!(
            body.size_hint().exact(),
            Some(0),
            "`size_hint` is not passed through: an empty inner body's exact size 0 is lost"
        );
        let end = next_frame(body.as_mut(), &gate, 0, "the end of an empty body").await;
        assert!(
            end.is_none(),
            "an empty body did not end: {:?}",
            end.map(|frame| frame.map(got))
        );
    }

    async fn errors_are_final<B, E>(&self)
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        B: Body,
        B::Error: fmt::Debug,
        E: fmt::Debug,
    {
        let items = vec![
            Item::Data(Bytes::from_static(b"a")),
            Item::Error(9),
            Item::Data(Bytes::from_static(b"never")),
        ];
        let (res, gate, _cx) = self.send_scripted(Method::GET, StatusCode::OK, items).await;
        gate.release_all();
        let mut body = pin!(res.into_body());
        let first = next_frame(body.as_mut(), &gate, 0, "the frame before the error").await;
        assert!(
            matches!(first, Some(Ok(_))),
            "frames are not passed through: the frame before an error came out as {:?}",
            first.map(|frame| frame.map(got))
        );
        let error = next_frame(body.as_mut(), &gate, 1, "the error").await;
        match error {
            Some(Err(_)) => {}
            other => panic!(
                "the inner body's error was not passed on: it came out as {:?}",
                other.map(|frame| frame.map(got))
            ),
        }
        assert_never_ends_cleanly(body.as_mut(), "the inner body's error");
    }

    async fn a_stalled_body_is_not_cut_clean<B, E>(&self)
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        B: Body,
        B::Error: fmt::Debug,
        E: fmt::Debug,
    {
        let items = vec![
            Item::Data(Bytes::from_static(b"a")),
            Item::Data(Bytes::from_static(b"b")),
        ];
        let (res, gate, _cx) = self.send_scripted(Method::GET, StatusCode::OK, items).await;
        let mut body = pin!(res.into_body());
        gate.release(1);
        let first = next_frame(body.as_mut(), &gate, 0, "the frame before the stall").await;
        assert!(
            matches!(first, Some(Ok(_))),
            "frames are not passed through: the frame before a stall came out as {:?}",
            first.map(|frame| frame.map(got))
        );
        // The inner body stalls: the layer may give up with its own error (a deadline), but it
        // must not end the body cleanly, then or later.
        let stalled = tokio::time::timeout(self.stall, poll_fn(|cx| body.as_mut().poll_frame(cx)));
        match stalled.await {
            Err(_elapsed) => {
                gate.release_all();
                let frame = next_frame(body.as_mut(), &gate, 1, "the frame after a stall").await;
                assert!(
                    matches!(frame, Some(Ok(_))),
                    "frames are not passed through: the frame after a stall came out as {:?}",
                    frame.map(|frame| frame.map(got))
                );
            }
            Ok(None) => panic!(
                "an errored body ended cleanly afterwards: the layer ended a stalled body with \
                 `None`; a cut body must end with an error, or it looks complete"
            ),
            Ok(Some(Ok(frame))) => panic!(
                "frames are not passed through: a frame the inner body never released came out: \
                 {:?}",
                got(frame)
            ),
            Ok(Some(Err(_))) => {
                gate.release_all();
                assert_never_ends_cleanly(body.as_mut(), "the layer's own error on a stalled body");
            }
        }
    }

    async fn a_panicking_body_is_not_cut_clean<B, E>(&self)
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        B: Body,
        B::Error: fmt::Debug,
        E: fmt::Debug,
    {
        let items = vec![
            Item::Data(Bytes::from_static(b"a")),
            Item::Panic,
            Item::Data(Bytes::from_static(b"never")),
        ];
        let (res, gate, _cx) = self.send_scripted(Method::GET, StatusCode::OK, items).await;
        gate.release_all();
        let mut body = pin!(res.into_body());
        let first = next_frame(body.as_mut(), &gate, 0, "the frame before a panic").await;
        assert!(
            matches!(first, Some(Ok(_))),
            "frames are not passed through: the frame before a panic came out as {:?}",
            first.map(|frame| frame.map(got))
        );
        // A layer without panic recovery lets the panic through: nothing more to check. One that
        // recovers turns it into an error, which must then be final like any other.
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll_now(body.as_mut())));
        match polled {
            Err(_panic) => {}
            Ok(Poll::Ready(Some(Err(_)))) => {
                assert_never_ends_cleanly(body.as_mut(), "the error the layer made of a panic");
            }
            Ok(Poll::Ready(None)) => panic!(
                "an errored body ended cleanly afterwards: the layer caught a panic in the body \
                 and ended it with `None`; a cut body must end with an error, or it looks complete"
            ),
            Ok(Poll::Ready(Some(Ok(frame)))) => panic!(
                "frames are not passed through: a frame came out where the inner body panicked: \
                 {:?}",
                got(frame)
            ),
            Ok(Poll::Pending) => {
                assert_never_ends_cleanly(body.as_mut(), "a panic the layer swallowed");
            }
        }
    }

    async fn bodiless_responses_are_not_drops<B, E>(&self)
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        E: fmt::Debug,
    {
        let cases = [
            (Method::HEAD, StatusCode::OK),
            (Method::GET, StatusCode::NO_CONTENT),
            (Method::GET, StatusCode::NOT_MODIFIED),
        ];
        for (method, status) in cases {
            // hyper drops these bodies unpolled, empty or not (a HEAD handler often returns the
            // GET body for its length).
            for items in [Vec::new(), vec![Item::Data(Bytes::from_static(b"unsent"))]] {
                let empty = items.is_empty();
                let (res, _gate, cx) = self.send_scripted(method.clone(), status, items).await;
                drop(res);
                assert_ne!(
                    cx.cause(),
                    Some(CancelCause::Dropped),
                    "a bodiless response was read as a disconnect: the {} body of a {status} \
                     answer to {method} was dropped unpolled (as hyper does) and the request's \
                     context was cancelled with `Dropped`; such a response finishes at the head",
                    if empty { "empty" } else { "non-empty" },
                );
            }
        }
    }

    /// Runs every check, `Default` included. Not public API: called by
    /// [`check_conformance!`](crate::check_conformance).
    #[doc(hidden)]
    pub async fn __run_everything<B, E, R>(self, default: Option<B>)
    where
        L: Layer<super::Probe> + Layer<BodyProbe>,
        <L as Layer<super::Probe>>::Service:
            Service<Request<String>, Error = ProbeError, Response = R> + Clone,
        R: fmt::Debug,
        <L as Layer<BodyProbe>>::Service:
            Service<Request<String>, Response = Response<B>, Error = E>,
        B: Body,
        B::Error: fmt::Debug,
        E: fmt::Debug,
    {
        self.run_bodies().await;
        self.__check_default_body(default);
        self.run().await;
    }

    /// How long the stall check holds the inner body back (100 ms by default): set it above the
    /// layer's own body deadline so the check sees the layer give up on a stalled body.
    #[must_use]
    pub fn with_stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }
}

#[cfg(test)]
mod tests {
    //! The body checks must catch broken body wrappers, not just pass good ones.

    use crate::check_conformance;

    use std::future::Future;

    use bytes::BytesMut;
    use http_body::SizeHint;

    use super::*;
    use crate::{HookLayer, MiddlewareLayer, ObserveLayer, testing::ProbeBody};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Bug {
        None,
        Buffers,
        LosesSizeHint,
        LosesEndStream,
        EndsCleanlyAfterError,
        EndsStalledBodyCleanly,
        ReadsHeadAsDrop,
        CatchesAPanicThenEndsCleanly,
        CatchesAPanicIntoAnError,
    }

    /// A layer whose body wrapper has one bug.
    #[derive(Clone, Copy, Debug)]
    struct Wrap(Bug);

    impl<S> Layer<S> for Wrap {
        type Service = WrapService<S>;

        fn layer(&self, inner: S) -> WrapService<S> {
            WrapService { inner, bug: self.0 }
        }
    }

    #[derive(Clone, Debug)]
    struct WrapService<S> {
        inner: S,
        bug: Bug,
    }

    type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

    impl<S, B> Service<Request<String>> for WrapService<S>
    where
        S: Service<Request<String>, Response = Response<B>>,
        S::Future: Send + 'static,
        B: Body<Data = Bytes> + Unpin + Send + 'static,
    {
        type Response = Response<WrapBody<B>>;
        type Error = S::Error;
        type Future = BoxFuture<Result<Self::Response, S::Error>>;

        fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, mut req: Request<String>) -> Self::Future {
            let bug = self.bug;
            let context = req.context().clone();
            let future = self.inner.call(req);
            Box::pin(async move {
                let res = future.await?;
                Ok(res.map(|inner| WrapBody {
                    inner,
                    bug,
                    failed: false,
                    ended: false,
                    panicked: false,
                    stalled: None,
                    context: Some(context),
                }))
            })
        }
    }

    #[derive(Debug)]
    struct WrapBody<B> {
        inner: B,
        bug: Bug,
        failed: bool,
        ended: bool,
        panicked: bool,
        stalled: Option<std::time::Instant>,
        context: Option<Context>,
    }

    impl<B> Default for WrapBody<B>
    where
        B: Default,
    {
        fn default() -> Self {
            Self {
                inner: B::default(),
                bug: Bug::None,
                failed: false,
                ended: true,
                panicked: false,
                stalled: None,
                context: None,
            }
        }
    }

    impl<B> Drop for WrapBody<B> {
        fn drop(&mut self) {
            if self.bug == Bug::ReadsHeadAsDrop && !self.ended {
                if let Some(context) = &self.context {
                    context.cancel_with(CancelCause::Dropped);
                }
            }
        }
    }

    impl<B> Body for WrapBody<B>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<crate::BoxError>,
    {
        type Data = Bytes;
        type Error = crate::BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut TaskContext<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, crate::BoxError>>> {
            let this = &mut *self;
            if this.failed
                && matches!(
                    this.bug,
                    Bug::EndsCleanlyAfterError | Bug::EndsStalledBodyCleanly
                )
            {
                return Poll::Ready(None);
            }
            if this.bug == Bug::Buffers {
                let mut buffer = BytesMut::new();
                loop {
                    match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                buffer.extend_from_slice(&data);
                            }
                        }
                        Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                        None => {
                            this.ended = true;
                            return Poll::Ready(
                                (!buffer.is_empty()).then(|| Ok(Frame::data(buffer.freeze()))),
                            );
                        }
                    }
                }
            }
            let polled = if matches!(
                this.bug,
                Bug::CatchesAPanicThenEndsCleanly | Bug::CatchesAPanicIntoAnError
            ) {
                if this.panicked {
                    return if this.bug == Bug::CatchesAPanicThenEndsCleanly {
                        Poll::Ready(None)
                    } else {
                        Poll::Ready(Some(Err("the body panicked".into())))
                    };
                }
                let inner = &mut this.inner;
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Pin::new(inner).poll_frame(cx)
                })) {
                    Ok(polled) => polled,
                    Err(_panic) => {
                        this.panicked = true;
                        return Poll::Ready(Some(Err("the body panicked".into())));
                    }
                }
            } else {
                Pin::new(&mut this.inner).poll_frame(cx)
            };
            match &polled {
                Poll::Ready(Some(Err(_))) => this.failed = true,
                // Never a clean end after an error, whatever the inner body does.
                Poll::Ready(None) if this.failed => return Poll::Pending,
                Poll::Ready(None) => this.ended = true,
                Poll::Pending if this.bug == Bug::EndsStalledBodyCleanly => {
                    // A 30 ms idle deadline (polled in a busy loop) that reads as a clean end.
                    let since = *this.stalled.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > Duration::from_millis(30) {
                        this.failed = true;
                        return Poll::Ready(None);
                    }
                    cx.waker().wake_by_ref();
                }
                Poll::Ready(Some(Ok(_))) => this.stalled = None,
                _ => {}
            }
            polled.map(|frame| frame.map(|frame| frame.map_err(Into::into)))
        }

        fn is_end_stream(&self) -> bool {
            if self.panicked && self.bug == Bug::CatchesAPanicIntoAnError {
                return false;
            }
            self.bug != Bug::LosesEndStream && self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            if self.bug == Bug::LosesSizeHint {
                SizeHint::default()
            } else {
                self.inner.size_hint()
            }
        }
    }

    /// A pass-through body wrapper without `Default`.
    #[derive(Clone, Copy, Debug)]
    struct NoDefault;

    impl<S> Layer<S> for NoDefault {
        type Service = NoDefaultService<S>;

        fn layer(&self, inner: S) -> NoDefaultService<S> {
            NoDefaultService { inner }
        }
    }

    #[derive(Clone, Debug)]
    struct NoDefaultService<S> {
        inner: S,
    }

    impl<S, B> Service<Request<String>> for NoDefaultService<S>
    where
        S: Service<Request<String>, Response = Response<B>>,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        type Response = Response<NoDefaultBody<B>>;
        type Error = S::Error;
        type Future = BoxFuture<Result<Self::Response, S::Error>>;

        fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, req: Request<String>) -> Self::Future {
            let future = self.inner.call(req);
            Box::pin(async move { Ok(future.await?.map(NoDefaultBody)) })
        }
    }

    #[derive(Debug)]
    struct NoDefaultBody<B>(B);

    impl<B: Body + Unpin> Body for NoDefaultBody<B> {
        type Data = B::Data;
        type Error = B::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut TaskContext<'_>,
        ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
            Pin::new(&mut self.0).poll_frame(cx)
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.0.size_hint()
        }
    }

    #[tokio::test]
    async fn a_pass_through_body_wrapper_passes_every_check() {
        check_conformance!(Conformance::new(Wrap(Bug::None))).await;
    }

    #[tokio::test]
    async fn the_core_adapters_pass_every_check() {
        check_conformance!(Conformance::new(HookLayer::new(()))).await;
        check_conformance!(Conformance::new(MiddlewareLayer::new(()))).await;
        check_conformance!(Conformance::new(ObserveLayer::new(()))).await;
    }

    #[tokio::test]
    #[should_panic(expected = "the body is buffered")]
    async fn catches_a_body_wrapper_that_buffers() {
        Conformance::new(Wrap(Bug::Buffers)).run_bodies().await;
    }

    #[tokio::test]
    #[should_panic(expected = "`size_hint` is not passed through")]
    async fn catches_a_body_wrapper_that_loses_the_size_hint() {
        Conformance::new(Wrap(Bug::LosesSizeHint))
            .run_bodies()
            .await;
    }

    #[tokio::test]
    #[should_panic(expected = "`is_end_stream` is not passed through")]
    async fn catches_a_body_wrapper_that_loses_the_end_of_stream() {
        Conformance::new(Wrap(Bug::LosesEndStream))
            .run_bodies()
            .await;
    }

    #[tokio::test]
    #[should_panic(expected = "an errored body ended cleanly afterwards")]
    async fn catches_a_body_wrapper_that_ends_cleanly_after_an_error() {
        Conformance::new(Wrap(Bug::EndsCleanlyAfterError))
            .run_bodies()
            .await;
    }

    #[tokio::test]
    #[should_panic(expected = "an errored body ended cleanly afterwards")]
    async fn catches_a_body_wrapper_that_cuts_a_stalled_body_cleanly() {
        Conformance::new(Wrap(Bug::EndsStalledBodyCleanly))
            .run_bodies()
            .await;
    }

    #[tokio::test]
    #[should_panic(expected = "a bodiless response was read as a disconnect")]
    async fn catches_a_body_wrapper_that_reads_head_as_a_drop() {
        Conformance::new(Wrap(Bug::ReadsHeadAsDrop))
            .run_bodies()
            .await;
    }

    #[tokio::test]
    #[should_panic(
        expected = "ended cleanly afterwards: poll 1 after the error the layer made of a panic"
    )]
    async fn catches_a_body_wrapper_that_ends_cleanly_after_catching_a_panic() {
        Conformance::new(Wrap(Bug::CatchesAPanicThenEndsCleanly))
            .run_bodies()
            .await;
    }

    #[tokio::test]
    async fn a_body_wrapper_that_turns_a_panic_into_a_final_error_passes() {
        Conformance::new(Wrap(Bug::CatchesAPanicIntoAnError))
            .run_bodies()
            .await;
    }

    #[tokio::test]
    #[should_panic(expected = "`Default` is not passed through")]
    async fn catches_a_body_wrapper_without_default() {
        check_conformance!(Conformance::new(NoDefault)).await;
    }

    #[tokio::test]
    async fn a_body_wrapper_without_default_passes_the_other_body_checks() {
        Conformance::new(NoDefault).run_bodies().await;
    }

    #[tokio::test]
    async fn the_probe_body_keeps_its_error_and_its_size() {
        let gate = Gate::new(vec![Item::Data(Bytes::from_static(b"abc")), Item::Error(3)]);
        let mut body = pin!(ProbeBody {
            gate: Some(gate.clone())
        });
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(poll_now(body.as_mut()).is_pending(), "nothing released yet");
        gate.release_all();
        assert!(matches!(poll_now(body.as_mut()), Poll::Ready(Some(Ok(_)))));
        for _ in 0..3 {
            assert!(matches!(
                poll_now(body.as_mut()),
                Poll::Ready(Some(Err(ProbeError(3))))
            ));
            assert!(!body.is_end_stream());
        }

        let empty = ProbeBody::default();
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }
}
