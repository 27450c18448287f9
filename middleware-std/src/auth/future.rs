//! The [`ResponseFuture`] of [`Auth`](super::Auth).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll, ready},
};

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::ResponseBody;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{Principal, Rejection, layer::Settings};

pin_project! {
    /// Response future of [`Auth`](super::Auth): a pending validation, then the inner call, or
    /// a rejection.
    ///
    /// A validator's future is stored as it is (no boxing); static credentials are checked in
    /// `call`, so their requests go straight to the inner future. Unlike the other
    /// `ResponseFuture`s of this crate it is generic over the inner service `S` (held, ready,
    /// while a validator runs, then called), the request body and the validator's future `V`.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, ReqBody, V>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S::Future, V>,
        // Boxed: only an asynchronous validation needs it, and a request is large.
        pending: Option<Box<Pending<S, ReqBody>>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, V> {
        Validating { #[pin] validation: V },
        Called { #[pin] future: F },
        Rejected { response: Option<Response<Bytes>> },
    }
}

/// What a pending validation needs to call the inner service afterwards.
struct Pending<S, ReqBody> {
    request: Request<ReqBody>,
    inner: S,
    settings: Arc<Settings>,
}

impl<S, ReqBody, V> ResponseFuture<S, ReqBody, V>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn called(future: S::Future) -> Self {
        Self {
            state: State::Called { future },
            pending: None,
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
            pending: None,
        }
    }

    pub(crate) fn validating(
        validation: V,
        request: Request<ReqBody>,
        inner: S,
        settings: Arc<Settings>,
    ) -> Self {
        Self {
            state: State::Validating { validation },
            pending: Some(Box::new(Pending {
                request,
                inner,
                settings,
            })),
        }
    }
}

impl<S, ReqBody, ResBody, V> Future for ResponseFuture<S, ReqBody, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    V: Future<Output = Result<Principal, Rejection>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::new)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().expect("future polled after completion");
                    return Poll::Ready(Ok(ResponseBody::response(response)));
                }
                StateProj::Validating { validation } => {
                    let verdict = ready!(validation.poll(cx));
                    let Pending {
                        mut request,
                        mut inner,
                        settings,
                    } = *this.pending.take().expect("future polled after completion");
                    let next = match verdict {
                        Ok(principal) => match settings.admit(principal, &mut request) {
                            None => State::Called {
                                future: inner.call(request),
                            },
                            Some(forbidden) => State::Rejected {
                                response: Some(forbidden),
                            },
                        },
                        Err(Rejection { .. }) => State::Rejected {
                            response: Some(settings.unauthorized(&request)),
                        },
                    };
                    this.state.set(next);
                }
            }
        }
    }
}

impl<S, ReqBody, V> fmt::Debug for ResponseFuture<S, ReqBody, V>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Validating { .. } => "validating",
            State::Called { .. } => "called",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct(stringify!(ResponseFuture))
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
