//! The hand-written baseline: minimal tower layers with pin-project-lite futures, the limit any
//! framework can reach. Same work as every other variant:
//!
//! - bearer auth: SHA-256 of the presented credential compared in constant time with the
//!   configured digest (the same constant-time-over-digests scheme our std auth uses);
//! - a log event to a disabled subscriber at completion (method, status, latency);
//! - a `Server-Timing: total;dur=…` response header;
//! - a 30 s timeout (timer armed in `call`, like tower's);
//! - `catch_unwind` around `call` and every poll.
//!
//! For the outbound stack (`hand-outbound`): a minimal `tower::retry::Policy` and a minimal
//! consecutive-failures circuit breaker, used with tower's `Retry` and `Timeout`.

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{HeaderValue, Request, Response, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

// ----- auth ---------------------------------------------------------------------------------

#[derive(Clone)]
pub struct AuthLayer {
    digest: [u8; 32],
}

impl AuthLayer {
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(format!("Bearer {token}")).into(),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            digest: self.digest,
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    digest: [u8; 32],
}

pub fn credential_ok(header: Option<&HeaderValue>, digest: &[u8; 32]) -> bool {
    header.is_some_and(|value| {
        let presented: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        bool::from(presented.ct_eq(digest))
    })
}

impl<S, B, RB> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if credential_ok(req.headers().get(header::AUTHORIZATION), &self.digest) {
            AuthFuture::Inner {
                future: self.inner.call(req),
            }
        } else {
            let mut res = Response::new(RB::default());
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            AuthFuture::Reject { res: Some(res) }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = AuthProj]
    pub enum AuthFuture<F, RB> {
        Inner { #[pin] future: F },
        Reject { res: Option<Response<RB>> },
    }
}

impl<F, RB, E> Future for AuthFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AuthProj::Inner { future } => future.poll(cx),
            AuthProj::Reject { res } => {
                Poll::Ready(Ok(res.take().expect("polled after completion")))
            }
        }
    }
}

// ----- log ----------------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub struct LogLayer;

impl<S> Layer<S> for LogLayer {
    type Service = Log<S>;

    fn layer(&self, inner: S) -> Log<S> {
        Log { inner }
    }
}

#[derive(Clone)]
pub struct Log<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for Log<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = LogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        LogFuture {
            method: req.method().clone(),
            start: Instant::now(),
            future: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct LogFuture<F> {
        method: http::Method,
        start: Instant,
        #[pin]
        future: F,
    }
}

impl<F, RB, E> Future for LogFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        let status = result.as_ref().map_or(500, |r| r.status().as_u16());
        tracing::info!(
            method = %this.method,
            status,
            latency_us = u64::try_from(this.start.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        Poll::Ready(result)
    }
}

// ----- server-timing ------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub struct TimingLayer;

impl<S> Layer<S> for TimingLayer {
    type Service = Timing<S>;

    fn layer(&self, inner: S) -> Timing<S> {
        Timing { inner }
    }
}

#[derive(Clone)]
pub struct Timing<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for Timing<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = TimingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        TimingFuture {
            start: Instant::now(),
            future: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct TimingFuture<F> {
        start: Instant,
        #[pin]
        future: F,
    }
}

pub fn server_timing(elapsed: Duration) -> HeaderValue {
    let value = format!("total;dur={:.3}", elapsed.as_secs_f64() * 1000.0);
    HeaderValue::try_from(value).expect("ascii")
}

impl<F, RB, E> Future for TimingFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.future.poll(cx));
        if let Ok(res) = &mut result {
            res.headers_mut()
                .insert("server-timing", server_timing(this.start.elapsed()));
        }
        Poll::Ready(result)
    }
}

// ----- timeout ------------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub struct TimeoutLayer(pub Duration);

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            timeout: self.0,
        }
    }
}

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B, RB> Service<Request<B>> for Timeout<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        TimeoutFuture {
            sleep: tokio::time::sleep(self.timeout),
            future: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct TimeoutFuture<F> {
        #[pin]
        sleep: Sleep,
        #[pin]
        future: F,
    }
}

impl<F, RB, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.future.poll(cx) {
            return Poll::Ready(result);
        }
        ready!(this.sleep.poll(cx));
        let mut res = Response::new(RB::default());
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Poll::Ready(Ok(res))
    }
}

// ----- catch-panic --------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

#[derive(Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

fn internal_error<RB: Default>() -> Response<RB> {
    let mut res = Response::new(RB::default());
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}

