//! The response futures: [`ResponseFuture`] (whole-request budget, also used by the outbound
//! layer) and [`RequestBodyTimeoutFuture`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context as TaskContext, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use middleware_core::{CancelCause, Context, Error, ResponseBody};
use tokio::time::{Instant, Sleep};

use super::{
    body::{BodyDeadlines, TimeoutBody},
    error::{TIMEOUT_PHASE, TimeoutPhase, record_expiry},
};

/// The timeout response: status and optional fixed body.
#[derive(Clone, Debug)]
pub(crate) struct OnTimeout {
    pub(crate) status: StatusCode,
    pub(crate) body: Option<Bytes>,
}

impl OnTimeout {
    pub(crate) const fn new(status: StatusCode) -> Self {
        Self { status, body: None }
    }

    /// The response for an expired `phase`: the fixed body, or the error rendered by the
    /// context's renderer (problem details with the request id by default).
    pub(crate) fn respond<B>(
        &self,
        phase: TimeoutPhase,
        cx: &Context,
    ) -> Response<ResponseBody<B>> {
        let mut res = match &self.body {
            Some(body) => {
                let mut res = Response::new(ResponseBody::full(body.clone()));
                *res.status_mut() = self.status;
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                res
            }
            None => ResponseBody::response(cx.render_error(&Error::new(self.status))),
        };
        res.headers_mut()
            .insert(TIMEOUT_PHASE, super::error::header_value(phase));
        res
    }
}

/// What a [`ResponseFuture`] needs once its budget is spent or its response arrives. Built
/// once per service and shared with its futures, so each future carries a pointer, not the
/// settings.
#[derive(Debug)]
pub(crate) struct Expiry {
    pub(crate) on_timeout: OnTimeout,
    pub(crate) response_body: BodyDeadlines,
    /// Server side: an early drop cancels the context with [`CancelCause::Dropped`].
    pub(crate) cancel_on_drop: bool,
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Running {
            #[pin]
            future: F,
            // Armed only once `future` returned `Pending`, and boxed then: a request answered
            // at the first poll neither registers a timer nor carries one (tokio's `Sleep` is
            // over 100 bytes) through every future and response that wraps this one.
            sleep: Option<Pin<Box<Sleep>>>,
        },
        // The budget was spent before the inner service was called (`Request`), or the inner
        // service stayed unready for the whole budget (`Ready`).
        Expired { phase: TimeoutPhase },
        Done,
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Timeout`](super::Timeout) and
    /// [`PropagateDeadline`](super::PropagateDeadline).
    ///
    /// Each poll polls the inner future first, so a response that is ready wins, even when the
    /// deadline passed in the same instant (the tie rule). Only when the inner future is
    /// pending is the timer armed (once, lazily) and polled. When it fires, the context is
    /// cancelled with [`CancelCause::Deadline`], then the inner future is dropped, then the
    /// timeout response is returned.
    ///
    /// On the server side ([`Timeout`](super::Timeout)), every expiry is reported to the
    /// request ([`Context::record_expiry`]) with its phase and whether the deadline was the
    /// client's, and the response body watches the budget: a body that ends after the budget
    /// expired ends with a [`BodyTimeoutError`](super::BodyTimeoutError) instead (see the
    /// [module docs](super)).
    ///
    /// On the server side ([`Timeout`](super::Timeout)), dropping this future before it
    /// completes (the client went away, an outer layer gave up) cancels the context with
    /// [`CancelCause::Dropped`], unless it was already cancelled: the first cause wins. The
    /// client side ([`PropagateDeadline`](super::PropagateDeadline)) does not, since giving up
    /// on one outgoing call does not end the request that made it.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
        // The request's context; its deadline (read when the timer is armed, so a deadline
        // tightened meanwhile by an inner layer counts: the earliest wins) is the one enforced.
        // `None`: no deadline, nothing to enforce.
        cx: Option<Context>,
        expiry: Arc<Expiry>,
        // The deadline enforced is the client's own (an inbound deadline header was tighter
        // than the server's budget and than any deadline already set).
        by_client: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.expiry.cancel_on_drop && matches!(this.kind.as_ref().get_ref(), Kind::Running { .. }) {
                if let Some(cx) = this.cx.as_ref() {
                    cx.cancel_with(CancelCause::Dropped);
                }
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    /// Runs `future` until the deadline of `cx`; on the server side (`cancel_on_drop`), an
    /// early drop cancels `cx` with [`CancelCause::Dropped`].
    pub(crate) const fn new(future: F, cx: Context, expiry: Arc<Expiry>) -> Self {
        Self {
            kind: Kind::Running {
                future,
                sleep: None,
            },
            cx: Some(cx),
            expiry,
            by_client: false,
        }
    }

    /// Marks the deadline enforced as the client's own (see [`Expiry`](crate::Expiry)).
    pub(crate) const fn by_client(mut self, by_client: bool) -> Self {
        self.by_client = by_client;
        self
    }

    /// Runs `future` without a deadline.
    pub(crate) const fn unbounded(future: F, expiry: Arc<Expiry>) -> Self {
        Self {
            kind: Kind::Running {
                future,
                sleep: None,
            },
            cx: None,
            expiry,
            by_client: false,
        }
    }

    /// Answers with the timeout response for `phase` at the first poll, without running
    /// anything.
    pub(crate) const fn expired(cx: Context, expiry: Arc<Expiry>, phase: TimeoutPhase) -> Self {
        Self {
            kind: Kind::Expired { phase },
            cx: Some(cx),
            expiry,
            by_client: false,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TimeoutBody<ResponseBody<B>>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut phase = TimeoutPhase::Head;
        let ready = match this.kind.as_mut().project() {
            KindProj::Running { future, sleep } => {
                // The tie rule: the inner future first.
                if let Poll::Ready(result) = future.poll(cx) {
                    Some(result)
                } else {
                    if sleep.is_none() {
                        let Some(deadline) = this.cx.as_ref().and_then(Context::deadline) else {
                            return Poll::Pending;
                        };
                        let deadline = Instant::from_std(deadline);
                        *sleep = Some(Box::pin(tokio::time::sleep_until(deadline)));
                    }
                    let timer = sleep.as_mut().expect("armed above");
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    None
                }
            }
            KindProj::Expired { phase: expired } => {
                phase = *expired;
                None
            }
            KindProj::Done => panic!("future polled after completion"),
        };
        let server = this.expiry.cancel_on_drop;
        if let Some(result) = ready {
            this.kind.set(Kind::Done);
            let deadlines = this.expiry.response_body;
            // Server side: the body keeps the context (a clone, no allocation), so that a
            // stream cut by the budget ends with an error, not cleanly. Not when the budget had
            // already run out at the head (the tie rule let a late response through): a body
            // made after the deadline was not cut by it.
            let context = this.cx.take();
            let watch = server
                && context
                    .as_ref()
                    .is_some_and(|cx| cx.cause() != Some(CancelCause::Deadline));
            let context = context.filter(|_| watch || !deadlines.is_none());
            let by_client = *this.by_client;
            return Poll::Ready(result.map(|res| {
                res.map(|body| {
                    let body = TimeoutBody::response(ResponseBody::new(body), deadlines, context);
                    if watch {
                        body.watch_budget(by_client)
                    } else {
                        body
                    }
                })
            }));
        }
        let context = this.cx.take().expect("future polled after completion");
        // Server side: the request-wide report the access log reads. (A client-side call that
        // runs out leaves it to the server's budget layer, which knows whose deadline it was.)
        if server {
            let by_client = *this.by_client && phase == TimeoutPhase::Head;
            record_expiry(&context, phase, by_client);
        }
        // Cancel first, so the inner future sees the cause while it is dropped.
        context.cancel_with(CancelCause::Deadline);
        this.kind.set(Kind::Done);
        let res = this.expiry.on_timeout.respond(phase, &context);
        Poll::Ready(Ok(res.map(|body| {
            TimeoutBody::passthrough(body, TimeoutPhase::ResponseStream)
        })))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Running { sleep, .. } if sleep.is_some() => "armed",
            Kind::Running { .. } => "running",
            Kind::Expired { .. } => "expired",
            Kind::Done => "done",
        };
        f.debug_struct(stringify!(ResponseFuture))
            .field("state", &state)
            .field("deadline", &self.cx.as_ref().and_then(Context::deadline))
            .field("by_client", &self.by_client)
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestBodyTimeout`](super::RequestBodyTimeout).
    ///
    /// When the request body's deadline has passed, the response becomes `408 Request Timeout`
    /// with `Connection: close` and `x-timeout-phase: request-body`: checked when the inner
    /// future completes with a response (which is dropped) and after every poll in which it is
    /// still pending (then the context is cancelled with [`CancelCause::Deadline`] and the
    /// inner future dropped). An inner error passes through unchanged.
    #[must_use = "futures do nothing unless polled"]
    pub struct RequestBodyTimeoutFuture<F> {
        #[pin]
        future: Option<F>,
        signal: Option<Arc<AtomicBool>>,
        cx: Option<Context>,
    }
}

