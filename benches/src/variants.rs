//! The non-hand-written variants: tower-http, axum `from_fn`, and ours written against core.

use std::{ops::ControlFlow, panic::AssertUnwindSafe, time::Duration};

use axum::{
    extract::{Request, State},
    middleware::Next as AxumNext,
    response::{IntoResponse, Response as AxumResponse},
};
use bytes::Bytes;
use futures_util::FutureExt;
use http::{Method, Response, StatusCode, header};
use middleware_std::{Hook, Middleware, Next, Outcome, ResponseBody};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::hand::{credential_ok, server_timing};

/// The digest of the expected `Authorization` value.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(format!("Bearer {token}")).into()
}

// ----- axum from_fn -------------------------------------------------------------------------

pub async fn axum_auth(
    State(digest): State<[u8; 32]>,
    req: Request,
    next: AxumNext,
) -> AxumResponse {
    if !credential_ok(req.headers().get(header::AUTHORIZATION), &digest) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(req).await
}

pub async fn axum_log(req: Request, next: AxumNext) -> AxumResponse {
    let method = req.method().clone();
    let start = Instant::now();
    let res = next.run(req).await;
    tracing::info!(
        method = %method,
        status = res.status().as_u16(),
        latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    res
}

pub async fn axum_timing(req: Request, next: AxumNext) -> AxumResponse {
    let start = Instant::now();
    let mut res = next.run(req).await;
    res.headers_mut()
        .insert("server-timing", server_timing(start.elapsed()));
    res
}

pub async fn axum_timeout(req: Request, next: AxumNext) -> AxumResponse {
    match tokio::time::timeout(Duration::from_secs(30), next.run(req)).await {
        Ok(res) => res,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

pub async fn axum_catch_panic(req: Request, next: AxumNext) -> AxumResponse {
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(res) => res,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

// ----- ours, hook style ---------------------------------------------------------------------

pub struct HookAuth(pub [u8; 32]);

impl Hook for HookAuth {
    type State = ();

    fn before<B>(&self, req: &mut http::Request<B>) -> ControlFlow<Response<Bytes>> {
        if credential_ok(req.headers().get(header::AUTHORIZATION), &self.0) {
            ControlFlow::Continue(())
        } else {
            let mut res = Response::new(Bytes::new());
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            ControlFlow::Break(res)
        }
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

pub struct HookLog;

impl Hook for HookLog {
    type State = (Method, Instant);

    fn before<B>(&self, req: &mut http::Request<B>) -> ControlFlow<Response<Bytes>, Self::State> {
        ControlFlow::Continue((req.method().clone(), Instant::now()))
    }

    fn after<B>(&self, (method, start): Self::State, res: &mut Response<ResponseBody<B>>) {
        tracing::info!(
            method = %method,
            status = res.status().as_u16(),
            latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
    }
}

pub struct HookTiming;

impl Hook for HookTiming {
    type State = Instant;

    fn before<B>(&self, _: &mut http::Request<B>) -> ControlFlow<Response<Bytes>, Instant> {
        ControlFlow::Continue(Instant::now())
    }

    fn after<B>(&self, start: Instant, res: &mut Response<ResponseBody<B>>) {
        res.headers_mut()
            .insert("server-timing", server_timing(start.elapsed()));
    }
}

// ----- ours, around style -------------------------------------------------------------------

pub struct AroundAuth(pub [u8; 32]);

impl Middleware for AroundAuth {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        if !credential_ok(req.headers().get(header::AUTHORIZATION), &self.0) {
            let mut res = Response::new(ResponseBody::empty());
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            return Ok(res);
        }
        next.run(req).await
    }
}

pub struct AroundLog;

impl Middleware for AroundLog {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        let method = req.method().clone();
        let start = Instant::now();
        let res = next.run(req).await;
        let status = res.as_ref().map_or(500, |r| r.status().as_u16());
        tracing::info!(
            method = %method,
            status,
            latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        res
    }
}

pub struct AroundTiming;

impl Middleware for AroundTiming {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        let start = Instant::now();
        let mut res = next.run(req).await?;
        res.headers_mut()
            .insert("server-timing", server_timing(start.elapsed()));
        Ok(res)
    }
}

pub struct AroundTimeout(pub Duration);

impl Middleware for AroundTimeout {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        if let Ok(res) = tokio::time::timeout(self.0, next.run(req)).await {
            res
        } else {
            let mut res = Response::new(ResponseBody::empty());
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok(res)
        }
    }
}

pub struct AroundCatchPanic;

impl Middleware for AroundCatchPanic {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        if let Ok(res) = AssertUnwindSafe(next.run(req)).catch_unwind().await {
            res
        } else {
            let mut res = Response::new(ResponseBody::empty());
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok(res)
        }
    }
}
