//! The services: [`Timeout`], [`RequestBodyTimeout`], [`PropagateDeadline`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::AtomicBool},
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use http::{Request, Response};
use http_body::Body;
use middleware_core::{RequestExt, ResponseBody};
use tokio::time::Sleep;
use tower_service::Service;

use crate::layer_time;

use super::{
    body::{BodyDeadlines, TimeoutBody},
    error::{MalformedDeadlineHeader, TimeoutPhase},
    future::{Expiry, RequestBodyTimeoutFuture, ResponseFuture},
    layer::{PropagateDeadlineLayer, RequestBodyTimeoutLayer, TimeoutLayer},
};

/// Enforces a whole-request budget on `S`. See [`TimeoutLayer`] and the
/// [module docs](super) for an example.
///
/// `poll_ready` forwards the inner service's readiness for one budget at most; after that the
/// next request is answered with the timeout response (`x-timeout-phase: ready`) without
/// calling the inner service (see "One budget for every phase" in the [module docs](super)).
pub struct Timeout<S> {
    inner: S,
    layer: TimeoutLayer,
    expiry: Arc<Expiry>,
    // Armed when the inner service first answered `Pending` to `poll_ready`: the longest wait
    // for readiness (one budget). Boxed: only unready services pay for it.
    unready: Option<Pin<Box<Sleep>>>,
    // The inner service stayed unready for the whole budget: `poll_ready` reported ready
    // anyway, and the next `call` answers the timeout response without calling it.
    shed: bool,
}

impl<S: Clone> Clone for Timeout<S> {
    fn clone(&self) -> Self {
        // A clone is a new handle: it has not waited for readiness yet.
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
            expiry: Arc::clone(&self.expiry),
            unready: None,
            shed: false,
        }
    }
}

impl<S> Timeout<S> {
    /// Wraps `inner` with a budget of `budget` (`503` on expiry).
    pub fn new(inner: S, budget: Duration) -> Self {
        Self::from_layer(inner, TimeoutLayer::new(budget))
    }

    /// The layer form, same as [`TimeoutLayer::new`].
    pub const fn layer(budget: Duration) -> TimeoutLayer {
        TimeoutLayer::new(budget)
    }

    pub(crate) fn from_layer(inner: S, layer: TimeoutLayer) -> Self {
        let expiry = Arc::new(Expiry {
            on_timeout: layer.on_timeout.clone(),
            response_body: layer.response_body,
            cancel_on_drop: true,
        });
        Self {
            inner,
            layer,
            expiry,
            unready: None,
            shed: false,
        }
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for Timeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `expiry` is derived from `layer`.
        f.debug_struct(stringify!(Timeout))
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .field("waiting_for_readiness", &self.unready.is_some())
            .field("shed", &self.shed)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Timeout<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<TimeoutBody<ResponseBody<ResBody>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is forwarded (backpressure stays honest), for one budget at most.
        if let Poll::Ready(ready) = self.inner.poll_ready(cx) {
            self.unready = None;
            self.shed = false;
            return Poll::Ready(ready);
        }
        let budget = self.layer.budget;
        let timer = self
            .unready
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(budget)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Unready for the whole budget: the request waiting for this handle is answered with
        // the timeout response (phase `ready`) instead of waiting on.
        self.unready = None;
        self.shed = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The layer's own time, for a timing layer that asks for it: the clock is read only
        // then.
        let started = layer_time::wanted(req.try_context()).then(tokio::time::Instant::now);
        let mut budget = self.layer.budget;
        let mut inbound_tighter = false;
        let mut malformed = false;
        if let Some((name, format)) = &self.layer.inbound {
            match format.read_header(req.headers(), name) {
                Ok(Some(inbound)) => {
                    (budget, inbound_tighter) =
                        budget_in_force(budget, inbound, self.layer.inbound_floor);
                }
                Ok(None) => {}
                Err(()) => malformed = true,
            }
        }
        let cx = req.context();
        if malformed {
            cx.insert(MalformedDeadlineHeader);
        }
        // Nested budgets: the earliest deadline wins. The client's deadline is the one in force
        // only if it tightened the deadline already set (if any).
        let before = cx.deadline();
        let in_force = cx.set_timeout(budget);
        let by_client = inbound_tighter && before.is_none_or(|before| in_force < before);
        let cx = cx.clone();
        if let Some(started) = started {
            layer_time::record(Some(&cx), "mw.timeout", started.elapsed());
        }
        let expiry = Arc::clone(&self.expiry);
        if std::mem::take(&mut self.shed) {
            // `poll_ready` gave up waiting: the inner service is not ready, so it is not called.
            return ResponseFuture::expired(cx, expiry, TimeoutPhase::Ready);
        }
        // Called right here: the service that reported ready is the one called.
        let future = self.inner.call(req);
        ResponseFuture::new(future, cx, expiry).by_client(by_client)
    }
}

/// The budget in force for a server budget `server` and a caller's deadline `inbound`, and
/// whether the caller's is the tighter one: `min(max(inbound, floor), server)`. Below the
/// floor, the caller's deadline is raised to it (no work could finish in time, and a client
/// must not mint timeouts at will); the floor never lengthens the server's budget.
pub(crate) fn budget_in_force(
    server: Duration,
    inbound: Duration,
    floor: Duration,
) -> (Duration, bool) {
    let inbound = inbound.max(floor);
    if inbound < server {
        (inbound, true)
    } else {
        (server, false)
    }
}

