//! The benchmark harness: every variant in one run, interleaved, on the same trivial inner
//! service (200, a small fixed body).
//!
//! ```text
//! cargo run -p middleware-benches --release                 # full run, writes target/bench/
//! cargo run -p middleware-benches --release -- --smoke      # a few thousand iterations
//! cargo run -p middleware-benches --release -- --no-e2e     # in-process figures only
//! cargo run -p middleware-benches --release -- --redis      # a decision through Redis (REDIS_URL)
//! ```
//!
//! In-process, each request is built (method, URI, `Authorization` header), the service is made
//! ready, called, and the response body drained, inside one current-thread tokio runtime. Time is
//! the median of interleaved rounds; allocations are counted per thread by `allocation-counter`.
//! End to end, a hyper server on 127.0.0.1 serves each variant to a bounded Rust load client.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark reports to its user
#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]
// an unpublished binary
// Statistics on counts (precision far beyond what timing noise allows), and a binary's
// functions are neither a public API nor documented for panics.
#![allow(
    clippy::cast_precision_loss,
    clippy::must_use_candidate,
    clippy::missing_panics_doc,
    clippy::similar_names
)]

mod chart;
mod e2e;
mod hand;
mod loopback;
mod otel;
mod protection;
mod redis;
mod variants;

use std::{
    convert::Infallible,
    fmt::Write as _,
    future::Ready,
    path::PathBuf,
    pin::pin,
    time::{Duration, Instant},
};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use middleware_std::{BoxError, HookLayer, Middleware, MiddlewareLayer, ObserveLayer};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

pub const TOKEN: &str = "secret-token";
const AUTHORIZATION: &str = "Bearer secret-token";

/// The inner service: `200` with a small fixed body, ready at once.
pub type Inner = InnerFor<Body>;

/// The inner service over requests with a body of type `R` (see [`inner_for`]).
pub type InnerFor<R> =
    tower::util::ServiceFn<fn(Request<R>) -> Ready<Result<Response<Full<Bytes>>, Infallible>>>;

pub fn inner() -> Inner {
    fn respond(_: Request<Body>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(
            b"hello, world",
        )))))
    }
    service_fn(respond as fn(_) -> _)
}

pub fn request() -> Request<Body> {
    request_with(Body::empty())
}

/// The benchmark request with `body`: variants whose layers need another request body type
/// (a `Clone` one for retries) build it directly, at the same cost.
pub fn request_with<R>(body: R) -> Request<R> {
    Request::builder()
        .uri("/bench")
        .header(
            header::AUTHORIZATION,
            HeaderValue::from_static(AUTHORIZATION),
        )
        .body(body)
        .expect("valid request")
}

/// The inner service's twin for any request body type: the same function, generic over the
/// body it ignores (for layers that change the request body type, or need a `Clone` one).
pub fn inner_for<R>() -> InnerFor<R> {
    fn respond<R>(_: Request<R>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(
            b"hello, world",
        )))))
    }
    service_fn(respond::<R> as fn(_) -> _)
}

/// One variant, type-erased at the harness level only (never per request).
pub trait Runner {
    /// Sends `n` requests; returns the time taken.
    fn run(&mut self, rt: &Runtime, n: u64) -> Duration;
    /// Sends `n` requests counting allocations: (count, bytes) in total.
    fn allocs(&mut self, rt: &Runtime, n: u64) -> (u64, u64);
    /// The size of the response future.
    fn future_size(&mut self) -> usize;
    /// The size of the response (head and body type), moved out through every layer.
    fn response_size(&self) -> usize;
    /// Sends `req` and returns the response status, for the sanity checks.
    fn send(&mut self, rt: &Runtime, req: Request<Body>) -> u16;
}

/// A service under test, and how to make the body of each of its requests.
pub struct Bench<S, R = Body> {
    pub svc: S,
    pub body: fn() -> R,
}

async fn one<S, R, B>(svc: &mut S, req: Request<R>) -> u16
where
    S: Service<Request<R>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let svc = svc.ready().await.expect("ready");
    let res = svc.call(req).await.expect("call");
    let status = res.status().as_u16();
    let mut body = pin!(res.into_body());
    while let Some(frame) = body.as_mut().frame().await {
        frame.map_err(Into::into).expect("body frame");
    }
    status
}

