//! [`TimeoutBody`]: idle and total deadlines on a streaming body, request or response side.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use middleware_core::{BoxError, CancelCause, Context};
use tokio::time::{Instant, Sleep};

use super::error::{BodyTimeoutError, TimeoutPhase, record_expiry};
use crate::body_state::Cut;

/// Idle and total deadlines for one body (`Copy`, carried by layers and futures).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BodyDeadlines {
    pub(crate) idle: Option<Duration>,
    pub(crate) total: Option<Duration>,
}

impl BodyDeadlines {
    pub(crate) const fn is_none(self) -> bool {
        self.idle.is_none() && self.total.is_none()
    }
}

pin_project_lite::pin_project! {
    /// A body with an idle and a total deadline; without deadlines it streams through untouched
    /// and never touches a timer.
    ///
    /// - **idle**: the longest wait for the next frame while the body is being read. Measured
    ///   only while the reader waits (a handler busy elsewhere is not the peer's fault).
    /// - **total**: a point in time fixed when the body was wrapped (request: when the request
    ///   reached the layer; response: when the response head did). It is checked while the
    ///   body is being read.
    ///
    /// When a deadline passes, the body yields a [`BodyTimeoutError`]. The timer is a
    /// `tokio::time::Sleep` armed only when the inner body is pending, and only one per body
    /// (set to the earlier of the two deadlines). A body with deadlines keeps its timer state
    /// behind one allocation made when it is wrapped; a body without (the response side by
    /// default) carries only the wrapped body, a context handle and a few flags through the
    /// layers around it.
    ///
    /// **The whole-request budget.** On the response side of
    /// [`TimeoutLayer`](super::TimeoutLayer), the request's [`Context`](crate::Context) is
    /// cancelled with [`CancelCause::Deadline`] when the budget runs out, also while the body
    /// streams, and a producer that stops on [`Context::cancelled`] ends its stream early. So
    /// when the wrapped body ends after the budget expired, the body does not end cleanly: it
    /// ends with a [`BodyTimeoutError`] whose [`is_budget`](BodyTimeoutError::is_budget) is
    /// true, and the expiry is reported with phase `response_body`. hyper then aborts the
    /// connection (HTTP/1.1) or resets the stream (HTTP/2), so the client sees a failure, never
    /// a short body that looks complete. A body that finishes *after* the budget expired is
    /// reported as cut too (the layer cannot tell a producer that stopped from one that was
    /// done): give streams that must outlive the budget a larger budget.
    ///
    /// **After an error it never ends cleanly.** Each further poll yields an error again: the
    /// same [`BodyTimeoutError`] after a deadline, or an error saying the body already failed
    /// after an error of the wrapped body (which cannot be cloned). [`Body::is_end_stream`] is
    /// `false` and [`Body::size_hint`] unbounded from then on.
    ///
    /// On the request side, an error of the wrapped body itself (the peer went away or reset
    /// the stream mid-body) cancels the request's [`Context`](crate::Context) with
    /// [`CancelCause::Dropped`](crate::CancelCause::Dropped), then passes through unchanged.
    ///
    /// See the [module docs](super) for an example.
    pub struct TimeoutBody<B> {
        #[pin]
        inner: B,
        // `None`: no deadlines.
        timer: Option<Pin<Box<Timer>>>,
        // The request's context, if it has one. Request side: cancelled with `Dropped` when
        // the wrapped body fails. Response side: cancelled with `Deadline` when a deadline
        // passes, so spawned work that produces the stream stops; read at the end of the body
        // when the budget is watched.
        context: Option<Context>,
        state: State,
        phase: TimeoutPhase,
        // Response side of the budget layer: `Some(by_client)` when a clean end after the
        // budget expired is reported as a cut (`by_client`: the budget was the client's).
        budget: Option<bool>,
    }
}

/// Whether a body still streams, or was cut: by a deadline (ours or a nested layer's), the
/// same error at every further poll; or by the wrapped body's error.
type State = Cut<BodyTimeoutError>;

pin_project_lite::pin_project! {
    /// The deadline state of one body.
    struct Timer {
        #[pin]
        sleep: Option<Sleep>,
        deadlines: BodyDeadlines,
        total: Option<Instant>,
        // The idle deadline in force, set when the reader started waiting for a frame.
        idle_at: Option<Instant>,
        // A frame arrived since the idle timer was last set.
        progressed: bool,
        // Request side: raised when a deadline passes (the layer's future then answers `408`).
        signal: Option<Arc<AtomicBool>>,
    }
}