impl<S, B, RB> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => CatchPanicFuture::Inner { future },
            Err(_) => CatchPanicFuture::Panicked {
                res: Some(internal_error()),
            },
        }
    }
}

pin_project_lite::pin_project! {
    #[project = CatchPanicProj]
    pub enum CatchPanicFuture<F, RB> {
        Inner { #[pin] future: F },
        Panicked { res: Option<Response<RB>> },
    }
}

impl<F, RB, E> Future for CatchPanicFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CatchPanicProj::Inner { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(poll) => poll,
                    Err(_) => Poll::Ready(Ok(internal_error())),
                }
            }
            CatchPanicProj::Panicked { res } => {
                Poll::Ready(Ok(res.take().expect("polled after completion")))
            }
        }
    }
}

// ----- outbound: a minimal retry policy and circuit breaker ---------------------------------
//
// The hand-written twin of our outbound stack (`call_timeout` + `retry` + `breaker`) is tower's
// `Timeout` inside tower's `Retry` with the policy below, inside the breaker below: the least
// code that does the same job on the success path.

/// Retries an error or a `5xx` up to `attempts` in all, at once (no backoff, no budget).
#[derive(Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
}

impl<B: Clone, RB, E> tower::retry::Policy<Request<B>, Response<RB>, E> for RetryPolicy {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<B>,
        result: &mut Result<Response<RB>, E>,
    ) -> Option<Self::Future> {
        let failed = result
            .as_ref()
            .map_or(true, |res| res.status().is_server_error());
        if failed && self.attempts > 1 {
            self.attempts -= 1;
            Some(std::future::ready(()))
        } else {
            None
        }
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        let mut copy = Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        Some(copy)
    }
}

/// The breaker's shared state: consecutive failures, and when the open circuit may be tried
/// again (nanoseconds since `epoch`, 0 when closed).
pub struct BreakerState {
    failures: std::sync::atomic::AtomicU32,
    open_until: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

/// A minimal circuit breaker: opens for `COOL_DOWN` after `THRESHOLD` failures (errors or
/// `5xx`) in a row; while open, calls fail at once. No half-open probe limit, no failure rate.
#[derive(Clone)]
pub struct BreakerLayer(std::sync::Arc<BreakerState>);

impl BreakerLayer {
    const THRESHOLD: u32 = 5;
    const COOL_DOWN: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        Self(std::sync::Arc::new(BreakerState {
            failures: std::sync::atomic::AtomicU32::new(0),
            open_until: std::sync::atomic::AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }))
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            state: std::sync::Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct Breaker<S> {
    inner: S,
    state: std::sync::Arc<BreakerState>,
}

/// The error of an open circuit.
#[derive(Debug)]
pub struct BreakerOpen;

impl std::fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("circuit open")
    }
}

impl std::error::Error for BreakerOpen {}

impl<S, B, RB> Service<Request<B>> for Breaker<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<tower::BoxError>,
{
    type Response = Response<RB>;
    type Error = tower::BoxError;
    type Future = BreakerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        use std::sync::atomic::Ordering;
        let open_until = self.state.open_until.load(Ordering::Relaxed);
        if open_until != 0 {
            let now = u64::try_from(self.state.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if now < open_until {
                return BreakerFuture::Open;
            }
        }
        BreakerFuture::Called {
            future: self.inner.call(req),
            state: std::sync::Arc::clone(&self.state),
        }
    }
}