impl<S, R, B> Runner for Bench<S, R>
where
    S: Service<Request<R>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    fn run(&mut self, rt: &Runtime, n: u64) -> Duration {
        let (svc, body) = (&mut self.svc, self.body);
        rt.block_on(async move {
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(one(svc, request_with(body())).await);
            }
            start.elapsed()
        })
    }

    fn allocs(&mut self, rt: &Runtime, n: u64) -> (u64, u64) {
        let (svc, body) = (&mut self.svc, self.body);
        let info = allocation_counter::measure(|| {
            rt.block_on(async move {
                for _ in 0..n {
                    one(svc, request_with(body())).await;
                }
            });
        });
        (info.count_total, info.bytes_total)
    }

    fn future_size(&mut self) -> usize {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            self.svc.poll_ready(&mut cx).is_ready(),
            "the inner service is ready at once"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let future = self.svc.call(request_with((self.body)()));
        std::mem::size_of_val(&future)
    }

    fn response_size(&self) -> usize {
        std::mem::size_of::<Response<B>>()
    }

    fn send(&mut self, rt: &Runtime, req: Request<Body>) -> u16 {
        let req = req.map(|_| (self.body)());
        rt.block_on(one(&mut self.svc, req))
    }
}

pub struct Variant {
    pub name: &'static str,
    pub what: &'static str,
    pub runner: Box<dyn Runner>,
    /// Whether the variant checks the bearer credential (the protection and outbound
    /// variants measure one layer or stack alone, without auth).
    pub checks_auth: bool,
}

fn variant<S, B>(name: &'static str, what: &'static str, svc: S) -> Variant
where
    S: Service<Request<Body>, Response = Response<B>> + 'static,
    S::Error: std::fmt::Debug,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    Variant {
        name,
        what,
        runner: Box::new(Bench {
            svc,
            body: Body::empty,
        }),
        checks_auth: name != "bare",
    }
}

/// A variant without auth whose requests carry a body made by `body`.
fn unauthenticated<S, R, B>(
    name: &'static str,
    what: &'static str,
    svc: S,
    body: fn() -> R,
) -> Variant
where
    S: Service<Request<R>, Response = Response<B>> + 'static,
    S::Error: std::fmt::Debug,
    R: 'static,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    Variant {
        name,
        what,
        runner: Box::new(Bench { svc, body }),
        checks_auth: false,
    }
}

/// What each served variant is: a clonable `Send` service with a `Send` future and body, as
/// the end-to-end server needs.
macro_rules! served {
    () => {
        impl Service<
            Request<Body>,
            Response = Response<
                impl http_body::Body<Data = Bytes, Error: Into<BoxError> + std::fmt::Debug>
                + Send
                + 'static,
            >,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
    };
}

/// The five layers hand-written (log, catch-panic, timing, timeout, auth).
pub fn hand_written() -> served!() {
    ServiceBuilder::new()
        .layer(hand::LogLayer)
        .layer(hand::CatchPanicLayer)
        .layer(hand::TimingLayer)
        .layer(hand::TimeoutLayer(TIMEOUT))
        .layer(hand::AuthLayer::new(TOKEN))
        .service(inner())
}

/// tower-http's closest equivalents of the five.
#[allow(deprecated)] // `bearer` is deprecated ("too basic"), but it is what the docs show
pub fn tower_http() -> served!() {
    tower_http_with(tower_http::validate_request::ValidateRequestHeaderLayer::bearer(TOKEN))
}

/// tower-http's five with the bearer check the other variants make: the SHA-256 digest of the
/// presented credential compared in constant time (`hand::credential_ok`), through
/// `ValidateRequestHeaderLayer::custom`, tower-http's way to validate a header otherwise.
/// Its `bearer` compares the header with `==`, which takes longer the more leading bytes of a
/// guess are right.
pub fn tower_http_digest() -> served!() {
    tower_http_with(
        tower_http::validate_request::ValidateRequestHeaderLayer::custom(DigestBearer::new(TOKEN)),
    )
}

/// tower-http's trace, panic recovery, `Server-Timing` and timeout layers over `auth`.
#[allow(deprecated)] // `TimeoutLayer::new` is what tower-http's users call
fn tower_http_with<V>(
    auth: tower_http::validate_request::ValidateRequestHeaderLayer<V>,
) -> served!()
where
    V: tower_http::validate_request::ValidateRequest<Body, ResponseBody = Full<Bytes>>
        + Clone
        + Send
        + 'static,
{
    ServiceBuilder::new()
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            http::header::HeaderName::from_static("server-timing"),
            |_: &Response<_>| Some(hand::server_timing(Duration::from_micros(3))),
        ))
        .layer(tower_http::timeout::TimeoutLayer::new(TIMEOUT))
        .layer(auth)
        .service(inner())
}

/// A bearer check for `ValidateRequestHeaderLayer::custom` that does what ours and the
/// hand-written one do: the digest of the presented header compared in constant time.
#[derive(Clone)]
pub struct DigestBearer([u8; 32]);

impl DigestBearer {
    fn new(token: &str) -> Self {
        Self(variants::digest(token))
    }
}

