//! The response futures of the adapters.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;

use crate::{
    body::ResponseBody,
    context::DropGuard,
    middleware::{Hook, Observe},
};

/// The response future of [`MiddlewareService`](crate::MiddlewareService).
///
/// An around-style middleware is an `async fn`, whose future has no name on stable Rust, so it
/// is boxed here: one allocation per request for the whole chain.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<T, E> {
    inner: Pin<Box<dyn Future<Output = Result<T, E>> + Send>>,
}

impl<T, E> ResponseFuture<T, E> {
    pub(crate) fn new(future: impl Future<Output = Result<T, E>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`HookService`](crate::HookService): named, no allocation.
    #[must_use = "futures do nothing unless polled"]
    pub struct HookFuture<H: Hook, F> {
        #[pin]
        kind: Kind<H, F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<H: Hook, F> {
        Inner {
            #[pin]
            future: F,
            hook: Arc<H>,
            state: Option<H::State>,
            guard: DropGuard,
        },
        Short {
            response: Option<http::Response<Bytes>>,
        },
    }
}

impl<H: Hook, F> HookFuture<H, F> {
    /// The inner future is running; `after` runs when it completes.
    #[inline]
    pub(crate) fn running(future: F, hook: Arc<H>, state: H::State, guard: DropGuard) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                hook,
                state: Some(state),
                guard,
            },
        }
    }

    /// `before` answered: the inner service was never called.
    #[inline]
    pub(crate) fn short(response: http::Response<Bytes>) -> Self {
        Self {
            kind: Kind::Short {
                response: Some(response),
            },
        }
    }
}

impl<H, F, B, E> Future for HookFuture<H, F>
where
    H: Hook,
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                hook,
                state,
                guard,
            } => {
                let result = ready!(future.poll(cx));
                guard.disarm();
                let state = state.take().expect("future polled after completion");
                Poll::Ready(result.map(|res| {
                    let mut res = res.map(ResponseBody::new);
                    hook.after(state, &mut res);
                    res
                }))
            }
            KindProj::Short { response } => {
                let response = response.take().expect("future polled after completion");
                Poll::Ready(Ok(ResponseBody::response(response)))
            }
        }
    }
}

impl<H: Hook, F> fmt::Debug for HookFuture<H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(HookFuture))
            .field("hook", &std::any::type_name::<H>())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ObserveService`](crate::ObserveService): named, no allocation,
    /// and its output is the inner future's, unchanged.
    ///
    /// When the inner future completes, the request's drop guard is disarmed; with a response,
    /// [`Observe::after`] runs on it; with an error, the state is dropped. Dropped before that
    /// (or unwound by a panic in the inner future), it drops the state without `after` and
    /// cancels the request's context, if it has one, with
    /// [`CancelCause::Dropped`](crate::CancelCause::Dropped): the same as
    /// [`HookFuture`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ObserveFuture<O: Observe, F> {
        // Built by `ObserveService::call` as a struct literal, so that the inner future is
        // written in place rather than moved through a constructor's argument.
        #[pin]
        pub(crate) future: F,
        pub(crate) observer: O,
        pub(crate) state: Option<O::State>,
        pub(crate) guard: DropGuard,
    }
}

impl<O, F, B, E> Future for ObserveFuture<O, F>
where
    O: Observe,
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The output is edited where it lies and returned as it came: not moved out of `Poll`
        // and back in (a copy of the whole response per layer).
        let mut poll = this.future.poll(cx);
        if let Poll::Ready(result) = &mut poll {
            this.guard.disarm();
            let state = this.state.take().expect("future polled after completion");
            if let Ok(res) = result {
                this.observer.after(state, res);
            }
        }
        poll
    }
}

impl<O: Observe, F> fmt::Debug for ObserveFuture<O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ObserveFuture))
            .field("observer", &std::any::type_name::<O>())
            .finish_non_exhaustive()
    }
}