pin_project_lite::pin_project! {
    #[project = BreakerProj]
    pub enum BreakerFuture<F> {
        Called { #[pin] future: F, state: std::sync::Arc<BreakerState> },
        Open,
    }
}

impl<F, RB, E> Future for BreakerFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<tower::BoxError>,
{
    type Output = Result<Response<RB>, tower::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        use std::sync::atomic::Ordering;
        match self.project() {
            BreakerProj::Called { future, state } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                let failed = result
                    .as_ref()
                    .map_or(true, |res| res.status().is_server_error());
                if !failed {
                    if state.failures.load(Ordering::Relaxed) != 0 {
                        state.failures.store(0, Ordering::Relaxed);
                        state.open_until.store(0, Ordering::Relaxed);
                    }
                } else if state.failures.fetch_add(1, Ordering::Relaxed) + 1
                    >= BreakerLayer::THRESHOLD
                {
                    let until = state.epoch.elapsed() + BreakerLayer::COOL_DOWN;
                    let until = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
                    state.open_until.store(until.max(1), Ordering::Relaxed);
                }
                Poll::Ready(result)
            }
            BreakerProj::Open => Poll::Ready(Err(BreakerOpen.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{
            Arc,
            atomic::{AtomicU32, Ordering},
        },
    };

    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    /// An upstream answering `status`, counting its calls.
    fn upstream(
        status: u16,
        calls: &Arc<AtomicU32>,
    ) -> impl Service<
        Request<()>,
        Response = Response<()>,
        Error = Infallible,
        Future = std::future::Ready<Result<Response<()>, Infallible>>,
    > + Clone {
        let calls = Arc::clone(calls);
        service_fn(move |_: Request<()>| {
            calls.fetch_add(1, Ordering::Relaxed);
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::from_u16(status).expect("valid status");
            std::future::ready(Ok(res))
        })
    }

    #[tokio::test]
    async fn hand_retry_policy_tries_a_failing_call_three_times() {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(RetryPolicy { attempts: 3 }))
            .service(upstream(503, &calls));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn hand_retry_policy_sends_a_successful_call_once() {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(RetryPolicy { attempts: 3 }))
            .service(upstream(200, &calls));
        assert_eq!(svc.oneshot(Request::new(())).await.unwrap().status(), 200);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn hand_breaker_opens_after_five_failures_in_a_row() {
        let calls = Arc::new(AtomicU32::new(0));
        let breaker = BreakerLayer::new();
        let svc = breaker.layer(upstream(500, &calls));
        for _ in 0..5 {
            let res = svc.clone().oneshot(Request::new(())).await.unwrap();
            assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
        let err = svc.clone().oneshot(Request::new(())).await.unwrap_err();
        assert!(err.is::<BreakerOpen>(), "{err}");
        assert_eq!(
            calls.load(Ordering::Relaxed),
            5,
            "the open circuit calls nothing"
        );
    }

    #[tokio::test]
    async fn hand_breaker_success_resets_the_failure_count() {
        let calls = Arc::new(AtomicU32::new(0));
        let breaker = BreakerLayer::new();
        let failing = breaker.layer(upstream(500, &calls));
        let working = breaker.layer(upstream(200, &calls));
        for _ in 0..4 {
            failing.clone().oneshot(Request::new(())).await.unwrap();
        }
        working.clone().oneshot(Request::new(())).await.unwrap();
        for _ in 0..4 {
            failing.clone().oneshot(Request::new(())).await.unwrap();
        }
        assert_eq!(
            working.oneshot(Request::new(())).await.unwrap().status(),
            200
        );
    }
}

// ----- concurrency limit held to the end of the body ----------------------------------------
//
// The same work as our `ConcurrencyLimitLayer` (and not tower's, which gives the place back at
// the response head, so a streamed response is not counted): at most N requests inside, the
// N+1th answered `503` at once, and the place held by the response body until it ends or is
// dropped.

#[derive(Clone)]
pub struct HeldLimitLayer(std::sync::Arc<tokio::sync::Semaphore>);

impl HeldLimitLayer {
    pub fn new(max: usize) -> Self {
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(max)))
    }
}

impl<S> Layer<S> for HeldLimitLayer {
    type Service = HeldLimit<S>;

    fn layer(&self, inner: S) -> HeldLimit<S> {
        HeldLimit {
            inner,
            places: std::sync::Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct HeldLimit<S> {
    inner: S,
    places: std::sync::Arc<tokio::sync::Semaphore>,
}

impl<S, B, RB> Service<Request<B>> for HeldLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<HeldBody<RB>>;
    type Error = S::Error;
    type Future = HeldFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match std::sync::Arc::clone(&self.places).try_acquire_owned() {
            Ok(permit) => HeldFuture::Running {
                future: self.inner.call(req),
                permit: Some(permit),
            },
            Err(_) => HeldFuture::Shed,
        }
    }
}

pin_project_lite::pin_project! {
    #[project = HeldProj]
    pub enum HeldFuture<F> {
        Running { #[pin] future: F, permit: Option<tokio::sync::OwnedSemaphorePermit> },
        Shed,
    }
}

impl<F, RB, E> Future for HeldFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Default,
{
    type Output = Result<Response<HeldBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            HeldProj::Running { future, permit } => {
                let res = ready!(future.poll(cx))?;
                let permit = permit.take();
                Poll::Ready(Ok(res.map(|body| HeldBody { body, permit })))
            }
            HeldProj::Shed => {
                let mut res = Response::new(HeldBody {
                    body: RB::default(),
                    permit: None,
                });
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                Poll::Ready(Ok(res))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body holding its request's place until it ends or is dropped.
    pub struct HeldBody<B> {
        #[pin]
        body: B,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    }
}

impl<B: http_body::Body> http_body::Body for HeldBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.body.as_mut().poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) || this.body.is_end_stream() {
            *this.permit = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

// ----- the same limit with our layer's observable behaviour ---------------------------------
//
// `HeldLimit` plus what `ConcurrencyLimitLayer` promises beyond it: the shed request gets a
// problem-details `503` (a body of its own, so the response body is an either-body); a
// response body that failed never ends cleanly afterwards (a cut response must not look
// complete); a body already at its end gives the place back at the head; and the layer's own
// time is recorded when the request's context asks for per-layer times (`Server-Timing`'s
// `mw.limit`). The same observable work as ours, written by hand.

#[derive(Clone)]
pub struct StrictLimitLayer(std::sync::Arc<tokio::sync::Semaphore>);

impl StrictLimitLayer {
    pub fn new(max: usize) -> Self {
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(max)))
    }
}

impl<S> Layer<S> for StrictLimitLayer {
    type Service = StrictLimit<S>;

    fn layer(&self, inner: S) -> StrictLimit<S> {
        StrictLimit {
            inner,
            places: std::sync::Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct StrictLimit<S> {
    inner: S,
    places: std::sync::Arc<tokio::sync::Semaphore>,
}

impl<S, B, RB> Service<Request<B>> for StrictLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: http_body::Body,
{
    type Response = Response<StrictBody<RB>>;
    type Error = S::Error;
    type Future = StrictFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = req
            .extensions()
            .get::<middleware_std::Context>()
            .is_some_and(middleware_std::Context::layer_times_requested)
            .then(Instant::now);
        let acquired = std::sync::Arc::clone(&self.places).try_acquire_owned();
        if let Some(started) = started {
            if let Some(cx) = req.extensions().get::<middleware_std::Context>() {
                cx.mark("mw.limit", started.elapsed());
            }
        }
        match acquired {
            Ok(permit) => StrictFuture::Running {
                future: self.inner.call(req),
                permit: Some(permit),
            },
            Err(_) => StrictFuture::Shed,
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StrictProj]
    pub enum StrictFuture<F> {
        Running { #[pin] future: F, permit: Option<tokio::sync::OwnedSemaphorePermit> },
        Shed,
    }
}

/// The shed request's problem details.
const SHED: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503}"#;

impl<F, RB, E> Future for StrictFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: http_body::Body,
{
    type Output = Result<Response<StrictBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StrictProj::Running { future, permit } => {
                let res = ready!(future.poll(cx))?;
                let permit = permit.take();
                Poll::Ready(Ok(res.map(|body| {
                    // A body already at its end gives the place back at the head.
                    let permit = if body.is_end_stream() { None } else { permit };
                    StrictBody::Held {
                        body,
                        permit,
                        failed: false,
                    }
                })))
            }
            StrictProj::Shed => {
                let mut res = Response::new(StrictBody::Shed {
                    data: Some(bytes::Bytes::from_static(SHED.as_bytes())),
                });
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let headers = res.headers_mut();
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
                Poll::Ready(Ok(res))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The shed response's own body, or the inner body holding its place until it ends, fails
    /// or is dropped; after an error it never ends cleanly.
    #[project = StrictBodyProj]
    pub enum StrictBody<B> {
        Shed { data: Option<bytes::Bytes> },
        Held {
            #[pin]
            body: B,
            permit: Option<tokio::sync::OwnedSemaphorePermit>,
            failed: bool,
        },
    }
}

impl<B: http_body::Body<Data = bytes::Bytes>> http_body::Body for StrictBody<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        match self.project() {
            StrictBodyProj::Shed { data } => {
                Poll::Ready(data.take().map(|data| Ok(http_body::Frame::data(data))))
            }
            StrictBodyProj::Held {
                mut body,
                permit,
                failed,
            } => {
                if *failed {
                    return Poll::Pending;
                }
                let frame = ready!(body.as_mut().poll_frame(cx));
                match &frame {
                    Some(Err(_)) => {
                        *failed = true;
                        *permit = None;
                    }
                    None => *permit = None,
                    Some(Ok(_)) if body.is_end_stream() => *permit = None,
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Shed { data } => data.is_none(),
            Self::Held { body, failed, .. } => !failed && body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Self::Shed { data } => {
                http_body::SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Self::Held { failed: true, .. } => http_body::SizeHint::new(),
            Self::Held { body, .. } => body.size_hint(),
        }
    }
}