impl Timer {
    /// The state for `deadlines`, the total one counted from now.
    fn boxed(deadlines: BodyDeadlines, signal: Option<Arc<AtomicBool>>) -> Pin<Box<Self>> {
        let total = deadlines
            .total
            .map(|total| Instant::now().checked_add(total).unwrap_or_else(far_future));
        Box::pin(Self {
            sleep: None,
            deadlines,
            total,
            idle_at: None,
            progressed: false,
            signal,
        })
    }
}

impl<B> TimeoutBody<B> {
    /// A body without deadlines: streams through, never arms a timer.
    #[inline]
    pub(crate) const fn passthrough(inner: B, phase: TimeoutPhase) -> Self {
        Self {
            inner,
            timer: None,
            context: None,
            state: State::Streaming,
            phase,
            budget: None,
        }
    }

    /// The request side: on expiry, raises `signal`; when `inner` fails, cancels `cx` with
    /// [`CancelCause::Dropped`]. Without deadlines it never arms a timer, but still watches
    /// for errors.
    pub(crate) fn request(
        inner: B,
        deadlines: BodyDeadlines,
        signal: Option<Arc<AtomicBool>>,
        cx: Option<Context>,
    ) -> Self {
        let mut body = Self::passthrough(inner, TimeoutPhase::RequestBody);
        if !deadlines.is_none() {
            body.timer = Some(Timer::boxed(deadlines, signal));
        }
        body.context = cx;
        body
    }

    /// The response side: on expiry, cancels `cx` (when there is one).
    #[inline]
    pub(crate) fn response(inner: B, deadlines: BodyDeadlines, cx: Option<Context>) -> Self {
        let mut body = Self::passthrough(inner, TimeoutPhase::ResponseStream);
        if !deadlines.is_none() {
            body.timer = Some(Timer::boxed(deadlines, None));
        }
        body.context = cx;
        body
    }

    /// Reports a clean end after the request's budget expired as a cut (see the type docs);
    /// `by_client`: the budget was the client's own deadline. Needs the context.
    #[inline]
    pub(crate) const fn watch_budget(mut self, by_client: bool) -> Self {
        self.budget = Some(by_client);
        self
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The wrapped body, without its deadlines.
    pub fn into_inner(self) -> B {
        self.inner
    }

    /// Which side this body is on: [`TimeoutPhase::RequestBody`] or
    /// [`TimeoutPhase::ResponseStream`].
    pub fn phase(&self) -> TimeoutPhase {
        self.phase
    }

    /// Whether a timer is armed (for the tests).
    #[cfg(test)]
    fn armed(&self) -> bool {
        self.timer
            .as_ref()
            .is_some_and(|timer| timer.sleep.is_some())
    }
}

/// A body without deadlines around `B::default()`, on the response side.
impl<B: Default> Default for TimeoutBody<B> {
    fn default() -> Self {
        Self::passthrough(B::default(), TimeoutPhase::ResponseStream)
    }
}

/// A deadline a century away, for budgets too large to add to the clock.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl<B> Body for TimeoutBody<B>
where
    B: Body,
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
        // A cut body must not look complete to a reader that polls once more.
        if let Some(err) = this.state.repeat() {
            return Poll::Ready(Some(Err(err)));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(timer) = this.timer.as_mut() {
                    *timer.as_mut().project().progressed = true;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(err))) => {
                let err: BoxError = err.into();
                if let Some(nested) = err.downcast_ref::<BodyTimeoutError>() {
                    // A nested layer's deadline: named for the request (that layer's own report
                    // wins when it had the context), and not the peer's doing: that layer
                    // answers `408` and cancels with `Deadline` itself.
                    if let Some(context) = this.context.as_ref() {
                        record_expiry(context, nested.phase(), false);
                    }
                    *this.state = State::By(*nested);
                } else {
                    // The transport failed mid-body: the request cannot be read to its end, so
                    // work spawned for it should stop.
                    if *this.phase == TimeoutPhase::RequestBody {
                        if let Some(context) = this.context.take() {
                            context.cancel_with(CancelCause::Dropped);
                        }
                    }
                    *this.state = State::Failed;
                }
                return Poll::Ready(Some(Err(err)));
            }
            Poll::Ready(None) => {
                // The budget expired and the producer stopped on it: a cut, not an end. Only a
                // cancellation somebody acted on counts (no clock read): a producer that
                // finished while the deadline passed unobserved sent the whole body.
                if let (Some(by_client), Some(context)) = (*this.budget, this.context.as_ref()) {
                    if context.observed_cause() == Some(CancelCause::Deadline) {
                        record_expiry(context, TimeoutPhase::ResponseStream, by_client);
                        let err = BodyTimeoutError::budget();
                        *this.state = State::By(err);
                        return Poll::Ready(Some(Err(Box::new(err))));
                    }
                }
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let Some(timer) = this.timer.as_mut() else {
            return Poll::Pending;
        };
        let mut timer = timer.as_mut().project();
        // The inner body is pending: (re)arm the one timer for the earlier deadline. The idle
        // one restarts only after a frame: a poll without progress (a spurious wake-up) keeps
        // the deadline already in force.
        if let Some(idle) = timer.deadlines.idle {
            if *timer.progressed || timer.idle_at.is_none() {
                *timer.idle_at = Some(Instant::now().checked_add(idle).unwrap_or_else(far_future));
            }
        }
        *timer.progressed = false;
        let target = match (*timer.idle_at, *timer.total) {
            (Some(idle), Some(total)) => Some(idle.min(total)),
            (idle, total) => idle.or(total),
        };
        if let Some(target) = target {
            match timer.sleep.as_mut().as_pin_mut() {
                Some(sleep) => {
                    if sleep.deadline() != target {
                        sleep.reset(target);
                    }
                }
                None => timer.sleep.set(Some(tokio::time::sleep_until(target))),
            }
        }
        let Some(sleep) = timer.sleep.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let fired_at = sleep.deadline();
        if sleep.poll(cx).is_pending() {
            return Poll::Pending;
        }
        let idle = timer.total.is_none_or(|total| fired_at < total);
        let err = BodyTimeoutError::new(*this.phase, idle);
        *this.state = State::By(err);
        // Body deadlines are the server's: never the client's own.
        if let Some(context) = this.context.as_ref() {
            record_expiry(context, *this.phase, false);
        }
        match *this.phase {
            // Not `Dropped`: the layer's future answers `408` and cancels with `Deadline`.
            TimeoutPhase::RequestBody => {
                if let Some(signal) = timer.signal.as_ref() {
                    signal.store(true, Ordering::Release);
                }
            }
            _ => {
                if let Some(context) = this.context.as_ref() {
                    context.cancel_with(CancelCause::Deadline);
                }
            }
        }
        Poll::Ready(Some(Err(Box::new(err))))
    }

