//! The hand-written baseline: minimal tower layers with pin-project-lite futures, the limit any
//! framework can reach. Same work as every other variant:
//!
//! - bearer auth: SHA-256 of the presented credential compared in constant time with the
//!   configured digest (the same constant-time-over-digests scheme our std auth uses);
//! - a log event to a disabled subscriber at completion (method, status, latency);
//! - a `Server-Timing: total;dur=…` response header;
//! - a 30 s timeout (timer armed in `call`, like tower's);
//! - `catch_unwind` around `call` and every poll.

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