impl<B> tower_http::validate_request::ValidateRequest<B> for DigestBearer {
    type ResponseBody = Full<Bytes>;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Full<Bytes>>> {
        if hand::credential_ok(request.headers().get(http::header::AUTHORIZATION), &self.0) {
            Ok(())
        } else {
            let mut res = Response::new(Full::default());
            *res.status_mut() = http::StatusCode::UNAUTHORIZED;
            Err(res)
        }
    }
}

/// tower-http's five plus its request id (UUID v4, set on the request, copied to the
/// response): the same work as `ours_std_stack`, but for the bearer check's `==`.
pub fn tower_http_stack() -> served!() {
    tower_http_request_id(tower_http())
}

/// [`tower_http_stack`] with the digest bearer check: the same work as `ours_std_stack`.
pub fn tower_http_stack_digest() -> served!() {
    tower_http_request_id(tower_http_digest())
}

/// tower-http's request id (UUID v4, set on the request, copied to the response) around
/// `inner`.
fn tower_http_request_id<S, B>(inner: S) -> served!()
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes, Error: Into<BoxError> + std::fmt::Debug> + Send + 'static,
{
    ServiceBuilder::new()
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .service(inner)
}

/// The five as axum `from_fn` layers.
pub fn axum_from_fn() -> served!() {
    ServiceBuilder::new()
        .layer(axum::middleware::from_fn(variants::axum_log))
        .layer(axum::middleware::from_fn(variants::axum_catch_panic))
        .layer(axum::middleware::from_fn(variants::axum_timing))
        .layer(axum::middleware::from_fn(variants::axum_timeout))
        .layer(axum::middleware::from_fn_with_state(
            variants::digest(TOKEN),
            variants::axum_auth,
        ))
        .service(inner())
}

/// The five as one around-style chain of ours.
pub fn ours_chain() -> served!() {
    ServiceBuilder::new()
        .layer(MiddlewareLayer::new(
            variants::AroundLog
                .then(variants::AroundCatchPanic)
                .then(variants::AroundTiming)
                .then(variants::AroundTimeout(TIMEOUT))
                .then(variants::AroundAuth(variants::digest(TOKEN))),
        ))
        .service(inner())
}

/// `ours_chain` with each step's `handle` written as an `async fn`.
fn ours_chain_async_fn(digest: [u8; 32]) -> served!() {
    ServiceBuilder::new()
        .layer(MiddlewareLayer::new(
            variants::AsyncFnLog
                .then(variants::AsyncFnCatchPanic)
                .then(variants::AsyncFnTiming)
                .then(variants::AsyncFnTimeout(TIMEOUT))
                .then(variants::AsyncFnAuth(digest)),
        ))
        .service(inner())
}

/// Our std five: logging, timing, panic recovery, a 30 s budget, bearer auth.
pub fn ours_std_five() -> served!() {
    ServiceBuilder::new()
        .layer(middleware_std::logging::LogLayer::new())
        .layer(middleware_std::timing::ServerTimingLayer::new())
        .layer(middleware_std::catch_panic::CatchPanicLayer::new())
        .layer(middleware_std::timeout::TimeoutLayer::new(TIMEOUT))
        .layer(middleware_std::auth::AuthLayer::bearer(
            TOKEN,
            middleware_std::auth::Principal::new("bench"),
        ))
        .service(inner())
}