/// Enforces request-body read deadlines on `S`. See [`RequestBodyTimeoutLayer`] and the
/// [module docs](super) for an example.
#[derive(Clone)]
pub struct RequestBodyTimeout<S> {
    inner: S,
    layer: RequestBodyTimeoutLayer,
}

impl<S> RequestBodyTimeout<S> {
    /// Wraps `inner` with both deadlines.
    pub const fn new(inner: S, idle: Duration, total: Duration) -> Self {
        Self::from_layer(inner, RequestBodyTimeoutLayer::new(idle, total))
    }

    /// The layer form, same as [`RequestBodyTimeoutLayer::new`].
    pub const fn layer(idle: Duration, total: Duration) -> RequestBodyTimeoutLayer {
        RequestBodyTimeoutLayer::new(idle, total)
    }

    pub(crate) const fn from_layer(inner: S, layer: RequestBodyTimeoutLayer) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for RequestBodyTimeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(RequestBodyTimeout))
            .field("inner", &self.inner)
            .field("idle", &self.layer.deadlines.idle)
            .field("total", &self.layer.deadlines.total)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestBodyTimeout<S>
where
    S: Service<Request<TimeoutBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = RequestBodyTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let deadlines = self.layer.deadlines;
        // The context an outer layer made, if any (never created here): cloned, not allocated.
        let cx = parts.try_context().cloned();
        // The layer's own time, for a timing layer that asks for it: the clock is read only
        // then.
        let started = layer_time::wanted(cx.as_ref()).then(tokio::time::Instant::now);
        let (body, signal) = if body.is_end_stream() {
            // An empty body can neither stall nor fail: no signal, no timer, no allocation.
            (
                TimeoutBody::passthrough(body, TimeoutPhase::RequestBody),
                None,
            )
        } else {
            // The flag is the one allocation, and only with deadlines. The context's clone
            // is cancelled with `Dropped` if the body fails (the peer went away mid-body),
            // with or without deadlines.
            let signal = (!deadlines.is_none()).then(|| Arc::new(AtomicBool::new(false)));
            let body = TimeoutBody::request(body, deadlines, signal.clone(), cx.clone());
            (body, signal)
        };
        if let Some(started) = started {
            layer_time::record(cx.as_ref(), "mw.request_body_timeout", started.elapsed());
        }
        let future = self.inner.call(Request::from_parts(parts, body));
        RequestBodyTimeoutFuture::new(future, signal, cx)
    }
}

/// Stamps and enforces the remaining budget on outgoing requests. See
/// [`PropagateDeadlineLayer`] and the [module docs](super) for an example.
#[derive(Clone)]
pub struct PropagateDeadline<S> {
    inner: S,
    layer: PropagateDeadlineLayer,
    expiry: Arc<Expiry>,
}

impl<S> PropagateDeadline<S> {
    /// Wraps `inner`, stamping `grpc-timeout`.
    pub fn new(inner: S) -> Self {
        Self::from_layer(inner, PropagateDeadlineLayer::new())
    }

    /// The layer form, same as [`PropagateDeadlineLayer::new`].
    pub const fn layer() -> PropagateDeadlineLayer {
        PropagateDeadlineLayer::new()
    }

    pub(crate) fn from_layer(inner: S, layer: PropagateDeadlineLayer) -> Self {
        let expiry = Arc::new(Expiry {
            on_timeout: layer.on_timeout.clone(),
            response_body: BodyDeadlines::default(),
            // Giving up on one outgoing call does not end the request that made it.
            cancel_on_drop: false,
        });
        Self {
            inner,
            layer,
            expiry,
        }
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for PropagateDeadline<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `expiry` is derived from `layer`.
        f.debug_struct(stringify!(PropagateDeadline))
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PropagateDeadline<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<TimeoutBody<ResponseBody<ResBody>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let expiry = Arc::clone(&self.expiry);
        let Some((cx, remaining)) = req
            .try_context()
            .and_then(|cx| Some((cx.clone(), cx.remaining()?)))
        else {
            return ResponseFuture::unbounded(self.inner.call(req), expiry);
        };
        if remaining.is_zero() {
            // Spent already: do not send a request that cannot finish in time.
            return ResponseFuture::expired(cx, expiry, TimeoutPhase::Head);
        }
        req.headers_mut()
            .insert(&self.layer.header, self.layer.format.encode(remaining));
        let future = self.inner.call(req);
        ResponseFuture::new(future, cx, expiry)
    }
}

// ----- stack introspection -----

impl<S: middleware_core::Describe> middleware_core::Describe for Timeout<S> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.layer.describe(description);
        self.inner.describe(description);
    }
}

impl<S: middleware_core::Describe> middleware_core::Describe for RequestBodyTimeout<S> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.layer.describe(description);
        self.inner.describe(description);
    }
}

impl<S: middleware_core::Describe> middleware_core::Describe for PropagateDeadline<S> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.layer.describe(description);
        self.inner.describe(description);
    }
}
