//! The response future the admission layers share: the concurrency limit
//! ([`limit`](crate::limit)) and the rate limit ([`rate_limit`](crate::rate_limit)). A request
//! is answered at once (rejected), called at once (admitted), or waits with its ready service
//! for a decision (a permit, a store's answer) and is then called or answered.
//!
//! Each layer's public `ResponseFuture` is a newtype around [`AdmissionFuture`], with its own
//! [`Pending`] decision and [`Grant`].

use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::{Context, RequestExt, ResponseBody};
use tower_service::Service;

/// A decision still to come, polled while the request waits.
pub(crate) trait Pending: Future {
    /// What an admitted request holds until its response: a permit, the headers to add.
    type Grant;

    /// Why a request is turned away.
    type Refusal;

    /// The grant for `decision` (`None`: admitted with nothing to hold), or the refusal.
    fn admit(
        self: Pin<&mut Self>,
        decision: Self::Output,
    ) -> Result<Option<Self::Grant>, Self::Refusal>;

    /// The response to a refused request, rendered with the request's context `cx`.
    fn refuse(self: Pin<&mut Self>, refusal: Self::Refusal, cx: &Context) -> Response<Bytes>;
}

/// What an admitted request holds until its response, and what it does to it.
pub(crate) trait Grant<B>: Sized {
    /// The response body, inside [`ResponseBody`].
    type Body;

    /// The inner service's response, with the grant applied and its body wrapped in
    /// [`ResponseBody`]: in one `Response::map`, so the head is moved once.
    fn respond(grant: Option<Self>, res: Response<B>) -> Response<ResponseBody<Self::Body>>;
}

pin_project_lite::pin_project! {
    /// The response future of an admission layer: `P` the decision a request waits for, `G`
    /// what it holds once admitted.
    pub(crate) struct AdmissionFuture<S, R, P, G>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R, S::Future, P, G>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, R, F, P, G> {
        Rejected { response: Option<Response<Bytes>> },
        Waiting {
            #[pin]
            pending: P,
            // The ready service and the request, until the decision. Boxed: only a request
            // that waits pays for it, and the request would make every state (and so every
            // response future) as large.
            call: Option<Box<(S, R)>>,
        },
        Running {
            #[pin]
            future: F,
            grant: Option<G>,
        },
    }
}

impl<S, R, P, G> AdmissionFuture<S, R, P, G>
where
    S: Service<R>,
{
    /// Answered at once with `response`, without calling the service.
    pub(crate) const fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    /// Admitted at once: the service was called, and `future` holds `grant` until it answers.
    #[inline]
    pub(crate) const fn running(future: S::Future, grant: Option<G>) -> Self {
        Self {
            state: State::Running { future, grant },
        }
    }

    /// Waits for `pending` with the ready `service` and the `request`.
    pub(crate) fn waiting(pending: P, service: S, request: R) -> Self {
        Self {
            state: State::Waiting {
                pending,
                call: Some(Box::new((service, request))),
            },
        }
    }

    /// The state, for `Debug`: `rejected`, `running`, or `waiting` (the layer's name for it).
    pub(crate) const fn state(&self, waiting: &'static str) -> &'static str {
        match &self.state {
            State::Rejected { .. } => "rejected",
            State::Waiting { .. } => waiting,
            State::Running { .. } => "running",
        }
    }
}

impl<S, ReqBody, ResBody, P, G> Future for AdmissionFuture<S, Request<ReqBody>, P, G>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    P: Pending<Grant = G>,
    G: Grant<ResBody>,
{
    type Output = Result<Response<ResponseBody<G::Body>>, S::Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // The common case first, outside the loop: admitted at once, the inner future running.
        if let StateProj::Running { future, grant } = self.as_mut().project().state.project() {
            let result = ready!(future.poll(cx));
            return Poll::Ready(result.map(|res| G::respond(grant.take(), res)));
        }
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(ResponseBody::response(
                        response.take().expect("future polled after completion"),
                    )));
                }
                StateProj::Waiting { mut pending, call } => {
                    let decision = ready!(pending.as_mut().poll(cx));
                    let call = call.take().expect("future polled after completion");
                    let (mut service, mut request) = *call;
                    match pending.as_mut().admit(decision) {
                        // The service taken ready in `call` is the one called.
                        Ok(grant) => State::Running {
                            future: service.call(request),
                            grant,
                        },
                        Err(refusal) => {
                            // The unused service goes, with its readiness, right now.
                            drop(service);
                            State::Rejected {
                                response: Some(pending.refuse(refusal, request.context())),
                            }
                        }
                    }
                }
                StateProj::Running { future, grant } => {
                    let result = ready!(future.poll(cx));
                    let grant = grant.take();
                    return Poll::Ready(result.map(|res| G::respond(grant, res)));
                }
            };
            // Leaving `Waiting` drops the pending decision (and what it holds: a queue place).
            self.as_mut().project().state.set(next);
        }
    }
}
