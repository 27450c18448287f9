//! [`ResponseFuture`].

use std::{
    fmt,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use http::Response;
use middleware_core::{CancelCause, Context, ResponseBody};

use super::{
    body::CatchPanicBody,
    panic::{Panic, PanicSite, ResponseForPanic},
};

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
    }
}

impl<F, R> ResponseFuture<F, R> {
    pub(crate) const fn new(future: F, responder: R, cx: Option<Context>) -> Self {
        Self {
            kind: Kind::Running { future },
            responder,
            cx,
        }
    }

    pub(crate) const fn panicked(panic: Panic, responder: R, cx: Option<Context>) -> Self {
        Self {
            kind: Kind::Panicked { panic: Some(panic) },
            responder,
            cx,
        }
    }
}

impl<F, R, B, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    R: ResponseForPanic,
{
    type Output = Result<Response<CatchPanicBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let panic = match this.kind.as_mut().project() {
            KindProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(result)) => {
                        // Dropping the finished future may still panic; that panic is
                        // swallowed (the answer is here already).
                        let _ = catch_unwind(AssertUnwindSafe(|| this.kind.set(Kind::Done)));
                        let context = this.cx.take();
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
        let res = this.responder.response_for_panic(&panic, &context);
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
