//! The protection layers (issue 14) and the outbound stack (issue 13), each next to the tower
//! (or tower-http, or hand-written) code that does the same work. Every variant wraps the same
//! inner function as `bare` (generic over the request body it ignores), without auth.
//!
//! - `std-concurrency-limit` vs `tower-concurrency-limit`: a limit that is never full
//!   (sequential requests, 1,024 places), shedding when it is: ours answers `503` itself,
//!   tower's `LoadShed` over `ConcurrencyLimit` fails with an error. tower gives the place back
//!   at the response head; ours holds it to the end of the body, so `hand-concurrency-limit`
//!   (`hand.rs`) is that work written by hand: shed with `503`, the place held by the body.
//!   `hand-concurrency-limit-strict` adds what ours promises beyond it: a problem-details `503`
//!   (so an either-body), a body that never ends cleanly after an error, the place given back
//!   at the head for a body already at its end, and the per-layer time mark when asked for.
//! - `std-rate-limit` (`()` key: one global quota), `std-rate-limit-header` (keyed by the
//!   `Authorization` header, hashed into the store) vs `tower-rate-limit`: a quota of a billion
//!   requests per second, never reached, and no `RateLimit` headers on allowed responses
//!   (`without_headers_on_allowed`): tower's sets none. `std-rate-limit-ietf` keeps the headers
//!   on (our default; more work than tower's, for reference). tower's `RateLimit` is measured
//!   bare, owned by the one caller: the harness drives one service through `&mut`, so it needs
//!   no `Buffer` here. Shared by every connection of a server it would (it is not `Clone`), and
//!   the `Buffer` adds a channel hop and a worker task per request; so this pairing favours
//!   tower. It is also one quota per service, not keyed. `tower-rate-limit-shared` is that
//!   shared form (`Buffer` over `RateLimit`, what a server has to write, since `RateLimit` is
//!   not `Clone`): the same work as ours, one quota for every connection.
//! - `std-body-limit` vs `tower-http-body-limit`: 1 MiB, an empty request body (the check of
//!   the declared length and the body wrapper, on both sides).
//! - `ours-outbound` vs `hand-outbound`: `BreakerLayer` (default config) over `RetryLayer`
//!   (default: 3 attempts, budget, backoff) over `CallTimeoutLayer` (30 s), against the
//!   hand-written breaker of `hand.rs` over tower's `Retry` (the minimal policy of `hand.rs`)
//!   over tower's `Timeout` (30 s). No failures: every call succeeds first time. The request
//!   body is `()` on both sides (retries need a `Clone` body), and the request carries no
//!   context: ours makes one for the call's scope, as it does for any request that comes
//!   without one. `ours-outbound-scoped` vs `hand-outbound-scoped` are the same two stacks
//!   called the way a handler calls a client: each request carries a clone of the caller's
//!   context (one for the run; a context keeps no list of its children), inserted by the same
//!   small layer on both sides, so only the stacks' own work differs.
//!
//! With `--per-layer`, the three outbound layers also run one at a time next to the twin the
//! hand-written stack uses (`std-call-timeout` − `tower-timeout`, `std-retry` − `tower-retry`,
//! `std-breaker` − `hand-breaker`): where the outbound stack's cost comes from.