/// The full std stack (`StackLayer`: request id, logging, timing, panic recovery, budget) with
/// bearer auth inside.
pub fn ours_std_stack() -> served!() {
    ServiceBuilder::new()
        .layer(middleware_std::stack::StackLayer::new(TIMEOUT))
        .layer(middleware_std::auth::AuthLayer::bearer(
            TOKEN,
            middleware_std::auth::Principal::new("bench"),
        ))
        .service(inner())
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// One layer at a time, ours and hand-written: where the overhead and allocations come from.
pub fn per_layer_variants() -> Vec<Variant> {
    use middleware_std::{auth, catch_panic, logging, request_id, timeout, timing};
    vec![
        variant("bare", "the inner service alone", inner()),
        variant(
            "ensure-context",
            "HookLayer(EnsureContext): creating the request's context, nothing else",
            middleware_std::HookLayer::new(middleware_std::EnsureContext).layer(inner()),
        ),
        variant(
            "hand-log",
            "hand-written log layer",
            hand::LogLayer.layer(inner()),
        ),
        variant(
            "std-log",
            "LogLayer",
            logging::LogLayer::new().layer(inner()),
        ),
        variant(
            "hand-timing",
            "hand-written Server-Timing layer",
            hand::TimingLayer.layer(inner()),
        ),
        variant(
            "std-timing",
            "ServerTimingLayer",
            timing::ServerTimingLayer::new().layer(inner()),
        ),
        variant(
            "hand-catch-panic",
            "hand-written catch_unwind layer",
            hand::CatchPanicLayer.layer(inner()),
        ),
        variant(
            "std-catch-panic",
            "CatchPanicLayer",
            catch_panic::CatchPanicLayer::new().layer(inner()),
        ),
        variant(
            "hand-timeout",
            "hand-written 30 s timeout",
            hand::TimeoutLayer(TIMEOUT).layer(inner()),
        ),
        variant(
            "std-timeout",
            "TimeoutLayer",
            timeout::TimeoutLayer::new(TIMEOUT).layer(inner()),
        ),
        variant(
            "hand-auth",
            "hand-written bearer auth",
            hand::AuthLayer::new(TOKEN).layer(inner()),
        ),
        variant(
            "std-auth",
            "AuthLayer::bearer",
            auth::AuthLayer::bearer(TOKEN, auth::Principal::new("bench")).layer(inner()),
        ),
        variant(
            "std-request-id",
            "SetRequestIdLayer",
            request_id::SetRequestIdLayer::new().layer(inner()),
        ),
    ]
    .into_iter()
    .chain(protection::per_layer_variants())
    .chain(variants::context_scaling())
    .collect()
}

/// Every variant, in report order. `bare` and `hand-written` come first: ratios refer to them.
pub fn variants() -> Vec<Variant> {
    let digest = variants::digest(TOKEN);
    let mut all = vec![
        variant("bare", "the inner service alone", inner()),
        variant(
            "hand-written",
            "5 hand-written tower layers (pin-project-lite futures): log, catch-panic, timing, timeout, auth",
            hand_written(),
        ),
        variant(
            "hand-written-3",
            "3 hand-written tower layers: log, timing, auth",
            ServiceBuilder::new()
                .layer(hand::LogLayer)
                .layer(hand::TimingLayer)
                .layer(hand::AuthLayer::new(TOKEN))
                .service(inner()),
        ),
        variant(
            "tower-http",
            "TraceLayer, CatchPanicLayer, SetResponseHeaderLayer, TimeoutLayer, ValidateRequestHeaderLayer::bearer",
            tower_http(),
        ),
        variant(
            "tower-http-digest",
            "tower-http's five with the bearer check of the others (SHA-256 digest compared in constant time) through ValidateRequestHeaderLayer::custom: the same work as ours-std-5",
            tower_http_digest(),
        ),
        variant(
            "tower-http-stack",
            "tower-http's five plus SetRequestIdLayer (MakeRequestUuid) and PropagateRequestIdLayer",
            tower_http_stack(),
        ),
        variant(
            "tower-http-stack-digest",
            "tower-http-stack with the digest bearer check: the same work as ours-std-stack",
            tower_http_stack_digest(),
        ),
        variant(
            "axum-from-fn",
            "the same five as axum::middleware::from_fn layers",
            axum_from_fn(),
        ),
        variant(
            "ours-std-5",
            "our std layers doing the same five: LogLayer, ServerTimingLayer, CatchPanicLayer, TimeoutLayer, AuthLayer::bearer",
            ours_std_five(),
        ),
        variant(
            "ours-std-stack",
            "StackLayer (request id, log, timing, catch-panic, timeout) + AuthLayer::bearer",
            ours_std_stack(),
        ),
        variant(
            "ours-hook-3",
            "log, timing, auth as hook-style custom middleware (HookLayer each)",
            ServiceBuilder::new()
                .layer(HookLayer::new(variants::HookLog))
                .layer(HookLayer::new(variants::HookTiming))
                .layer(HookLayer::new(variants::HookAuth(digest)))
                .service(inner()),
        ),
        variant(
            "ours-observe-3",
            "ours-hook-3 with log and timing as observers (ObserveLayer each, the response type unchanged) and auth as a hook (HookLayer, it answers 401)",
            ServiceBuilder::new()
                .layer(ObserveLayer::new(variants::ObserveLog))
                .layer(ObserveLayer::new(variants::ObserveTiming))
                .layer(HookLayer::new(variants::HookAuth(digest)))
                .service(inner()),
        ),
        variant(
            "ours-around-5",
            "the five as separate around-style layers (MiddlewareLayer each)",
            ServiceBuilder::new()
                .layer(MiddlewareLayer::new(variants::AroundLog))
                .layer(MiddlewareLayer::new(variants::AroundCatchPanic))
                .layer(MiddlewareLayer::new(variants::AroundTiming))
                .layer(MiddlewareLayer::new(variants::AroundTimeout(TIMEOUT)))
                .layer(MiddlewareLayer::new(variants::AroundAuth(digest)))
                .service(inner()),
        ),
        variant(
            "ours-chain-5",
            "the five as one around-style chain (one MiddlewareLayer)",
            ours_chain(),
        ),
        variant(
            "ours-chain-5-async-fn",
            "ours-chain-5 with each handle written as an async fn (stores a request it reads twice)",
            ours_chain_async_fn(digest),
        ),
    ];
    all.extend(macro_variants(digest));
    all.extend(protection::variants());
    all.extend(otel::variants());
    all
}

/// The same work through our macros: each next to the variant it must cost the same as.
fn macro_variants(digest: [u8; 32]) -> Vec<Variant> {
    vec![
        variant(
            "ours-derive-hook-3",
            "ours-hook-3's hooks used as layers through #[derive(Layer)] (hook mode)",
            ServiceBuilder::new()
                .layer(variants::HookLog)
                .layer(variants::HookTiming)
                .layer(variants::HookAuth(digest))
                .service(inner()),
        ),
        variant(
            "ours-derive-5",
            "ours-around-5's middlewares used as layers through #[derive(Layer)]",
            ServiceBuilder::new()
                .layer(variants::AroundLog)
                .layer(variants::AroundCatchPanic)
                .layer(variants::AroundTiming)
                .layer(variants::AroundTimeout(TIMEOUT))
                .layer(variants::AroundAuth(digest))
                .service(inner()),
        ),
        variant(
            "ours-fn-chain-5",
            "the five as #[middleware_fn] async fns, one chain (one MiddlewareLayer)",
            ServiceBuilder::new()
                .layer(MiddlewareLayer::new(
                    variants::fn_log()
                        .then(variants::fn_catch_panic())
                        .then(variants::fn_timing())
                        .then(variants::fn_timeout(TIMEOUT))
                        .then(variants::fn_auth(digest)),
                ))
                .service(inner()),
        ),
        variant(
            "ours-handler-5",
            "#[handler(log, timing, catch_panic, timeout = \"30s\", auth = ..)] on an async fn answering like the inner service (its future boxed once per request)",
            variants::handler_five.service(),
        ),
    ]
}

#[derive(Clone, Debug)]
pub struct Config {
    pub rounds: usize,
    pub iters: u64,
    pub alloc_iters: u64,
    pub e2e: bool,
    pub e2e_requests: u64,
    pub e2e_connections: usize,
    pub e2e_rounds: usize,
    pub per_layer: bool,
    /// Run only these variants (plus `bare`), for profiling one at a time.
    pub only: Vec<String>,
    pub out: PathBuf,
    /// Only the Redis section (`--redis`): decisions through Redis vs in process.
    pub redis: bool,
    /// Decisions per figure of the Redis section.
    pub redis_decisions: usize,
}

impl Config {
    pub fn full() -> Self {
        Self {
            rounds: 31,
            iters: 20_000,
            alloc_iters: 1_000,
            e2e: true,
            e2e_requests: 40_000,
            e2e_connections: 32,
            e2e_rounds: 3,
            per_layer: false,
            only: Vec::new(),
            out: PathBuf::from("target/bench"),
            redis: false,
            redis_decisions: 20_000,
        }
    }

    pub fn smoke() -> Self {
        Self {
            rounds: 3,
            iters: 500,
            alloc_iters: 100,
            e2e: true,
            e2e_requests: 400,
            e2e_connections: 4,
            e2e_rounds: 1,
            per_layer: false,
            only: Vec::new(),
            out: PathBuf::from("target/bench-smoke"),
            redis: false,
            redis_decisions: 500,
        }
    }
}

/// The in-process figures of one variant.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: &'static str,
    pub what: &'static str,
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
    pub allocs: f64,
    pub bytes: f64,
    pub future_size: usize,
    pub response_size: usize,
    /// ns/request of each round, in round order (rounds are interleaved across variants, so
    /// round `r` of two variants ran within moments of each other).
    pub rounds: Vec<f64>,
}