impl<F> RequestBodyTimeoutFuture<F> {
    pub(crate) const fn new(
        future: F,
        signal: Option<Arc<AtomicBool>>,
        cx: Option<Context>,
    ) -> Self {
        Self {
            future: Some(future),
            signal,
            cx,
        }
    }
}

impl<F, B, E> Future for RequestBodyTimeoutFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let future = this
            .future
            .as_mut()
            .as_pin_mut()
            .expect("future polled after completion");
        let poll = future.poll(cx);
        let expired = this
            .signal
            .as_ref()
            .is_some_and(|signal| signal.load(Ordering::Acquire));
        match poll {
            Poll::Ready(Err(err)) => {
                this.future.set(None);
                Poll::Ready(Err(err))
            }
            Poll::Ready(Ok(res)) if !expired => {
                this.future.set(None);
                Poll::Ready(Ok(res.map(ResponseBody::new)))
            }
            Poll::Pending if !expired => Poll::Pending,
            Poll::Ready(Ok(_)) | Poll::Pending => {
                let context = this.cx.take().unwrap_or_default();
                // Body deadlines are the server's, never the client's own.
                record_expiry(&context, TimeoutPhase::RequestBody, false);
                context.cancel_with(CancelCause::Deadline);
                this.future.set(None);
                let on_timeout = OnTimeout::new(StatusCode::REQUEST_TIMEOUT);
                let mut res = on_timeout.respond(TimeoutPhase::RequestBody, &context);
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                Poll::Ready(Ok(res))
            }
        }
    }
}

impl<F> fmt::Debug for RequestBodyTimeoutFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(RequestBodyTimeoutFuture))
            .field("guarded", &self.signal.is_some())
            .field("done", &self.future.is_none())
            .finish_non_exhaustive()
    }
}