use std::{
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use http::{Request, header};
use middleware_std::{
    Context, body_limit, breaker, call_timeout, limit,
    rate_limit::{self, Policy},
    retry,
};
use tower::{Layer, Service, ServiceBuilder};

use crate::{InnerFor, Variant, hand, inner_for, unauthenticated, variant};

/// Each of ours next to its tower twin.
pub const PAIRS: [(&str, &str); 11] = [
    ("std-concurrency-limit", "tower-concurrency-limit"),
    ("std-concurrency-limit", "hand-concurrency-limit"),
    ("std-concurrency-limit", "hand-concurrency-limit-strict"),
    ("std-rate-limit", "tower-rate-limit"),
    ("std-rate-limit-header", "tower-rate-limit"),
    ("std-rate-limit-ietf", "tower-rate-limit"),
    ("std-rate-limit", "tower-rate-limit-shared"),
    ("std-rate-limit-header", "tower-rate-limit-shared"),
    ("std-body-limit", "tower-http-body-limit"),
    ("ours-outbound", "hand-outbound"),
    ("ours-outbound-scoped", "hand-outbound-scoped"),
];

/// The outbound layers one at a time (`--per-layer`), each next to its twin: where the
/// outbound stack's cost comes from.
pub const LAYER_PAIRS: [(&str, &str); 3] = [
    ("std-call-timeout", "tower-timeout"),
    ("std-retry", "tower-retry"),
    ("std-breaker", "hand-breaker"),
];

/// Places of the concurrency limits: never all taken by sequential requests.
const MAX_IN_FLIGHT: usize = 1024;
/// A quota no run reaches: a billion requests per second.
const QUOTA: u32 = 1_000_000_000;
/// The request body limit: 1 MiB.
const BODY_LIMIT: u64 = 1 << 20;
/// The per-call timeout of the outbound stacks.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn rate_policy() -> Policy {
    Policy::per_second(QUOTA)
}

/// The protection and outbound variants, each ours next to its twin.
pub fn variants() -> Vec<Variant> {
    let mut all = protection_variants();
    all.extend(outbound_variants());
    all
}

/// The protection layers alone, ours and tower's.
fn protection_variants() -> Vec<Variant> {
    vec![
        variant_any(
            "std-concurrency-limit",
            "middleware_std ConcurrencyLimitLayer::new(1024) (shedding), never full",
            limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT).layer(crate::inner()),
        ),
        variant_any(
            "tower-concurrency-limit",
            "tower LoadShedLayer over ConcurrencyLimitLayer(1024), never full",
            ServiceBuilder::new()
                .load_shed()
                .concurrency_limit(MAX_IN_FLIGHT)
                .service(crate::inner()),
        ),
        variant_any(
            "hand-concurrency-limit",
            "hand-written limit of 1024 that sheds with 503 and holds the place to the end of the body (ours' work; tower gives it back at the head)",
            hand::HeldLimitLayer::new(MAX_IN_FLIGHT).layer(crate::inner()),
        ),
        variant_any(
            "hand-concurrency-limit-strict",
            "hand-concurrency-limit with our layer's observable behaviour: a problem-details 503 when shed (an either-body), a body that never ends cleanly after an error, the place given back at the head for an ended body, the mw.limit mark when asked for",
            hand::StrictLimitLayer::new(MAX_IN_FLIGHT).layer(crate::inner()),
        ),
        variant_any(
            "std-rate-limit",
            "middleware_std RateLimitLayer, key () (one global quota), 1e9/s never reached, no headers on allowed responses",
            rate_limit::RateLimitLayer::new(rate_policy())
                .key(())
                .without_headers_on_allowed()
                .layer(crate::inner()),
        ),
        variant_any(
            "std-rate-limit-header",
            "middleware_std RateLimitLayer keyed by the Authorization header, 1e9/s never reached, no headers on allowed responses",
            rate_limit::RateLimitLayer::new(rate_policy())
                .per_header(header::AUTHORIZATION)
                .without_headers_on_allowed()
                .layer(crate::inner()),
        ),
        variant_any(
            "std-rate-limit-ietf",
            "std-rate-limit with the RateLimit/RateLimit-Policy headers on allowed responses (the default; tower sets none)",
            rate_limit::RateLimitLayer::new(rate_policy())
                .key(())
                .layer(crate::inner()),
        ),
        variant_any(
            "tower-rate-limit",
            "tower RateLimitLayer(1e9 per 1 s), owned by the one caller (no Buffer: see protection.rs)",
            tower::limit::RateLimitLayer::new(u64::from(QUOTA), Duration::from_secs(1))
                .layer(crate::inner()),
        ),
        variant_any(
            "tower-rate-limit-shared",
            "tower RateLimitLayer(1e9 per 1 s) behind a BufferLayer(1024): the form a server shares between its connections (RateLimit is not Clone)",
            SharedRateLimit::new(
                tower::limit::RateLimitLayer::new(u64::from(QUOTA), Duration::from_secs(1))
                    .layer(crate::inner()),
            ),
        ),
        variant_any(
            "std-body-limit",
            "middleware_std RequestBodyLimitLayer::new(1 MiB), empty body",
            body_limit::RequestBodyLimitLayer::new(BODY_LIMIT).layer(inner_for()),
        ),
        variant_any(
            "tower-http-body-limit",
            "tower-http RequestBodyLimitLayer::new(1 MiB), empty body",
            tower_http::limit::RequestBodyLimitLayer::new(
                usize::try_from(BODY_LIMIT).expect("1 MiB fits a usize"),
            )
            .layer(inner_for()),
        ),
    ]
}