    fn is_end_stream(&self) -> bool {
        self.state.is_end_stream(|| self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.state.size_hint(|| self.inner.size_hint())
    }
}

impl<B> fmt::Debug for TimeoutBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let deadlines = self
            .timer
            .as_ref()
            .map(|timer| timer.deadlines)
            .unwrap_or_default();
        f.debug_struct(stringify!(TimeoutBody))
            .field("phase", &self.phase)
            .field("idle", &deadlines.idle)
            .field("total", &deadlines.total)
            .field(
                "armed",
                &self
                    .timer
                    .as_ref()
                    .is_some_and(|timer| timer.sleep.is_some()),
            )
            .field("state", &self.state)
            .field("watches_budget", &self.budget.is_some())
            .field("cancels_context", &self.context.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::BodyExt;

    use super::*;
    use crate::timeout::tests::{ChannelBody, channel_body};

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_resets_on_every_frame() {
        let (tx, body) = channel_body();
        let signal = Arc::new(AtomicBool::new(false));
        let deadlines = BodyDeadlines {
            idle: Some(Duration::from_secs(1)),
            total: None,
        };
        let mut body = std::pin::pin!(TimeoutBody::request(
            body,
            deadlines,
            Some(Arc::clone(&signal)),
            None,
        ));
        let start = Instant::now();
        let feeder = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(900)).await;
                tx.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
            }
            // Then stall, keeping the sender alive.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        for _ in 0..3 {
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "x");
        }
        let err = body.frame().await.unwrap().unwrap_err();
        let err = err.downcast_ref::<BodyTimeoutError>().unwrap();
        assert_eq!(err.phase(), TimeoutPhase::RequestBody);
        assert!(err.is_idle());
        assert_eq!(err.to_string(), "request body idle timeout");
        assert_eq!(start.elapsed(), Duration::from_millis(3700));
        assert!(signal.load(Ordering::Acquire));
        // Never a clean end after the error: the same error again, and not at its end.
        let again = body.frame().await.unwrap().unwrap_err();
        assert_eq!(again.downcast_ref::<BodyTimeoutError>(), Some(err));
        assert!(!body.is_end_stream(), "a cut body has not ended");
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn total_deadline_holds_even_while_frames_flow() {
        let (tx, body) = channel_body();
        let cx = Context::new();
        let deadlines = BodyDeadlines {
            idle: Some(Duration::from_secs(1)),
            total: Some(Duration::from_millis(2500)),
        };
        let mut body = std::pin::pin!(TimeoutBody::response(body, deadlines, Some(cx.clone())));
        let start = Instant::now();
        let feeder = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(600)).await;
                if tx.send(Ok(Bytes::from_static(b"x"))).await.is_err() {
                    break;
                }
            }
        });
        let mut frames = 0;
        let err = loop {
            match body.frame().await.unwrap() {
                Ok(_) => frames += 1,
                Err(err) => break err,
            }
        };
        let err = err.downcast_ref::<BodyTimeoutError>().unwrap();
        assert_eq!(err.phase(), TimeoutPhase::ResponseStream);
        assert!(!err.is_idle());
        assert_eq!(err.to_string(), "response body total timeout");
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
        assert_eq!(frames, 4);
        assert_eq!(cx.cause(), Some(CancelCause::Deadline));
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_without_deadlines_never_arms_a_timer() {
        let (tx, body) = channel_body();
        let mut body = std::pin::pin!(TimeoutBody::response(body, BodyDeadlines::default(), None));
        let mut cx = TaskContext::from_waker(std::task::Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_pending());
        assert!(!body.armed());
        tokio::time::sleep(Duration::from_secs(3600)).await;
        tx.send(Ok(Bytes::from_static(b"late"))).await.unwrap();
        drop(tx);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "late");
    }

    #[tokio::test(start_paused = true)]
    async fn inner_errors_pass_through_boxed() {
        let (tx, body): (_, ChannelBody) = channel_body();
        tx.send(Err(std::io::Error::other("boom"))).await.unwrap();
        let deadlines = BodyDeadlines {
            idle: Some(Duration::from_secs(1)),
            total: None,
        };
        let cx = Context::new();
        let mut body = std::pin::pin!(TimeoutBody::response(body, deadlines, Some(cx.clone())));
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.downcast_ref::<BodyTimeoutError>().is_none());
        assert_eq!(err.to_string(), "boom");
        // The response side does not read a peer's abort into its own body's errors.
        assert_eq!(cx.cause(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_request_body_cancels_the_context_with_dropped_and_passes_the_error_on() {
        let (tx, body): (_, ChannelBody) = channel_body();
        let cx = Context::new();
        let signal = Arc::new(AtomicBool::new(false));
        let deadlines = BodyDeadlines {
            idle: Some(Duration::from_secs(1)),
            total: Some(Duration::from_secs(10)),
        };
        let mut body = std::pin::pin!(TimeoutBody::request(
            body,
            deadlines,
            Some(Arc::clone(&signal)),
            Some(cx.clone()),
        ));
        tx.send(Ok(Bytes::from_static(b"first 100 bytes")))
            .await
            .unwrap();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "first 100 bytes");
        assert_eq!(cx.cause(), None, "a frame is not a failure");

        let waiter = tokio::spawn({
            let cx = cx.clone();
            async move { cx.cancelled().await }
        });
        let start = Instant::now();
        tx.send(Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "incomplete message",
        )))
        .await
        .unwrap();
        let err = body.frame().await.unwrap().unwrap_err();
        // Unchanged: the same error, boxed, not wrapped.
        let io = err
            .downcast_ref::<std::io::Error>()
            .expect("the inner error");
        assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(err.to_string(), "incomplete message");
        assert_eq!(cx.cause(), Some(CancelCause::Dropped));
        assert_eq!(waiter.await.unwrap(), CancelCause::Dropped);
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "at once, not at a deadline"
        );
        assert!(!signal.load(Ordering::Acquire), "no 408: nothing expired");
        drop(tx);
        // The wrapped body would now end cleanly; the cut body says it failed instead.
        let again = body.frame().await.unwrap().unwrap_err();
        assert_eq!(again.to_string(), "body polled again after it failed");
        assert!(!body.is_end_stream());
        assert_eq!(cx.cause(), Some(CancelCause::Dropped));
    }

    #[tokio::test(start_paused = true)]
    async fn without_deadlines_a_failing_request_body_still_cancels() {
        let (tx, body): (_, ChannelBody) = channel_body();
        let cx = Context::new();
        let mut body = std::pin::pin!(TimeoutBody::request(
            body,
            BodyDeadlines::default(),
            None,
            Some(cx.clone()),
        ));
        let mut task = TaskContext::from_waker(std::task::Waker::noop());
        assert!(body.as_mut().poll_frame(&mut task).is_pending());
        assert!(!body.armed(), "no deadline, no timer");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        tx.send(Err(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )))
        .await
        .unwrap();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(
            err.downcast_ref::<std::io::Error>().unwrap().kind(),
            std::io::ErrorKind::ConnectionReset
        );
        assert_eq!(cx.cause(), Some(CancelCause::Dropped));
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_bodys_own_deadline_raises_the_flag_and_does_not_cancel() {
        let (_tx, body): (_, ChannelBody) = channel_body();
        let cx = Context::new();
        let signal = Arc::new(AtomicBool::new(false));
        let deadlines = BodyDeadlines {
            idle: Some(Duration::from_millis(300)),
            total: None,
        };
        let mut body = std::pin::pin!(TimeoutBody::request(
            body,
            deadlines,
            Some(Arc::clone(&signal)),
            Some(cx.clone()),
        ));
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyTimeoutError>());
        assert!(signal.load(Ordering::Acquire));
        // The layer's future answers `408` and cancels with `Deadline`; the body never says
        // `Dropped` for its own deadline.
        assert_eq!(cx.cause(), None);
        let again = body.frame().await.unwrap().unwrap_err();
        assert!(
            again.is::<BodyTimeoutError>(),
            "the same error again, not a clean end"
        );
        assert_eq!(cx.cause(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_nested_layers_deadline_error_is_not_taken_for_a_peer_abort() {
        let (_tx, body): (_, ChannelBody) = channel_body();
        let cx = Context::new();
        let inner_signal = Arc::new(AtomicBool::new(false));
        let inner = TimeoutBody::request(
            body,
            BodyDeadlines {
                idle: None,
                total: Some(Duration::from_millis(200)),
            },
            Some(Arc::clone(&inner_signal)),
            Some(cx.clone()),
        );
        let mut outer = std::pin::pin!(TimeoutBody::request(
            inner,
            BodyDeadlines::default(),
            None,
            Some(cx.clone()),
        ));
        let err = outer.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyTimeoutError>());
        assert!(inner_signal.load(Ordering::Acquire));
        assert_eq!(cx.cause(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_body_that_ends_normally_never_cancels() {
        let (tx, body): (_, ChannelBody) = channel_body();
        let cx = Context::new();
        let signal = Arc::new(AtomicBool::new(false));
        let deadlines = BodyDeadlines {
            idle: Some(Duration::from_secs(1)),
            total: Some(Duration::from_secs(5)),
        };
        let body =
            TimeoutBody::request(body, deadlines, Some(Arc::clone(&signal)), Some(cx.clone()));
        let feeder = tokio::spawn(async move {
            for chunk in ["a", "b", "c"] {
                tokio::time::sleep(Duration::from_millis(500)).await;
                tx.send(Ok(Bytes::from_static(chunk.as_bytes())))
                    .await
                    .unwrap();
            }
        });
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "abc");
        feeder.await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(cx.cause(), None);
        assert!(!signal.load(Ordering::Acquire));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_context_a_failing_request_body_just_passes_the_error_on() {
        let (tx, body): (_, ChannelBody) = channel_body();
        let deadlines = BodyDeadlines {
            idle: Some(Duration::from_secs(1)),
            total: None,
        };
        let signal = Arc::new(AtomicBool::new(false));
        let mut body = std::pin::pin!(TimeoutBody::request(
            body,
            deadlines,
            Some(Arc::clone(&signal)),
            None,
        ));
        tx.send(Err(std::io::Error::other("reset"))).await.unwrap();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "reset");
        assert!(!signal.load(Ordering::Acquire));
    }

    #[tokio::test(start_paused = true)]
    async fn size_hint_and_end_of_stream_pass_through() {
        let with_deadlines = BodyDeadlines {
            idle: Some(Duration::from_secs(1)),
            total: Some(Duration::from_secs(5)),
        };
        for deadlines in [BodyDeadlines::default(), with_deadlines] {
            let full = http_body_util::Full::new(Bytes::from_static(b"hello"));
            let mut body = std::pin::pin!(TimeoutBody::response(full, deadlines, None));
            assert_eq!(body.size_hint().exact(), Some(5), "{deadlines:?}");
            assert!(!body.is_end_stream());
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "hello");
            assert!(body.is_end_stream(), "{deadlines:?}");
            assert_eq!(body.size_hint().exact(), Some(0));
            assert!(body.frame().await.is_none());
        }
        let mut empty = TimeoutBody::request(
            http_body_util::Empty::<Bytes>::new(),
            with_deadlines,
            None,
            None,
        );
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
        assert!(empty.frame().await.is_none());
    }

    #[test]
    fn the_default_body_is_an_empty_body_without_deadlines() {
        let body = TimeoutBody::<http_body_util::Empty<Bytes>>::default();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert_eq!(body.phase(), TimeoutPhase::ResponseStream);
        assert!(!body.armed());
        let body = TimeoutBody::<String>::default();
        assert_eq!(body.get_ref(), "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_body_whose_inner_body_failed_never_ends_cleanly() {
        for deadlines in [
            BodyDeadlines::default(),
            BodyDeadlines {
                idle: Some(Duration::from_secs(1)),
                total: None,
            },
        ] {
            let (tx, body): (_, ChannelBody) = channel_body();
            let cx = Context::new();
            let mut body = std::pin::pin!(
                TimeoutBody::response(body, deadlines, Some(cx.clone())).watch_budget(false)
            );
            tx.send(Ok(Bytes::from_static(b"row 0"))).await.unwrap();
            tx.send(Err(std::io::Error::other("upstream reset")))
                .await
                .unwrap();
            drop(tx);
            assert!(body.frame().await.unwrap().is_ok());
            let err = body.frame().await.unwrap().unwrap_err();
            assert_eq!(err.to_string(), "upstream reset");
            // The wrapped body would end cleanly now.
            for _ in 0..2 {
                let again = body.frame().await.unwrap().unwrap_err();
                assert_eq!(again.to_string(), "body polled again after it failed");
            }
            assert!(!body.is_end_stream());
            assert_eq!(body.size_hint().upper(), None);
            assert_eq!(cx.expiry(), None, "no deadline expired");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_nested_deadline_error_is_reported_and_repeated() {
        let (_tx, body): (_, ChannelBody) = channel_body();
        let cx = Context::new();
        // A nested response-body deadline without the context: the outer body names it.
        let inner = TimeoutBody::response(
            body,
            BodyDeadlines {
                idle: Some(Duration::from_millis(200)),
                total: None,
            },
            None,
        );
        let mut outer = std::pin::pin!(
            TimeoutBody::response(inner, BodyDeadlines::default(), Some(cx.clone()))
                .watch_budget(true)
        );
        let err = outer.frame().await.unwrap().unwrap_err();
        let err = *err.downcast_ref::<BodyTimeoutError>().unwrap();
        assert_eq!(err.phase(), TimeoutPhase::ResponseStream);
        let again = outer.frame().await.unwrap().unwrap_err();
        assert_eq!(again.downcast_ref::<BodyTimeoutError>(), Some(&err));
        let expiry = cx.expiry().unwrap();
        assert_eq!(expiry.phase(), TimeoutPhase::ResponseStream);
        assert!(!expiry.is_by_client(), "a body deadline is the server's");
    }

    #[tokio::test(start_paused = true)]
    async fn a_clean_end_before_the_budget_expired_stays_clean() {
        let cx = Context::new();
        cx.set_timeout(Duration::from_secs(1));
        let full = http_body_util::Full::new(Bytes::from_static(b"done"));
        let body = TimeoutBody::response(full, BodyDeadlines::default(), Some(cx.clone()))
            .watch_budget(false);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "done");
        // Without `watch_budget` (the client side), even a late end is an end.
        let (tx, late): (_, ChannelBody) = channel_body();
        let body = TimeoutBody::response(late, BodyDeadlines::default(), Some(cx.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(cx.cause(), Some(CancelCause::Deadline));
        drop(tx);
        assert!(body.collect().await.is_ok());
        assert_eq!(cx.expiry(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_without_progress_keeps_the_idle_deadline() {
        let (_tx, body): (_, ChannelBody) = channel_body();
        let deadlines = BodyDeadlines {
            idle: Some(Duration::from_secs(1)),
            total: Some(Duration::from_secs(10)),
        };
        let mut body = std::pin::pin!(TimeoutBody::response(body, deadlines, None));
        let start = Instant::now();
        let mut task = TaskContext::from_waker(std::task::Waker::noop());
        // Spurious wake-ups: the reader polls again while nothing arrived.
        for _ in 0..3 {
            assert!(body.as_mut().poll_frame(&mut task).is_pending());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.downcast_ref::<BodyTimeoutError>().unwrap().is_idle());
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