/// The median of `values` (NaN for none).
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `a`'s overhead over bare divided by `b`'s, paired round by round, then the median (with
/// min and max) over rounds. Pairing cancels most of what a shared machine does to both
/// (frequency changes, a neighbour's burst): the ratio of medians does not.
pub fn paired_ratio(rows: &[Row], a: &str, b: &str) -> Option<Figure> {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let (bare, a, b) = (find("bare")?, find(a)?, find(b)?);
    Some(summary(
        (0..bare.rounds.len())
            .map(|i| (a.rounds[i] - bare.rounds[i]) / (b.rounds[i] - bare.rounds[i]))
            .collect(),
    ))
}

/// The median, min and max of per-round figures.
fn summary(values: Vec<f64>) -> Figure {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(values), min, max)
}

/// The pairs the issue's targets and the docs compare.
const PAIRS: [(&str, &str); 15] = [
    ("tower-http", "hand-written"),
    ("tower-http-digest", "hand-written"),
    ("ours-std-5", "hand-written"),
    ("ours-std-5", "tower-http"),
    ("ours-std-5", "tower-http-digest"),
    ("ours-std-stack", "tower-http-stack"),
    ("ours-std-stack", "tower-http-stack-digest"),
    ("ours-hook-3", "hand-written-3"),
    ("ours-observe-3", "hand-written-3"),
    ("ours-observe-3", "ours-hook-3"),
    ("ours-derive-hook-3", "hand-written-3"),
    ("ours-chain-5", "hand-written"),
    ("ours-chain-5-async-fn", "hand-written"),
    ("ours-fn-chain-5", "ours-chain-5"),
    ("ours-derive-5", "ours-around-5"),
];

