//! The non-hand-written variants: tower-http, axum `from_fn`, and ours written against core.

use std::{future::Future, ops::ControlFlow, panic::AssertUnwindSafe, time::Duration};

use axum::{
    extract::{Request, State},
    middleware::Next as AxumNext,
    response::{IntoResponse, Response as AxumResponse},
};
use bytes::Bytes;
use futures_util::FutureExt;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use middleware_std::{
    Hook, Layer, Middleware, Next, Observe, Outcome, ResponseBody,
    auth::{AuthLayer, Principal},
    middleware_fn,
};
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
//
// Each hook also derives `Layer` (hook mode): the struct itself is then a layer, the same
// `HookService` that `HookLayer::new` makes (`ours-derive-hook-3` vs `ours-hook-3`).

#[derive(Clone, Layer)]
#[middleware(hook, crate = "middleware_std")]
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

#[derive(Clone, Layer)]
#[middleware(hook, crate = "middleware_std")]
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

#[derive(Clone, Layer)]
#[middleware(hook, crate = "middleware_std")]
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

// ----- ours, observe style ------------------------------------------------------------------
//
// `HookLog` and `HookTiming` never answer early: the same logic as observers, whose layer keeps
// the inner response type (`ours-observe-3` vs `ours-hook-3`; auth stays a hook).

#[derive(Clone)]
pub struct ObserveLog;

impl Observe for ObserveLog {
    type State = (Method, Instant);

    fn before<B>(&self, req: &mut http::Request<B>) -> Self::State {
        (req.method().clone(), Instant::now())
    }

    fn after<B>(&self, (method, start): Self::State, res: &mut Response<B>) {
        tracing::info!(
            method = %method,
            status = res.status().as_u16(),
            latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
    }
}

#[derive(Clone)]
pub struct ObserveTiming;

impl Observe for ObserveTiming {
    type State = Instant;

    fn before<B>(&self, _: &mut http::Request<B>) -> Instant {
        Instant::now()
    }

    fn after<B>(&self, start: Instant, res: &mut Response<B>) {
        res.headers_mut()
            .insert("server-timing", server_timing(start.elapsed()));
    }
}

// ----- ours, around style -------------------------------------------------------------------
//
// The logic of each step is written once, as a macro, and stamped into three front ends that
// must cost the same: a hand-written `impl Middleware` (`ours-around-5`, `ours-chain-5`), the
// same structs used as layers through `#[derive(Layer)]` (`ours-derive-5`), and
// `#[middleware_fn]` functions (`ours-fn-chain-5`). A macro, not a shared `async fn`: an
// extra `async fn` level would add a nested state machine to every variant.

macro_rules! auth_step {
    ($digest:expr, $req:ident, $next:ident) => {{
        if !credential_ok($req.headers().get(header::AUTHORIZATION), $digest) {
            let mut res = Response::new(ResponseBody::empty());
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            return Ok(res);
        }
        $next.run($req).await
    }};
}

macro_rules! log_step {
    ($req:ident, $next:ident) => {{
        let method = $req.method().clone();
        let start = Instant::now();
        let res = $next.run($req).await;
        let status = res.as_ref().map_or(500, |r| r.status().as_u16());
        tracing::info!(
            method = %method,
            status,
            latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        res
    }};
}

macro_rules! timing_step {
    ($req:ident, $next:ident) => {{
        let start = Instant::now();
        let mut res = $next.run($req).await?;
        res.headers_mut()
            .insert("server-timing", server_timing(start.elapsed()));
        Ok(res)
    }};
}

macro_rules! timeout_step {
    ($budget:expr, $req:ident, $next:ident) => {{
        if let Ok(res) = tokio::time::timeout($budget, $next.run($req)).await {
            res
        } else {
            let mut res = Response::new(ResponseBody::empty());
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok(res)
        }
    }};
}

macro_rules! catch_panic_step {
    ($req:ident, $next:ident) => {{
        if let Ok(res) = AssertUnwindSafe($next.run($req)).catch_unwind().await {
            res
        } else {
            let mut res = Response::new(ResponseBody::empty());
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok(res)
        }
    }};
}

// Each step stamped twice: the `Around*` set returns an `async move` block from `handle`, as the
// `Middleware` trait docs advise (and as `#[middleware_fn]` expands; the block captures the
// request once); the `AsyncFn*` set is the same steps as `async fn handle`, what a first
// implementation usually writes (a step that reads the request before `next.run(req)` keeps a
// second copy of it in its future).
macro_rules! around_pair {
    ($lean:ident, $naive:ident, |$this:pat, $req:ident, $next:ident| $step:expr) => {
        impl Middleware for $lean {
            #[allow(clippy::manual_async_fn)] // an `async fn` would store the request twice
            fn handle<N: Next>(
                &self,
                $req: http::Request<N::ReqBody>,
                $next: N,
            ) -> impl Future<Output = Outcome<N>> + Send {
                let $this = self;
                async move { $step }
            }
        }

        impl Middleware for $naive {
            async fn handle<N: Next>(
                &self,
                $req: http::Request<N::ReqBody>,
                $next: N,
            ) -> Outcome<N> {
                let $this = self;
                $step
            }
        }
    };
}

#[derive(Clone, Layer)]
#[middleware(crate = "middleware_std")]
pub struct AroundAuth(pub [u8; 32]);

#[derive(Clone, Layer)]
#[middleware(crate = "middleware_std")]
pub struct AroundLog;

#[derive(Clone, Layer)]
#[middleware(crate = "middleware_std")]
pub struct AroundTiming;

#[derive(Clone, Layer)]
#[middleware(crate = "middleware_std")]
pub struct AroundTimeout(pub Duration);

#[derive(Clone, Layer)]
#[middleware(crate = "middleware_std")]
pub struct AroundCatchPanic;

pub struct AsyncFnAuth(pub [u8; 32]);
pub struct AsyncFnLog;
pub struct AsyncFnTiming;
pub struct AsyncFnTimeout(pub Duration);
pub struct AsyncFnCatchPanic;

around_pair!(AroundAuth, AsyncFnAuth, |this, req, next| auth_step!(
    &this.0, req, next
));
around_pair!(AroundLog, AsyncFnLog, |_, req, next| log_step!(req, next));
around_pair!(AroundTiming, AsyncFnTiming, |_, req, next| timing_step!(
    req, next
));
around_pair!(
    AroundTimeout,
    AsyncFnTimeout,
    |this, req, next| timeout_step!(this.0, req, next)
);
around_pair!(AroundCatchPanic, AsyncFnCatchPanic, |_, req, next| {
    catch_panic_step!(req, next)
});

// ----- ours, #[middleware_fn] ---------------------------------------------------------------

#[middleware_fn(state = [u8; 32], crate = "middleware_std")]
pub async fn fn_auth<N: Next>(
    req: http::Request<N::ReqBody>,
    next: N,
    digest: &[u8; 32],
) -> Outcome<N> {
    auth_step!(digest, req, next)
}

#[middleware_fn(crate = "middleware_std")]
pub async fn fn_log<N: Next>(req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
    log_step!(req, next)
}

#[middleware_fn(crate = "middleware_std")]
pub async fn fn_timing<N: Next>(req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
    timing_step!(req, next)
}

#[middleware_fn(state = Duration, crate = "middleware_std")]
pub async fn fn_timeout<N: Next>(
    req: http::Request<N::ReqBody>,
    next: N,
    budget: &Duration,
) -> Outcome<N> {
    timeout_step!(*budget, req, next)
}

#[middleware_fn(crate = "middleware_std")]
pub async fn fn_catch_panic<N: Next>(req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
    catch_panic_step!(req, next)
}

// ----- ours, #[handler] ---------------------------------------------------------------------

/// The std five as `#[handler]` keys, on an async fn that answers like the inner service. The
/// order is `ours-std-5`'s (timing outside panic recovery, as in `StackLayer`), hence the
/// `allow`.
#[middleware_std::handler(
    log,
    timing,
    catch_panic,
    timeout = "30s",
    auth = AuthLayer::bearer(crate::TOKEN, Principal::new("bench")),
    allow(catch_panic_inside_timing),
)]
pub async fn handler_five() -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"hello, world")))
}