/// tower's rate limit the way a server has to use it: behind a `Buffer` (its `RateLimit` is not
/// `Clone`, so every connection's clone of the app shares it through the buffer's worker task),
/// as axum's and tower's answers to "`RateLimitLayer` does not compile in a `Router`" show. The
/// worker is spawned on the benchmark's runtime at the first `poll_ready`.
struct SharedRateLimit<S, Req>
where
    S: tower::Service<Req>,
{
    buffer: tower::buffer::Buffer<Req, S::Future>,
    /// The buffer's worker (its type is not nameable), until it is spawned.
    worker: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl<S, Req> SharedRateLimit<S, Req>
where
    S: tower::Service<Req> + Send + 'static,
    S::Error: Into<middleware_std::BoxError> + Send + Sync,
    S::Future: Send,
    Req: Send + 'static,
{
    fn new(service: S) -> Self {
        let (buffer, worker) = tower::buffer::Buffer::pair(service, 1024);
        Self {
            buffer,
            worker: Some(Box::pin(worker)),
        }
    }
}

impl<S, Req> Service<Req> for SharedRateLimit<S, Req>
where
    S: tower::Service<Req> + Send + 'static,
    S::Error: Into<middleware_std::BoxError> + Send + Sync,
    S::Future: Send,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = middleware_std::BoxError;
    type Future = tower::buffer::future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(worker) = self.worker.take() {
            tokio::spawn(worker);
        }
        self.buffer.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.buffer.call(req)
    }
}

/// The outbound layers one at a time, ours and the twin the stacks use, for `--per-layer`.
pub fn per_layer_variants() -> Vec<Variant> {
    vec![
        unauthenticated(
            "tower-timeout",
            "tower TimeoutLayer(30 s); request body ()",
            tower::timeout::TimeoutLayer::new(CALL_TIMEOUT).layer(inner_for::<()>()),
            || (),
        ),
        unauthenticated(
            "std-call-timeout",
            "CallTimeoutLayer(30 s), request without a context; request body ()",
            call_timeout::CallTimeoutLayer::new(CALL_TIMEOUT).layer(inner_for::<()>()),
            || (),
        ),
        unauthenticated(
            "tower-retry",
            "tower RetryLayer, the minimal policy of hand.rs; request body ()",
            tower::retry::RetryLayer::new(hand::RetryPolicy { attempts: 3 })
                .layer(inner_for::<()>()),
            || (),
        ),
        unauthenticated(
            "std-retry",
            "RetryLayer::new() (defaults), request without a context; request body ()",
            retry::RetryLayer::new().layer(inner_for::<()>()),
            || (),
        ),
        unauthenticated(
            "hand-breaker",
            "the hand-written breaker of hand.rs; request body ()",
            hand::BreakerLayer::new().layer(inner_for::<()>()),
            || (),
        ),
        unauthenticated(
            "std-breaker",
            "BreakerLayer, default config, request without a context; request body ()",
            breaker::BreakerLayer::new(breaker::CircuitBreaker::new(breaker::BreakerConfig::new()))
                .layer(inner_for::<()>()),
            || (),
        ),
    ]
}