/// `a`'s time minus `b`'s, paired round by round: the median (with min and max) over rounds.
pub fn paired_difference(rows: &[Row], a: &str, b: &str) -> Option<Figure> {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let (a, b) = (find(a)?, find(b)?);
    Some(summary(
        a.rounds.iter().zip(&b.rounds).map(|(a, b)| a - b).collect(),
    ))
}

/// Each std layer next to its hand-written twin (and the context alone next to bare).
const LAYER_PAIRS: [(&str, &str); 6] = [
    ("ensure-context", "bare"),
    ("std-log", "hand-log"),
    ("std-timing", "hand-timing"),
    ("std-catch-panic", "hand-catch-panic"),
    ("std-timeout", "hand-timeout"),
    ("std-auth", "hand-auth"),
];

/// A paired figure of two variants: median, min and max over rounds.
type Figure = (f64, f64, f64);

/// One line per pair present in `rows`: `figure` of the pair, written by `cell`.
fn pairs_table(
    rows: &[Row],
    header: &str,
    pairs: &[(&str, &str)],
    figure: fn(&[Row], &str, &str) -> Option<Figure>,
    cell: fn(Figure) -> String,
) -> String {
    let mut out = format!("{header}\n| --- | --- | --- |\n");
    for &(a, b) in pairs {
        if let Some(figures) = figure(rows, a, b) {
            let _ = writeln!(out, "| {a} | {b} | {} |", cell(figures));
        }
    }
    out
}

/// The paired differences of [`LAYER_PAIRS`] and [`protection::LAYER_PAIRS`] present in
/// `rows`.
pub fn layer_table(rows: &[Row]) -> String {
    pairs_table(
        rows,
        "| ours | − its twin | ns/request, paired by round: median (min–max) |",
        &[LAYER_PAIRS.as_slice(), protection::LAYER_PAIRS.as_slice()].concat(),
        paired_difference,
        |(median, min, max)| format!("{median:+.0} ({min:+.0} to {max:+.0})"),
    )
}

/// The paired ratios of [`PAIRS`], [`protection::PAIRS`] and [`otel::PAIRS`] present in `rows`.
pub fn paired_table(rows: &[Row]) -> String {
    pairs_table(
        rows,
        "| overhead of | ÷ overhead of | paired by round: median (min–max) |",
        &[
            PAIRS.as_slice(),
            protection::PAIRS.as_slice(),
            otel::PAIRS.as_slice(),
        ]
        .concat(),
        paired_ratio,
        |(median, min, max)| format!("{median:.3} ({min:.2}–{max:.2})"),
    )
}

/// The runtime every in-process variant runs on (one thread, with timers).
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// Runs `variants` on `rt`, the runtime they were made in (tower's `RateLimit` arms its timer
/// when it is made).
/// The paired differences of [`protection::PAIRS`], if `rows` hold any pair: a ratio of two
/// small overheads (a body limit costs a few ns) swings wildly, the difference does not.
pub fn protection_table(rows: &[Row]) -> Option<String> {
    protection::PAIRS
        .iter()
        .any(|&(a, b)| paired_difference(rows, a, b).is_some())
        .then(|| {
            pairs_table(
                rows,
                "| ours | − its twin | ns/request, paired by round: median (min–max) |",
                &protection::PAIRS,
                paired_difference,
                |(median, min, max)| format!("{median:+.0} ({min:+.0} to {max:+.0})"),
            )
        })
}

pub fn run_in_process(config: &Config, rt: &Runtime, variants: &mut [Variant]) -> Vec<Row> {
    for v in variants.iter_mut() {
        let status = v.runner.send(rt, request());
        assert_eq!(status, 200, "variant {} answered {status}", v.name);
        v.runner.run(rt, config.iters / 10 + 1); // warm-up
    }
    let mut samples = vec![Vec::with_capacity(config.rounds); variants.len()];
    for round in 0..config.rounds {
        for (i, v) in variants.iter_mut().enumerate() {
            let elapsed = v.runner.run(rt, config.iters);
            samples[i].push(elapsed.as_nanos() as f64 / config.iters as f64);
        }
        eprintln!("round {}/{} done", round + 1, config.rounds);
    }
    variants
        .iter_mut()
        .zip(samples)
        .map(|(v, rounds)| {
            let mut ns = rounds.clone();
            ns.sort_by(f64::total_cmp);
            let (count, bytes) = v.runner.allocs(rt, config.alloc_iters);
            Row {
                name: v.name,
                what: v.what,
                median_ns: ns[ns.len() / 2],
                min_ns: ns[0],
                max_ns: ns[ns.len() - 1],
                allocs: count as f64 / config.alloc_iters as f64,
                bytes: bytes as f64 / config.alloc_iters as f64,
                future_size: v.runner.future_size(),
                response_size: v.runner.response_size(),
                rounds,
            }
        })
        .collect()
}

