//! [`ResponseFuture`] of [`ConcurrencyLimit`](super::ConcurrencyLimit), the queue and the
//! rejections.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context as TaskContext, Poll, ready},
    time::{Duration, Instant as StdInstant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use middleware_core::{Context, Error, Expiry, RequestExt, ResponseBody, TimeoutPhase};
use tokio::{
    sync::OwnedSemaphorePermit,
    time::{Instant, timeout_at},
};
use tower_service::Service;

use super::{body::PermitBody, layer::Shared};

/// Why a request was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The limit was full and the queue too (or there is none).
    Overflow,
    /// The waiter's queue timeout passed.
    QueueTimeout,
    /// The request's own deadline passed while it waited.
    Deadline,
}

impl Rejection {
    /// The rejection response, rendered with the request's renderer, with `Retry-After`.
    pub(crate) fn response(self, shared: &Shared, cx: &Context) -> Response<Bytes> {
        let status = match self {
            Self::Overflow => shared.overflow_status,
            Self::QueueTimeout | Self::Deadline => StatusCode::SERVICE_UNAVAILABLE,
        };
        if self == Self::Deadline {
            cx.record_expiry(Expiry::new(TimeoutPhase::Ready));
        }
        let after = shared.retry_after;
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        cx.render_error(
            &Error::new(status).with_header(header::RETRY_AFTER, HeaderValue::from(seconds)),
        )
    }
}

/// A place in the queue, given back when dropped (admitted, timed out or abandoned).
pub(crate) struct WaitGuard(Arc<Shared>);

impl WaitGuard {
    /// Takes a place in the queue, unless `backlog` requests already wait.
    pub(crate) fn enter(shared: &Arc<Shared>) -> Option<Self> {
        shared
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < shared.backlog).then_some(waiting + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(shared)))
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waiting for a permit until a deadline; boxed because tokio's `acquire_owned` future cannot
/// be named. Only a request that has to wait pays this allocation.
type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, Rejection>> + Send>>;

pin_project_lite::pin_project! {
    /// The response future of [`ConcurrencyLimit`](super::ConcurrencyLimit).
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R, S::Future>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, R, F> {
        Rejected { response: Option<Response<Bytes>> },
        Waiting {
            acquire: Acquire,
            // The ready service and the request, until a permit is granted. Boxed: only a
            // request that waits pays for it, and the request would make every state (and so
            // every response future) as large.
            call: Option<Box<(S, R)>>,
            shared: Arc<Shared>,
            // Dropped with this state: leaving the queue on every path.
            waiting: WaitGuard,
        },
        Running {
            #[pin]
            future: F,
            permit: Option<OwnedSemaphorePermit>,
        },
    }
}

impl<S, R> ResponseFuture<S, R>
where
    S: Service<R>,
{
    pub(crate) const fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) const fn running(future: S::Future, permit: OwnedSemaphorePermit) -> Self {
        Self {
            state: State::Running {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn waiting(
        service: S,
        request: R,
        deadline: Option<StdInstant>,
        shared: &Arc<Shared>,
        waiting: WaitGuard,
    ) -> Self {
        let now = Instant::now();
        // A timeout too long to add is as good as none.
        let queue_deadline = now
            .checked_add(shared.queue_timeout)
            .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365));
        let (until, cause) = match deadline.map(Instant::from_std) {
            Some(deadline) if deadline < queue_deadline => (deadline, Rejection::Deadline),
            _ => (queue_deadline, Rejection::QueueTimeout),
        };
        let semaphore = Arc::clone(&shared.semaphore);
        let acquire: Acquire = Box::pin(async move {
            match timeout_at(until, semaphore.acquire_owned()).await {
                Ok(Ok(permit)) => Ok(permit),
                Ok(Err(_closed)) => Err(Rejection::Overflow),
                Err(_elapsed) => Err(cause),
            }
        });
        Self {
            state: State::Waiting {
                acquire,
                call: Some(Box::new((service, request))),
                shared: Arc::clone(shared),
                waiting,
            },
        }
    }
}

impl<S, R> fmt::Debug for ResponseFuture<S, R>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Rejected { .. } => "rejected",
            State::Waiting { .. } => "waiting",
            State::Running { .. } => "running",
        };
        f.debug_struct(stringify!(ResponseFuture))
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, Request<ReqBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Output = Result<Response<ResponseBody<PermitBody<ResBody>>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(ResponseBody::response(
                        response.take().expect("future polled after completion"),
                    )));
                }
                StateProj::Waiting {
                    acquire,
                    call,
                    shared,
                    ..
                } => {
                    let granted = ready!(acquire.as_mut().poll(cx));
                    let call = call.take().expect("future polled after completion");
                    let (mut service, mut request) = *call;
                    match granted {
                        // The service taken ready in `call` is the one called.
                        Ok(permit) => State::Running {
                            future: service.call(request),
                            permit: Some(permit),
                        },
                        Err(rejection) => {
                            // The unused service goes, with its readiness, right now.
                            drop(service);
                            State::Rejected {
                                response: Some(rejection.response(shared, request.context())),
                            }
                        }
                    }
                }
                StateProj::Running { future, permit } => {
                    let result = ready!(future.poll(cx));
                    let permit = permit.take();
                    return Poll::Ready(result.map(|res| {
                        res.map(|body| {
                            // A body already at its end gives the place back at the head.
                            let permit = if body.is_end_stream() { None } else { permit };
                            ResponseBody::new(PermitBody::new(body, permit))
                        })
                    }));
                }
            };
            // Leaving `Waiting` drops its queue place.
            self.as_mut().project().state.set(next);
        }
    }
}