// ----- context values: the scaling of lookups (issue 18) --------------------------------------

/// One of 64 distinct value types for the context-scaling variants.
pub struct Slot<const I: usize>(pub u64);

/// A hook that writes `N` distinct values into the request's context, then reads each back:
/// the cost of a request whose layers and handler keep `N` values in the context.
#[derive(Clone, Copy)]
pub struct ContextValues<const N: usize>;

macro_rules! each_slot {
    ($n:expr, |$i:ident| $body:expr; $($index:literal)*) => {
        $(
            if $index < $n {
                #[allow(clippy::items_after_statements)]
                const $i: usize = $index;
                $body;
            }
        )*
    };
}

macro_rules! slots_0_to_63 {
    ($n:expr, |$i:ident| $body:expr) => {
        each_slot!($n, |$i| $body;
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
            32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
            61 62 63)
    };
}

impl<const N: usize> Hook for ContextValues<N> {
    type State = ();

    fn before<B>(&self, req: &mut http::Request<B>) -> ControlFlow<Response<Bytes>> {
        use middleware_std::RequestExt;
        let cx = req.context();
        slots_0_to_63!(N, |I| cx.insert(Slot::<I>(I as u64)));
        let mut sum = 0;
        slots_0_to_63!(N, |I| sum += cx.get::<Slot<I>>().map_or(0, |slot| slot.0));
        assert_eq!(
            sum,
            (N * N.saturating_sub(1) / 2) as u64,
            "every value read back"
        );
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

/// The context-scaling variants: 1, 4, 16 and 64 values written and read per request.
pub fn context_scaling() -> Vec<crate::Variant> {
    use middleware_std::HookLayer;
    use tower::Layer as _;
    vec![
        crate::variant(
            "ctx-values-1",
            "HookLayer: the context, 1 value written and read back",
            HookLayer::new(ContextValues::<1>).layer(crate::inner()),
        ),
        crate::variant(
            "ctx-values-4",
            "HookLayer: the context, 4 values written and read back",
            HookLayer::new(ContextValues::<4>).layer(crate::inner()),
        ),
        crate::variant(
            "ctx-values-16",
            "HookLayer: the context, 16 values written and read back",
            HookLayer::new(ContextValues::<16>).layer(crate::inner()),
        ),
        crate::variant(
            "ctx-values-64",
            "HookLayer: the context, 64 values written and read back",
            HookLayer::new(ContextValues::<64>).layer(crate::inner()),
        ),
    ]
}