pub fn table(rows: &[Row]) -> String {
    let bare = rows
        .iter()
        .find(|r| r.name == "bare")
        .expect("bare variant");
    let mut out = String::new();
    out.push_str("| variant | ns/req median (min–max) | overhead ns | × bare | overhead × hand-written (paired) | allocs/req (over bare) | bytes/req | future bytes | response bytes |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for r in rows {
        let over = r.median_ns - bare.median_ns;
        let _ = writeln!(
            out,
            "| {} | {:.0} ({:.0}–{:.0}) | {:.0} | {:.2} | {} | {:.2} ({:+.2}) | {:.0} | {} | {} |",
            r.name,
            r.median_ns,
            r.min_ns,
            r.max_ns,
            over,
            r.median_ns / bare.median_ns,
            if r.name == "bare" {
                "–".to_owned()
            } else {
                paired_ratio(rows, r.name, "hand-written")
                    .map_or_else(|| "–".to_owned(), |(m, _, _)| format!("{m:.2}"))
            },
            r.allocs,
            r.allocs - bare.allocs,
            r.bytes,
            r.future_size,
            r.response_size,
        );
    }
    out
}

fn main() {
    match parse_args(std::env::args().skip(1)) {
        Ok(config) => {
            let report = run(&config);
            println!("{report}");
        }
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    }
}

/// The configuration the command line asks for. `--smoke` changes only the sizes (rounds,
/// iterations, end-to-end requests), wherever it stands: the other flags keep their meaning,
/// and an explicit `--rounds` or `--e2e-rounds` wins over it.
///
/// # Errors
///
/// An unknown argument, or a flag without its value.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Config, String> {
    fn count(value: Option<String>, usage: &str) -> Result<usize, String> {
        value
            .and_then(|n| n.parse().ok())
            .filter(|&n: &usize| n > 0)
            .ok_or_else(|| usage.to_owned())
    }
    let args: Vec<String> = args.into_iter().collect();
    let mut config = Config::full();
    if args.iter().any(|a| a == "--smoke") {
        config = Config {
            out: config.out.clone(),
            ..Config::smoke()
        };
    }
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => {}
            "--no-e2e" => config.e2e = false,
            "--per-layer" => config.per_layer = true,
            "--redis" => config.redis = true,
            "--e2e-rounds" => config.e2e_rounds = count(args.next(), "--e2e-rounds N (N > 0)")?,
            "--rounds" => config.rounds = count(args.next(), "--rounds N (N > 0)")?,
            "--only" => {
                let names = args.next().ok_or("--only NAME[,NAME...]")?;
                config.only = names.split(',').map(str::to_owned).collect();
            }
            "--out" => config.out = PathBuf::from(args.next().ok_or("--out DIR")?),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; use --smoke, --no-e2e, --per-layer, --redis, --rounds N, --e2e-rounds N, --only NAMES, --out DIR"
                ));
            }
        }
    }
    Ok(config)
}

/// Runs everything and writes `report.md` and `chart.svg` into `config.out`.
pub fn run(config: &Config) -> String {
    if config.redis {
        let report = format!("{}{}", machine(), redis::section(config.redis_decisions));
        std::fs::create_dir_all(&config.out).expect("create output dir");
        std::fs::write(config.out.join("redis.md"), &report).expect("write report");
        return report;
    }
    let rt = runtime();
    let guard = rt.enter();
    let mut variants = if config.per_layer {
        per_layer_variants()
    } else {
        variants()
    };
    if !config.only.is_empty() {
        variants.retain(|v| v.name == "bare" || config.only.iter().any(|o| o == v.name));
    }
    drop(guard);
    let rows = run_in_process(config, &rt, &mut variants);
    drop(variants);
    drop(rt);
    let mut report = machine();
    let _ = writeln!(
        report,
        "## In process ({} rounds × {} requests, interleaved)\n",
        config.rounds, config.iters
    );
    report.push_str(&table(&rows));
    report.push('\n');
    if config.per_layer {
        report.push_str("Each layer's cost over its hand-written twin, paired round by round:\n\n");
        report.push_str(&layer_table(&rows));
    } else {
        report.push_str("Overhead ratios, paired round by round:\n\n");
        report.push_str(&paired_table(&rows));
        if let Some(differences) = protection_table(&rows) {
            report.push_str(
                "\nProtection and outbound layers, ours minus its twin, paired round by round:\n\n",
            );
            report.push_str(&differences);
        }
    }
    report.push('\n');
    for r in &rows {
        let _ = writeln!(report, "- `{}`: {}", r.name, r.what);
    }
    if config.e2e && !config.per_layer {
        let e2e = e2e::run(config);
        report.push_str(&e2e::table(&e2e, config));
    }
    std::fs::create_dir_all(&config.out).expect("create output dir");
    std::fs::write(config.out.join("report.md"), &report).expect("write report");
    std::fs::write(config.out.join("chart.svg"), chart::svg(&rows)).expect("write chart");
    report
}

