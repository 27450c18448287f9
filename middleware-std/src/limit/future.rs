//! [`ResponseFuture`] of [`ConcurrencyLimit`](super::ConcurrencyLimit), the queue and the
//! rejections.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant as StdInstant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use middleware_core::{Context, Error, Expiry, ResponseBody, TimeoutPhase};
use tokio::{
    sync::OwnedSemaphorePermit,
    time::{Instant, timeout_at},
};
use tower_service::Service;

use super::{body::PermitBody, layer::Shared};
use crate::admission::{AdmissionFuture, Grant, Pending};

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

/// A request in the queue: the permit it waits for, and its place.
pub(crate) struct Queued {
    acquire: Acquire,
    // Dropped with the future's waiting state: leaving the queue on every path.
    waiting: WaitGuard,
}

impl Future for Queued {
    type Output = Result<OwnedSemaphorePermit, Rejection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.acquire.as_mut().poll(cx)
    }
}

impl Pending for Queued {
    type Grant = OwnedSemaphorePermit;
    type Refusal = Rejection;

    fn admit(
        self: Pin<&mut Self>,
        decision: Self::Output,
    ) -> Result<Option<OwnedSemaphorePermit>, Rejection> {
        decision.map(Some)
    }

    fn refuse(self: Pin<&mut Self>, rejection: Rejection, cx: &Context) -> Response<Bytes> {
        rejection.response(&self.waiting.0, cx)
    }
}

impl<B: Body> Grant<B> for OwnedSemaphorePermit {
    type Body = PermitBody<B>;

    #[inline]
    fn respond(permit: Option<Self>, res: Response<B>) -> Response<ResponseBody<PermitBody<B>>> {
        res.map(|body| {
            // A body already at its end gives the place back at the head.
            let permit = if body.is_end_stream() { None } else { permit };
            ResponseBody::new(PermitBody::new(body, permit))
        })
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ConcurrencyLimit`](super::ConcurrencyLimit).
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        inner: AdmissionFuture<S, R, Queued, OwnedSemaphorePermit>,
    }
}

impl<S, R> ResponseFuture<S, R>
where
    S: Service<R>,
{
    pub(crate) const fn rejected(response: Response<Bytes>) -> Self {
        Self {
            inner: AdmissionFuture::rejected(response),
        }
    }

    #[inline]
    pub(crate) const fn running(future: S::Future, permit: OwnedSemaphorePermit) -> Self {
        Self {
            inner: AdmissionFuture::running(future, Some(permit)),
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
            inner: AdmissionFuture::waiting(Queued { acquire, waiting }, service, request),
        }
    }
}

impl<S, R> fmt::Debug for ResponseFuture<S, R>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("state", &self.inner.state("waiting"))
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, Request<ReqBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Output = Result<Response<ResponseBody<PermitBody<ResBody>>>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
