//! [`ResponseFuture`].

use std::{
    fmt,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::Response;
use middleware_core::{CancelCause, Context, ProblemDetails, ResponseBody};

use super::{
    body::CatchPanicBody,
    panic::{Panic, PanicSite, ResponseForPanic},
};
use crate::layer_time;

/// The per-layer time mark of this layer (see `ServerTimingLayer::per_layer_times`).
pub(crate) const LAYER_TIME: &str = "mw.catch_panic";

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Running {
            #[pin]
            future: F,
        },
        Panicked {
            panic: Option<Panic>,
        },
        Done,
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`CatchPanic`](super::CatchPanic): every poll of the inner
    /// future runs inside `catch_unwind`; a panic becomes the responder's response.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, R> {
        #[pin]
        kind: Kind<F>,
        responder: R,
        cx: Option<Context>,
        // The time this layer spent in `call`, when the context asks for per-layer times.
        spent: Option<Duration>,
    }
}

impl<F, R> ResponseFuture<F, R> {
    pub(crate) const fn new(
        future: F,
        responder: R,
        cx: Option<Context>,
        spent: Option<Duration>,
    ) -> Self {
        Self {
            kind: Kind::Running { future },
            responder,
            cx,
            spent,
        }
    }

    pub(crate) const fn panicked(
        panic: Panic,
        responder: R,
        cx: Option<Context>,
        spent: Option<Duration>,
    ) -> Self {
        Self {
            kind: Kind::Panicked { panic: Some(panic) },
            responder,
            cx,
            spent,
        }
    }
}

/// Records this layer's time: `spent` in `call` plus the time since `since` (on the
/// context's clock), when per-layer times are wanted (`spent` is then `Some`).
fn record_layer_time(cx: Option<&Context>, spent: Option<Duration>, since: Option<Duration>) {
    if let (Some(cx), Some(spent), Some(since)) = (cx, spent, since) {
        let now = cx.elapsed().saturating_sub(since);
        layer_time::record(Some(cx), LAYER_TIME, spent.saturating_add(now));
    }
}

/// The responder's answer to `panic`; if the responder panics in turn, the fixed
/// [`ProblemDetails::fallback`] (no application code runs for it). The second panic is not
/// logged separately: the request's panic is logged once, by the caller.
pub(crate) fn respond<R: ResponseForPanic>(
    responder: &R,
    panic: &Panic,
    cx: &Context,
) -> Response<Bytes> {
    match catch_unwind(AssertUnwindSafe(|| responder.response_for_panic(panic, cx))) {
        Ok(res) => res,
        Err(payload) => {
            // Dropping the payload may panic again; swallowed as well.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            ProblemDetails::fallback()
        }
    }
}

impl<F, R, B, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    R: ResponseForPanic,
{
    type Output = Result<Response<CatchPanicBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let panic = match this.kind.as_mut().project() {
            KindProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(result)) => {
                        let since = this.spent.and(this.cx.as_ref()).map(Context::elapsed);
                        // Dropping the finished future may still panic; that panic is
                        // swallowed (the answer is here already).
                        let _ = catch_unwind(AssertUnwindSafe(|| this.kind.set(Kind::Done)));
                        let context = this.cx.take();
                        record_layer_time(context.as_ref(), *this.spent, since);
                        return Poll::Ready(result.map(|res| {
                            res.map(|body| CatchPanicBody::new(ResponseBody::new(body), context))
                        }));
                    }
                    Err(payload) => Panic::new(payload, PanicSite::ResponseFuture),
                }
            }
            KindProj::Panicked { panic } => panic.take().expect("future polled after completion"),
            KindProj::Done => panic!("future polled after completion"),
        };
        let since = this.spent.and(this.cx.as_ref()).map(Context::elapsed);
        if let Some(context) = this.cx.as_ref() {
            // Before the panicked future is dropped, so that what it drops (a timeout's guard,
            // spawned work watching the context) sees why, not `dropped`.
            context.cancel_with(CancelCause::Panicked);
        }
        // Dropping a future that panicked may panic again; that one is swallowed (the first is
        // reported below).
        let _ = catch_unwind(AssertUnwindSafe(|| this.kind.set(Kind::Done)));
        let context = this.cx.take().unwrap_or_default();
        panic.log(Some(&context));
        let res = respond(this.responder, &panic, &context);
        record_layer_time(Some(&context), *this.spent, since);
        Poll::Ready(Ok(
            ResponseBody::response(res).map(|body| CatchPanicBody::new(body, None))
        ))
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Running { .. } => "running",
            Kind::Panicked { .. } => "panicked",
            Kind::Done => "done",
        };
        f.debug_struct(stringify!(ResponseFuture))
            .field("state", &state)
            .field("responder", &std::any::type_name::<R>())
            .finish_non_exhaustive()
    }
}