/// The machine and toolchain, for the report header.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    format!(
        "Machine: {model}, {cores} cores; {}; {profile} build.\n\n",
        rustc.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smoke mode: every variant answers 200, the harness runs end to end. Asserts nothing
    /// about time.
    #[test]
    fn smoke_run_completes() {
        let config = Config {
            rounds: 1,
            iters: 200,
            alloc_iters: 20,
            e2e_requests: 200,
            e2e_connections: 2,
            out: std::env::temp_dir().join("middleware-bench-smoke"),
            ..Config::smoke()
        };
        let report = run(&config);
        assert!(report.contains("| bare |"));
        assert!(report.contains("End to end"));
        assert!(report.contains("| std-rate-limit | tower-rate-limit |"));
        assert!(report.contains("| ours-outbound | hand-outbound |"));
        assert!(config.out.join("chart.svg").exists());
    }

    #[test]
    fn every_authenticating_variant_rejects_a_bad_token() {
        let rt = runtime();
        let variants = {
            let _guard = rt.enter();
            variants()
        };
        for mut v in variants {
            let mut req = request();
            req.headers_mut().insert(
                header::AUTHORIZATION,
                HeaderValue::from_static("Bearer wrong"),
            );
            let expected = if v.checks_auth { 401 } else { 200 };
            assert_eq!(v.runner.send(&rt, req), expected, "{}", v.name);
        }
    }

    /// The protection and outbound variants answer `200` to every request of a round: no limit
    /// is reached, so they measure the pass-through path they claim to.
    #[test]
    fn protection_variants_answer_every_request_ok() {
        let rt = runtime();
        let variants = {
            let _guard = rt.enter();
            protection::variants()
        };
        for mut v in variants {
            for _ in 0..2_000 {
                assert_eq!(v.runner.send(&rt, request()), 200, "{}", v.name);
            }
        }
    }

    /// Every pair of the protection table names two variants that exist.
    #[test]
    fn protection_pairs_name_existing_variants() {
        let rt = runtime();
        let _guard = rt.enter();
        let names: Vec<_> = protection::variants().iter().map(|v| v.name).collect();
        for (a, b) in protection::PAIRS {
            assert!(names.contains(&a) && names.contains(&b), "{a} / {b}");
        }
    }

    fn args(line: &str) -> Result<Config, String> {
        parse_args(line.split_whitespace().map(str::to_owned))
    }

    /// `.ci/docs-commands` appends `--smoke` to each documented command: it must not undo the
    /// flags before it.
    #[test]
    fn smoke_after_other_flags_keeps_them() {
        let config = args("--per-layer --no-e2e --rounds 5 --only a,b --out x --smoke").unwrap();
        assert!(config.per_layer, "--per-layer kept");
        assert!(!config.e2e, "--no-e2e kept");
        assert_eq!(config.rounds, 5, "an explicit --rounds wins");
        assert_eq!(config.only, ["a", "b"]);
        assert_eq!(config.out, PathBuf::from("x"));
        assert_eq!(config.iters, Config::smoke().iters, "smoke sizes");
    }

    #[test]
    fn redis_selects_the_redis_section_with_smoke_sizes() {
        let config = args("--redis --smoke").unwrap();
        assert!(config.redis);
        assert_eq!(config.redis_decisions, Config::smoke().redis_decisions);
        assert!(!args("--smoke").unwrap().redis);
    }

    #[test]
    fn smoke_alone_takes_the_smoke_sizes() {
        let config = args("--smoke").unwrap();
        let smoke = Config::smoke();
        assert_eq!(
            (config.rounds, config.iters, config.e2e_rounds, config.e2e),
            (smoke.rounds, smoke.iters, smoke.e2e_rounds, true)
        );
        assert_eq!(config.out, Config::full().out);
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        assert!(
            args("--frobnicate")
                .unwrap_err()
                .contains("unknown argument")
        );
        assert!(args("--rounds 0").is_err());
        assert!(args("--rounds").is_err());
        assert!(args("--only").is_err());
    }
}