/// The outbound stacks, ours and hand-written, without and with the caller's context.
fn outbound_variants() -> Vec<Variant> {
    vec![
        unauthenticated(
            "ours-outbound",
            "BreakerLayer over RetryLayer over CallTimeoutLayer(30 s), defaults, no failures; request body ()",
            ours_outbound(),
            || (),
        ),
        unauthenticated(
            "hand-outbound",
            "hand-written breaker over tower Retry (minimal policy, 3 attempts) over tower Timeout(30 s), no failures; request body ()",
            hand_outbound(),
            || (),
        ),
        unauthenticated(
            "ours-outbound-scoped",
            "ours-outbound, each request carrying the caller's context (as a handler's calls do)",
            CallerScopeLayer::new().layer(ours_outbound()),
            || (),
        ),
        unauthenticated(
            "hand-outbound-scoped",
            "hand-outbound, each request carrying the caller's context (ignored)",
            CallerScopeLayer::new().layer(hand_outbound()),
            || (),
        ),
    ]
}

/// Our outbound stack: `BreakerLayer` (default config) over `RetryLayer` (defaults) over
/// `CallTimeoutLayer` (30 s).
fn ours_outbound() -> breaker::Breaker<retry::Retry<call_timeout::CallTimeout<InnerFor<()>>>> {
    ServiceBuilder::new()
        .layer(breaker::BreakerLayer::new(breaker::CircuitBreaker::new(
            breaker::BreakerConfig::new(),
        )))
        .layer(retry::RetryLayer::new())
        .layer(call_timeout::CallTimeoutLayer::new(CALL_TIMEOUT))
        .service(inner_for::<()>())
}

/// The hand-written twin: the breaker of `hand.rs` over tower's `Retry` (the minimal policy,
/// 3 attempts) over tower's `Timeout` (30 s).
fn hand_outbound()
-> hand::Breaker<tower::retry::Retry<hand::RetryPolicy, tower::timeout::Timeout<InnerFor<()>>>> {
    ServiceBuilder::new()
        .layer(hand::BreakerLayer::new())
        .layer(tower::retry::RetryLayer::new(hand::RetryPolicy {
            attempts: 3,
        }))
        .layer(tower::timeout::TimeoutLayer::new(CALL_TIMEOUT))
        .service(inner_for::<()>())
}

/// Puts a clone of one caller's [`Context`] into each request, as a handler's outbound calls
/// carry the context of the request they serve.
#[derive(Clone)]
pub struct CallerScopeLayer(Context);

impl CallerScopeLayer {
    fn new() -> Self {
        let caller = Context::new();
        caller.set_timeout(Duration::from_secs(3600));
        Self(caller)
    }
}

impl<S> Layer<S> for CallerScopeLayer {
    type Service = CallerScope<S>;

    fn layer(&self, inner: S) -> CallerScope<S> {
        CallerScope {
            inner,
            caller: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallerScope<S> {
    inner: S,
    caller: Context,
}

impl<S, B> Service<Request<B>> for CallerScope<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        req.extensions_mut().insert(self.caller.clone());
        self.inner.call(req)
    }
}

/// A variant without auth over the harness's usual request.
fn variant_any<S, B>(name: &'static str, what: &'static str, svc: S) -> Variant
where
    S: tower::Service<http::Request<axum::body::Body>, Response = http::Response<B>> + 'static,
    S::Error: std::fmt::Debug,
    B: http_body::Body + 'static,
    B::Error: Into<middleware_std::BoxError>,
{
    Variant {
        checks_auth: false,
        ..variant(name, what, svc)
    }
}
