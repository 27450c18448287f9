//! The recommended stack in one call: request id, logging, timing, panic recovery and a request
//! budget, in the order that makes each of them see what it needs.
//!
//! ```text
//! request  ─▶ SetRequestId ─▶ Log ─▶ ServerTiming ─▶ CatchPanic ─▶ Timeout ─▶ [ConcurrencyLimit] ─▶ [RateLimit] ─▶ [RequestBodyLimit] ─▶ [RequestBodyTimeout] ─▶ your service
//! response ◀─ (x-request-id) ◀─ (one event) ◀─ (Server-Timing) ◀─ (500) ◀─ (503) ◀─ (503 shed) ◀─ (429) ◀─ (413) ◀─ (408) ◀─
//! ```
//!
//! Outermost first, and why:
//!
//! 1. **[`SetRequestIdLayer`]** — first, so that the id is in the context before anything logs,
//!    and last on the way out, so that *every* response carries `x-request-id`, including the
//!    ones the layers below make (a 503 from the timeout, a 500 from a panic, a 401 from auth).
//! 2. **[`LogLayer`]** — inside the id, so its span and event carry it; outside everything
//!    else, so it records the final status of every response (the timeout's 503, the panic's
//!    500) and sees client disconnects while the body streams.
//! 3. **[`ServerTimingLayer`]** — outside panic recovery and the budget, so that their
//!    responses carry `Server-Timing` too; it creates the request's
//!    [`Context`](crate::Context), so every layer below and the handler share it. The header
//!    carries `total` and the handler's marks. For the std layers' own times (`mw.timeout`,
//!    `mw.catch_panic`, `mw.auth`, ...) pass a timing layer with
//!    [`per_layer_times`](ServerTimingLayer::per_layer_times) to [`StackLayer::timing`]: they
//!    cost a clock read per layer and the list of marks, and they say more about the server
//!    than a production response should (see the timing module's advice for production).
//! 4. **[`CatchPanicLayer`]** — turns a panic anywhere below (the budget layer, auth, the
//!    handler, its response future or its body) into a 500 that still passes through timing,
//!    logging and the request id on its way out.
//! 5. **[`TimeoutLayer`]** — closest to the work it bounds: it sets the context deadline the
//!    handler sees, cancels the context with cause `deadline` and drops the work at expiry. One
//!    budget for every phase: waiting for the service to become ready (at most one budget,
//!    then `503` with `x-timeout-phase: ready`), the response head (`503`), and the response
//!    body (a stream cut by the budget ends with an error, not cleanly). Each expiry is
//!    reported to the request ([`Context::expiry`](crate::Context::expiry)) with its phase,
//!    so the access log names it.
//! 6. **[`ConcurrencyLimitLayer`](crate::limit::ConcurrencyLimitLayer)** (opt in:
//!    [`StackLayer::concurrency_limit`]) — just inside the budget, outside everything else and
//!    outside the routes' auth: when the server is full, the cheapest answer is the right one
//!    (a `503` with `Retry-After` at once, before a key lookup, a password hash or a body
//!    read); inside the budget, so a queued request waits at most until its deadline (then
//!    `503` with the phase `ready`); inside the id, the log, timing and panic recovery, so a
//!    shed request still carries `x-request-id` and makes one access record. Its place is held
//!    until the response body ends, so it bounds streaming responses too.
//! 7. **[`RateLimitLayer`](crate::rate_limit::RateLimitLayer)** (opt in:
//!    [`StackLayer::rate_limit`]) — inside the concurrency limit, so an overloaded server does
//!    not also hammer the key store (which may be remote); inside the budget, so a slow store
//!    is bounded by it. In the stack it runs before a route's auth: key it by the peer address
//!    or a header there. **A limit keyed by the principal goes after auth**, on the route:
//!    `AuthLayer` outside `RateLimitLayer::per_principal()` (before auth there is no
//!    principal, and every request would share the anonymous key).
//! 8. **[`RequestBodyLimitLayer`](crate::body_limit::RequestBodyLimitLayer)** (opt in:
//!    [`StackLayer::body_limit`]) — innermost but for the request-body deadlines, next to where
//!    the handler reads the body: a declared length over the limit is answered `413` before
//!    the handler runs and before any body timer is set; a body cut while streaming is named
//!    `413` (with `Connection: close`), whatever the handler made of the error. After the
//!    limits, so a request that was going to be shed or throttled is never read. The service
//!    sees `Request<LimitedBody<B>>`, which is why it is not on by default.
//! 9. **[`RequestBodyTimeoutLayer`]** (opt in: [`StackLayer::request_body_timeout`], or
//!    [`StackLayer::request_body_deadlines`] for deadlines derived from the budget) — innermost,
//!    where the handler reads the body: a client that stalls its upload gets `408` with
//!    `Connection: close` and the phase `request_body`, not the `503` of an overloaded server;
//!    a client that goes away mid-body cancels the request with cause `dropped`. Inside the
//!    budget, so its deadlines only ever name an earlier expiry. It is not on by default
//!    because it changes the request body type the service sees to
//!    [`TimeoutBody<B>`](crate::timeout::TimeoutBody): a service written for
//!    `Request<String>` (or any concrete body) would no longer fit.
//!
//! Authentication is per route: put an [`AuthLayer`](crate::auth::AuthLayer) on the routes that
//! need it, inside this stack (its 401s then carry the id, timing and one log event).
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use http::{Request, Response, StatusCode};
//! use middleware_std::stack::StackLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let app = ServiceBuilder::new()
//!     .layer(StackLayer::new(Duration::from_secs(1)))
//!     .service(service_fn(|req: Request<String>| async move {
//!         if req.uri().path() == "/slow" {
//!             tokio::time::sleep(Duration::from_secs(5)).await;
//!         }
//!         Ok::<_, Infallible>(Response::new(String::from("ok")))
//!     }));
//!
//! let res = app.clone().oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert!(res.headers().contains_key("x-request-id"));
//! assert!(res.headers().contains_key("server-timing"));
//!
//! let slow = Request::builder().uri("/slow").body(String::new()).unwrap();
//! let res = app.oneshot(slow).await.unwrap();
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert!(res.headers().contains_key("x-request-id"));
//! assert!(res.headers().contains_key("server-timing"));
//! # }
//! ```
//!
//! # Example: with the protection layers
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header};
//! use http_body_util::{BodyExt, Full};
//! use middleware_std::{
//!     body_limit::{LimitedBody, RequestBodyLimitLayer},
//!     limit::ConcurrencyLimitLayer,
//!     rate_limit::{Policy, RateLimitLayer},
//!     stack::StackLayer,
//! };
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let limit = ConcurrencyLimitLayer::new(1);
//! let app = StackLayer::new(Duration::from_secs(1))
//!     .concurrency_limit(limit.clone())
//!     .rate_limit(RateLimitLayer::new(Policy::per_minute(2)).per_header("x-api-key".parse().unwrap()))
//!     .body_limit(RequestBodyLimitLayer::new(16))
//!     .layer(service_fn(|req: Request<LimitedBody<Full<Bytes>>>| async move {
//!         let body = req.into_body().collect().await;
//!         let status = if body.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
//!         Ok::<_, Infallible>(Response::builder().status(status).body(Full::<Bytes>::from("done")).unwrap())
//!     }));
//! let request = |body: &'static str| {
//!     Request::builder().header("x-api-key", "k1").body(Full::from(body)).unwrap()
//! };
//!
//! // Within every limit; the response holds the only place until its body ends or is dropped.
//! let first = app.clone().oneshot(request("small")).await.unwrap();
//! assert_eq!(first.status(), StatusCode::OK);
//! // The server is full: shed at once, with the id.
//! let shed = app.clone().oneshot(request("small")).await.unwrap();
//! assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert!(shed.headers().contains_key(header::RETRY_AFTER));
//! assert!(shed.headers().contains_key("x-request-id"));
//! assert_eq!(first.into_body().collect().await.unwrap().to_bytes(), "done");
//! assert_eq!(limit.in_flight(), 0);
//!
//! // A body over 16 bytes: 413 (the second request of this key's quota).
//! let big = app.clone().oneshot(request("far more than sixteen bytes")).await.unwrap();
//! assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
//! big.into_body().collect().await.unwrap(); // its place is held until then
//! // The key's quota (2 a minute) is spent: 429.
//! let throttled = app.oneshot(request("small")).await.unwrap();
//! assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert!(throttled.headers().contains_key("x-request-id"));
//! # }
//! ```
//!
//! # Differences from tower-http
//!
//! tower-http leaves the order to you, and the natural `ServiceBuilder` order of its pieces
//! (`TraceLayer` inside `SetRequestIdLayer` inside `PropagateRequestIdLayer`...) is easy to get
//! subtly wrong: a timeout or panic response without the request id, a trace span without it.
//! Here the order is fixed and explained; each piece stays replaceable.
//!
//! # Per-route layers under the stack
//!
//! The stack already logs and times every request: a per-route [`LogLayer`] or
//! [`ServerTimingLayer`] under it (or a `#[handler]` that adds one) writes no second access
//! record and no second `Server-Timing` header. The outer one does the work, and the inner one
//! says so in one `warn!` per process; see the logging and timing module docs. A
//! [`SetRequestIdLayer`] inside a log or panic-recovery layer (the order of `Router::layer`
//! calls is the reverse of `ServiceBuilder`'s) warns once with the fix.
//!
//! # Introspection
//!
//! The stack and the service it makes implement [`Describe`](crate::Describe):
//! [`describe`](crate::describe())`(&app)` lists the layers outermost first with their settings
//! (never a secret), for a startup log line or a test. The chain ends at the first service that
//! does not describe itself; name yours with [`described`](crate::described). See the
//! [`StackLayer`] impl for an example.

use std::{fmt, time::Duration};

use tower_layer::{Identity, Layer};

use crate::{
    catch_panic::{CatchPanic, CatchPanicLayer, DefaultResponseForPanic},
    logging::{DefaultLevel, Log, LogLayer, PassRequestBody},
    request_id::{DefaultMakeRequestId, SetRequestId, SetRequestIdLayer},
    timeout::{RequestBodyTimeoutLayer, Timeout, TimeoutLayer},
    timing::{DefaultTimingFilter, ServerTiming, ServerTimingLayer},
};

/// The stack with its layer `$field` replaced by `$layer` (which may change its type) and every
/// other layer moved over: what each builder below does.
macro_rules! with_layer {
    ($stack:ident, $field:ident: $layer:expr) => {
        with_layer!(@each $stack, $field, $layer, [
            request_id, log, timing, catch_panic, timeout, concurrency_limit, rate_limit,
            body_limit, request_body
        ])
    };
    (@each $stack:ident, $field:ident, $layer:expr, [$($all:ident),+]) => {
        StackLayer { $($all: pick_layer!($all, $field, $layer, $stack.$all)),+ }
    };
}

/// `$new` for the field being replaced, `$old` for every other one (see `with_layer!`): one arm
/// a field, since `macro_rules!` compares identifiers only against literal ones.
#[rustfmt::skip]
macro_rules! pick_layer {
    (request_id, request_id, $new:expr, $old:expr) => { $new };
    (log, log, $new:expr, $old:expr) => { $new };
    (timing, timing, $new:expr, $old:expr) => { $new };
    (catch_panic, catch_panic, $new:expr, $old:expr) => { $new };
    (timeout, timeout, $new:expr, $old:expr) => { $new };
    (concurrency_limit, concurrency_limit, $new:expr, $old:expr) => { $new };
    (rate_limit, rate_limit, $new:expr, $old:expr) => { $new };
    (body_limit, body_limit, $new:expr, $old:expr) => { $new };
    (request_body, request_body, $new:expr, $old:expr) => { $new };
    ($other:ident, $field:ident, $new:expr, $old:expr) => { $old };
}

/// The service made by a [`StackLayer`] `L` around `S`: request id, log, timing, panic
/// recovery, budget, then the opt-in protection layers and the request-body timeout,
/// outermost first. `StackService<S>` is the default stack's service.
pub type StackService<S, L = StackLayer> = <L as Layer<S>>::Service;

/// The recommended stack as one layer. See the [module docs](self) for the order and why.
///
/// Each piece can be replaced by a configured one ([`StackLayer::request_id`],
/// [`StackLayer::log`], [`StackLayer::timing`], [`StackLayer::catch_panic`],
/// [`StackLayer::timeout`], [`StackLayer::request_body_timeout`]), and the protection layers
/// are opt in ([`StackLayer::concurrency_limit`], [`StackLayer::rate_limit`],
/// [`StackLayer::body_limit`]); the order stays. Each opt-in piece is a type parameter that
/// is [`Identity`] until it is set, so the default stack's type does not change.
#[must_use]
pub struct StackLayer<
    M = DefaultMakeRequestId,
    L = DefaultLevel,
    C = PassRequestBody,
    H = (),
    R = DefaultResponseForPanic,
    Q = Identity,
    F = DefaultTimingFilter,
    N = Identity,
    K = Identity,
    Z = Identity,
> {
    request_id: SetRequestIdLayer<M>,
    log: LogLayer<L, C>,
    timing: ServerTimingLayer<H, F>,
    catch_panic: CatchPanicLayer<R>,
    timeout: TimeoutLayer,
    concurrency_limit: N,
    rate_limit: K,
    body_limit: Z,
    request_body: Q,
}

impl StackLayer {
    /// The default stack with a whole-request budget of `budget` (answered `503` when spent).
    pub fn new(budget: Duration) -> Self {
        Self {
            request_id: SetRequestIdLayer::new(),
            log: LogLayer::new(),
            timing: ServerTimingLayer::new(),
            catch_panic: CatchPanicLayer::new(),
            timeout: TimeoutLayer::new(budget),
            concurrency_limit: Identity::new(),
            rate_limit: Identity::new(),
            body_limit: Identity::new(),
            request_body: Identity::new(),
        }
    }
}

impl<M, L, C, H, R, Q, F, N, K, Z> StackLayer<M, L, C, H, R, Q, F, N, K, Z> {
    /// Replaces the request-id layer.
    pub fn request_id<M2>(
        self,
        layer: SetRequestIdLayer<M2>,
    ) -> StackLayer<M2, L, C, H, R, Q, F, N, K, Z> {
        with_layer!(self, request_id: layer)
    }

    /// Replaces the logging layer.
    pub fn log<L2, C2>(
        self,
        layer: LogLayer<L2, C2>,
    ) -> StackLayer<M, L2, C2, H, R, Q, F, N, K, Z> {
        with_layer!(self, log: layer)
    }

    /// Replaces the timing layer (the default one reports `total` and the handler's marks;
    /// pass one with [`per_layer_times`](ServerTimingLayer::per_layer_times) for the std
    /// layers' own times; in production, see the timing module's advice on
    /// [`NotForRejected`](crate::timing::NotForRejected) and
    /// [`Precision`](crate::timing::Precision)).
    pub fn timing<H2, F2>(
        self,
        layer: ServerTimingLayer<H2, F2>,
    ) -> StackLayer<M, L, C, H2, R, Q, F2, N, K, Z> {
        with_layer!(self, timing: layer)
    }

    /// Replaces the panic-recovery layer.
    pub fn catch_panic<R2>(
        self,
        layer: CatchPanicLayer<R2>,
    ) -> StackLayer<M, L, C, H, R2, Q, F, N, K, Z> {
        with_layer!(self, catch_panic: layer)
    }

    /// Replaces the budget layer. The request-body deadlines set with
    /// [`request_body_deadlines`](Self::request_body_deadlines) before stay as they were.
    pub fn timeout(mut self, layer: TimeoutLayer) -> Self {
        self.timeout = layer;
        self
    }

    /// Puts `layer` innermost, inside the budget: the service then sees
    /// `Request<TimeoutBody<B>>`. See the [module docs](self) for why it goes there.
    pub fn request_body_timeout(
        self,
        layer: RequestBodyTimeoutLayer,
    ) -> StackLayer<M, L, C, H, R, RequestBodyTimeoutLayer, F, N, K, Z> {
        with_layer!(self, request_body: layer)
    }

    /// Request-body deadlines derived from the budget in force now: idle, half the budget
    /// (a client silent that long is stalled, not slow); total, nine tenths of it (so that a
    /// body still arriving when the budget is nearly spent is named as the client's slow
    /// upload, `408`, rather than as the server's `503`). Same as
    /// [`request_body_timeout`](Self::request_body_timeout) with
    /// [`RequestBodyTimeoutLayer::new`]`(budget / 2, budget * 9 / 10)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use middleware_std::stack::StackLayer;
    ///
    /// let stack = StackLayer::new(Duration::from_secs(10)).request_body_deadlines();
    /// assert!(format!("{stack:?}").contains("request_body"));
    /// ```
    pub fn request_body_deadlines(
        self,
    ) -> StackLayer<M, L, C, H, R, RequestBodyTimeoutLayer, F, N, K, Z> {
        let budget = self.timeout.budget();
        self.request_body_timeout(RequestBodyTimeoutLayer::new(budget / 2, budget * 9 / 10))
    }

    /// Puts a concurrency limit with load shedding (or a bounded queue) inside the budget and
    /// outside everything else the stack holds (and outside the routes' auth): an overloaded
    /// server answers `503` (or `429`) with `Retry-After` before it spends anything on the
    /// request but the id, the log record and the budget. See the [module docs](self) for the
    /// order and why.
    #[cfg(feature = "limit")]
    pub fn concurrency_limit(
        self,
        layer: crate::limit::ConcurrencyLimitLayer,
    ) -> StackLayer<M, L, C, H, R, Q, F, crate::limit::ConcurrencyLimitLayer, K, Z> {
        with_layer!(self, concurrency_limit: layer)
    }

    /// Puts a keyed rate limit inside the concurrency limit: `429` with `Retry-After` and the
    /// `RateLimit` headers. In the stack it runs before a route's auth, so key it by something
    /// known before auth (the peer address, a header); a limit keyed by the principal belongs
    /// on the route, after its [`AuthLayer`](crate::auth::AuthLayer). See the
    /// [module docs](self) for the order and why.
    #[cfg(feature = "rate-limit")]
    #[expect(
        clippy::type_complexity,
        reason = "the stack's ten type parameters; an alias would only hide them"
    )]
    pub fn rate_limit<M2, St>(
        self,
        layer: crate::rate_limit::RateLimitLayer<M2, St>,
    ) -> StackLayer<M, L, C, H, R, Q, F, N, crate::rate_limit::RateLimitLayer<M2, St>, Z> {
        with_layer!(self, rate_limit: layer)
    }

    /// Puts a request body limit innermost, just outside the request-body deadlines: the
    /// service then sees `Request<LimitedBody<B>>` (or `Request<TimeoutBody<LimitedBody<B>>>`
    /// with deadlines); a body over the limit is answered `413`. See the [module docs](self)
    /// for the order and why.
    #[cfg(feature = "body-limit")]
    pub fn body_limit(
        self,
        layer: crate::body_limit::RequestBodyLimitLayer,
    ) -> StackLayer<M, L, C, H, R, Q, F, N, K, crate::body_limit::RequestBodyLimitLayer> {
        with_layer!(self, body_limit: layer)
    }
}

impl<
    M: Clone,
    L: Clone,
    C: Clone,
    H: Clone,
    R: Clone,
    Q: Clone,
    F: Clone,
    N: Clone,
    K: Clone,
    Z: Clone,
> Clone for StackLayer<M, L, C, H, R, Q, F, N, K, Z>
{
    fn clone(&self) -> Self {
        Self {
            request_id: self.request_id.clone(),
            log: self.log.clone(),
            timing: self.timing.clone(),
            catch_panic: self.catch_panic.clone(),
            timeout: self.timeout.clone(),
            concurrency_limit: self.concurrency_limit.clone(),
            rate_limit: self.rate_limit.clone(),
            body_limit: self.body_limit.clone(),
            request_body: self.request_body.clone(),
        }
    }
}

impl<M, L, C, H, R, Q, F, N, K, Z> fmt::Debug for StackLayer<M, L, C, H, R, Q, F, N, K, Z>
where
    SetRequestIdLayer<M>: fmt::Debug,
    LogLayer<L, C>: fmt::Debug,
    ServerTimingLayer<H, F>: fmt::Debug,
    CatchPanicLayer<R>: fmt::Debug,
    Q: fmt::Debug,
    N: fmt::Debug,
    K: fmt::Debug,
    Z: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(StackLayer))
            .field("request_id", &self.request_id)
            .field("log", &self.log)
            .field("timing", &self.timing)
            .field("catch_panic", &self.catch_panic)
            .field("timeout", &self.timeout)
            .field("concurrency_limit", &self.concurrency_limit)
            .field("rate_limit", &self.rate_limit)
            .field("body_limit", &self.body_limit)
            .field("request_body", &self.request_body)
            .finish()
    }
}

impl<S, M, L, C, H, R, Q, F, N, K, Z> Layer<S> for StackLayer<M, L, C, H, R, Q, F, N, K, Z>
where
    M: Clone,
    L: Clone,
    C: Clone,
    H: Clone,
    R: Clone,
    F: Clone,
    Q: Layer<S>,
    Z: Layer<Q::Service>,
    K: Layer<Z::Service>,
    N: Layer<K::Service>,
{
    type Service = SetRequestId<
        Log<
            ServerTiming<
                CatchPanic<
                    Timeout<
                        <N as Layer<
                            <K as Layer<<Z as Layer<<Q as Layer<S>>::Service>>::Service>>::Service,
                        >>::Service,
                    >,
                    R,
                >,
                H,
                F,
            >,
            L,
            C,
        >,
        M,
    >;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.request_body.layer(inner);
        let inner = self.body_limit.layer(inner);
        let inner = self.rate_limit.layer(inner);
        let inner = self.concurrency_limit.layer(inner);
        let inner = self.timeout.layer(inner);
        let inner = self.catch_panic.layer(inner);
        let inner = self.timing.layer(inner);
        let inner = self.log.layer(inner);
        self.request_id.layer(inner)
    }
}

// ----- stack introspection -----

/// The stack's layers, outermost first; the opt-in ones only when set. The service it makes
/// describes itself the same way, followed by the inner service.
///
/// ```
/// use std::time::Duration;
/// use middleware_std::{describe, described, stack::StackLayer};
/// use tower::Layer;
///
/// let stack = StackLayer::new(Duration::from_secs(2));
/// let names: Vec<String> = describe(&stack).names().map(str::to_owned).collect();
/// assert_eq!(
///     names,
///     ["SetRequestIdLayer", "LogLayer", "ServerTimingLayer", "CatchPanicLayer", "TimeoutLayer"]
/// );
///
/// let app = stack.layer(described("handler", tower::service_fn(|req: http::Request<String>| async move {
///     Ok::<_, std::convert::Infallible>(http::Response::new(req.into_body()))
/// })));
/// let chain = describe(&app);
/// assert!(chain.is_complete());
/// assert_eq!(chain.find("TimeoutLayer").unwrap().get("budget"), Some("2s"));
/// assert!(chain.to_string().ends_with(" -> handler"));
/// ```
impl<M, L, C, H, R, Q, F, N, K, Z> middleware_core::Describe
    for StackLayer<M, L, C, H, R, Q, F, N, K, Z>
where
    Q: middleware_core::Describe,
    N: middleware_core::Describe,
    K: middleware_core::Describe,
    Z: middleware_core::Describe,
{
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.request_id.describe(description);
        self.log.describe(description);
        self.timing.describe(description);
        self.catch_panic.describe(description);
        self.timeout.describe(description);
        self.concurrency_limit.describe(description);
        self.rate_limit.describe(description);
        self.body_limit.describe(description);
        self.request_body.describe(description);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response, StatusCode};
    use tower::{ServiceExt, service_fn};

    use super::*;
    use http_body_util::BodyExt;
    use middleware_core::testing::Conformance;

    use crate::{CancelCause, RequestExt, timeout::TimeoutBody};

    #[tokio::test(start_paused = true)]
    async fn every_layer_made_response_carries_the_id_and_timing() {
        let app = StackLayer::new(Duration::from_millis(100)).layer(service_fn(
            |req: Request<String>| async move {
                match req.uri().path() {
                    "/panic" => panic!("handler bug"),
                    "/slow" => {
                        let cx = req.try_context().expect("the stack made one").clone();
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        drop(cx);
                        Ok::<_, Infallible>(Response::new(String::new()))
                    }
                    _ => Ok(Response::new(String::new())),
                }
            },
        ));
        for (path, status) in [
            ("/", StatusCode::OK),
            ("/slow", StatusCode::SERVICE_UNAVAILABLE),
            ("/panic", StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let req = Request::builder().uri(path).body(String::new()).unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), status, "{path}");
            assert!(res.headers().contains_key("x-request-id"), "{path}");
            assert!(res.headers().contains_key("server-timing"), "{path}");
        }
    }

    #[cfg(feature = "auth")]
    #[tokio::test]
    async fn an_auth_rejection_inside_the_stack_carries_the_id_and_timing() {
        use crate::auth::{AuthLayer, Principal};
        let app = StackLayer::new(Duration::from_secs(1)).layer(
            AuthLayer::bearer("s3cret", Principal::new("ada")).layer(service_fn(
                |_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
            )),
        );
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().contains_key("www-authenticate"));
        assert!(res.headers().contains_key("x-request-id"));
        assert!(res.headers().contains_key("server-timing"));
    }

    #[cfg(feature = "auth")]
    #[tokio::test]
    async fn the_stack_takes_a_timing_layer_that_stays_off_rejected_requests() {
        use crate::{
            auth::{AuthLayer, Principal},
            timing::{NotForRejected, Precision},
        };
        let timing = ServerTimingLayer::new()
            .per_layer_times(true)
            .filter(NotForRejected)
            .precision(Precision::TenMillis);
        let app = StackLayer::new(Duration::from_secs(1))
            .timing(timing)
            .layer(
                AuthLayer::bearer("s3cret", Principal::new("ada")).layer(service_fn(
                    |_: Request<String>| async {
                        Ok::<_, Infallible>(Response::new(String::new()))
                    },
                )),
            );
        let res = app
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(!res.headers().contains_key("server-timing"));
        let req = Request::builder()
            .header("authorization", "Bearer s3cret")
            .body(String::new())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().contains_key("server-timing"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_handler_sees_the_budget_and_the_id() {
        let app = StackLayer::new(Duration::from_secs(2)).layer(service_fn(
            |req: Request<String>| async move {
                let cx = req.try_context().expect("context");
                assert!(cx.remaining().unwrap() <= Duration::from_secs(2));
                assert!(cx.request_id().is_some());
                assert_eq!(cx.cause(), None::<CancelCause>);
                Ok::<_, Infallible>(Response::new(cx.request_id().unwrap().to_string()))
            },
        ));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(header.as_bytes(), &body[..]);
    }

    #[tokio::test]
    async fn passes_the_conformance_kit() {
        Conformance::new(StackLayer::new(Duration::from_secs(5)))
            .run()
            .await;
        // With request-body deadlines the body type changes; unwrapping it again lets the
        // kit's `Request<String>` probe sit inside.
        let unwrap_body = tower::util::MapRequestLayer::new(|req: Request<TimeoutBody<String>>| {
            req.map(TimeoutBody::into_inner)
        });
        Conformance::new(tower::layer::util::Stack::new(
            unwrap_body,
            StackLayer::new(Duration::from_secs(5)).request_body_deadlines(),
        ))
        .with_request(|| Request::new(String::from("a body")))
        .run()
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn server_timing_carries_the_inner_layers_own_times_when_asked() {
        let handler = || {
            service_fn(|_: Request<String>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            })
        };
        let app = StackLayer::new(Duration::from_secs(1))
            .timing(ServerTimingLayer::new().per_layer_times(true))
            .layer(handler());
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let timing = res.headers()["server-timing"].to_str().unwrap();
        assert!(timing.starts_with("total;dur="), "{timing}");
        for layer in ["mw.catch_panic;dur=", "mw.timeout;dur="] {
            assert!(timing.contains(layer), "{layer} missing: {timing}");
        }
        // Not by default: they say more than a production response should.
        let app = StackLayer::new(Duration::from_secs(1)).layer(handler());
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let timing = res.headers()["server-timing"].to_str().unwrap();
        assert!(!timing.contains("mw."), "{timing}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unready_service_inside_the_stack_gets_503_after_the_budget() {
        let start = tokio::time::Instant::now();
        let app = StackLayer::new(Duration::from_millis(100)).layer(NeverReady);
        let res = app.oneshot(Request::new(String::new()));
        // Bounded: a stack that waits for readiness without end must fail, not hang.
        let res = tokio::time::timeout(Duration::from_secs(60), res)
            .await
            .expect("still waiting for readiness after 60 s")
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["x-timeout-phase"], "ready");
        assert!(res.headers().contains_key("x-request-id"));
        assert!(res.headers().contains_key("server-timing"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_upload_gets_408_from_the_request_body_deadlines() {
        let stack = StackLayer::new(Duration::from_secs(2)).request_body_deadlines();
        assert!(format!("{stack:?}").contains("idle: Some(1s)"), "{stack:?}");
        let app = stack.layer(service_fn(
            |req: Request<TimeoutBody<Stalled>>| async move {
                let read = req.into_body().collect().await;
                assert!(read.is_err());
                Ok::<_, Infallible>(Response::new(String::from("read failed")))
            },
        ));
        let start = tokio::time::Instant::now();
        let mut req = Request::new(Stalled);
        let cx = req.context().clone();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "idle: half the budget"
        );
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(res.headers()["x-timeout-phase"], "request-body");
        assert_eq!(res.headers()["connection"], "close");
        assert!(res.headers().contains_key("x-request-id"));
        let expiry = cx.expiry().expect("reported");
        assert_eq!(expiry.phase(), crate::TimeoutPhase::RequestBody);
        assert_eq!(cx.cause(), Some(CancelCause::Deadline));
    }

    /// The protection layers in the stack: their rejections pass out through the id, the log
    /// and timing like every other response.
    #[cfg(all(feature = "limit", feature = "rate-limit", feature = "body-limit"))]
    mod protection {
        use std::sync::{Arc, Mutex};

        use bytes::Bytes;
        use http::header;
        use http_body_util::Full;

        use super::*;
        use crate::{
            body_limit::{LimitedBody, RequestBodyLimitLayer},
            limit::ConcurrencyLimitLayer,
            rate_limit::{Policy, RateLimitLayer},
        };

        fn app(
            limit: &ConcurrencyLimitLayer,
        ) -> impl tower_service::Service<
            Request<Full<Bytes>>,
            Response = Response<impl http_body::Body<Data = Bytes, Error: std::fmt::Debug>>,
            Error = Infallible,
            Future: Send,
        > + Clone {
            StackLayer::new(Duration::from_secs(1))
                .concurrency_limit(limit.clone())
                .rate_limit(
                    RateLimitLayer::new(Policy::per_minute(2))
                        .per_header(http::HeaderName::from_static("x-api-key")),
                )
                .body_limit(RequestBodyLimitLayer::new(16))
                .layer(service_fn(
                    |req: Request<LimitedBody<Full<Bytes>>>| async move {
                        let status = match req.into_body().collect().await {
                            Ok(_) => StatusCode::OK,
                            Err(_) => StatusCode::BAD_REQUEST,
                        };
                        let mut res = Response::new(Full::from("done"));
                        *res.status_mut() = status;
                        Ok::<_, Infallible>(res)
                    },
                ))
        }

        fn request(body: &'static str) -> Request<Full<Bytes>> {
            Request::builder()
                .header("x-api-key", "k1")
                .body(Full::from(body))
                .unwrap()
        }

        #[tokio::test]
        async fn shed_throttled_and_oversized_responses_carry_the_id_and_one_access_record() {
            let (writer, logs) = writer();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(writer)
                .with_ansi(false)
                .finish();
            let _guard = tracing::subscriber::set_default(subscriber);
            let limit = ConcurrencyLimitLayer::new(1);
            let app = app(&limit);

            let first = app.clone().oneshot(request("small")).await.unwrap();
            assert_eq!(first.status(), StatusCode::OK);
            // The only place is held by `first`'s body.
            let shed = app.clone().oneshot(request("small")).await.unwrap();
            assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
            first.into_body().collect().await.unwrap();
            assert_eq!(limit.in_flight(), 0);
            ends_with_the_id(shed).await;

            let big = app
                .clone()
                .oneshot(request("far more than sixteen bytes"))
                .await
                .unwrap();
            assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
            ends_with_the_id(big).await;

            // The key's two requests of the minute are spent.
            let throttled = app.clone().oneshot(request("small")).await.unwrap();
            assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
            ends_with_the_id(throttled).await;
            assert_eq!(limit.in_flight(), 0, "no place leaked");

            let logs = logs();
            let records: Vec<&str> = logs
                .lines()
                .filter(|l| l.contains("request finished"))
                .collect();
            assert_eq!(records.len(), 4, "one record per request: {logs}");
            for (record, status) in records.iter().zip(["200", "503", "413", "429"]) {
                assert!(
                    record.contains(&format!("http.response.status_code={status}")),
                    "{status}: {record}"
                );
                assert!(record.contains("request_id="), "{record}");
            }
        }

        #[tokio::test]
        async fn a_shed_request_spends_no_rate_limit_quota_and_is_never_read() {
            let limit = ConcurrencyLimitLayer::new(1);
            let app = app(&limit);
            let first = app.clone().oneshot(request("small")).await.unwrap();
            for _ in 0..10 {
                let res = app.clone().oneshot(request("small")).await.unwrap();
                assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            }
            drop(first);
            // The key's second request of the minute is still allowed: the shed ones never
            // reached the rate limit.
            let res = app.oneshot(request("small")).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }

        #[tokio::test(start_paused = true)]
        async fn the_body_limit_sits_outside_the_request_body_deadlines() {
            let app = StackLayer::new(Duration::from_secs(2))
                .body_limit(RequestBodyLimitLayer::new(16))
                .request_body_deadlines()
                .layer(service_fn(
                    |req: Request<TimeoutBody<LimitedBody<Full<Bytes>>>>| async move {
                        let read = req.into_body().collect().await;
                        assert!(read.is_err(), "the body is over the limit");
                        Ok::<_, Infallible>(Response::new(String::from("read failed")))
                    },
                ));
            // A declared length over the limit: `413` before any body timer.
            let start = tokio::time::Instant::now();
            let declared = Request::builder()
                .header(header::CONTENT_LENGTH, "1000000")
                .body(Full::from("not read"))
                .unwrap();
            let res = app.clone().oneshot(declared).await.unwrap();
            assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(start.elapsed(), Duration::ZERO);
            // A body cut while streaming through the deadline body: still `413`, not `408`.
            let res = app
                .oneshot(request("far more than sixteen bytes"))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert!(res.headers().contains_key("x-request-id"));
        }

        async fn ends_with_the_id<B: http_body::Body<Error: std::fmt::Debug>>(res: Response<B>) {
            let status = res.status();
            assert!(res.headers().contains_key("x-request-id"), "{status}");
            assert!(res.headers().contains_key("server-timing"), "{status}");
            assert!(
                res.headers().contains_key(header::RETRY_AFTER) || status == 413,
                "{status}"
            );
            res.into_body().collect().await.unwrap();
        }

        #[cfg(feature = "auth")]
        #[tokio::test]
        async fn a_limit_keyed_by_principal_on_the_route_after_auth_counts_only_its_principal() {
            use crate::auth::{AuthLayer, Principal};
            let route = AuthLayer::bearer("s3cret", Principal::new("ada")).layer(
                RateLimitLayer::new(Policy::per_minute(1))
                    .per_principal()
                    .layer(service_fn(|_: Request<String>| async {
                        Ok::<_, Infallible>(Response::new(String::from("ok")))
                    })),
            );
            let app = StackLayer::new(Duration::from_secs(1))
                .concurrency_limit(ConcurrencyLimitLayer::new(8))
                .layer(route);
            let authed = || {
                Request::builder()
                    .header(header::AUTHORIZATION, "Bearer s3cret")
                    .body(String::new())
                    .unwrap()
            };
            let res = app.clone().oneshot(authed()).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            // Unauthenticated requests are answered by auth and spend nothing of ada's quota.
            for _ in 0..3 {
                let res = app
                    .clone()
                    .oneshot(Request::new(String::new()))
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            }
            let res = app.oneshot(authed()).await.unwrap();
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(res.headers().contains_key("x-request-id"));
            assert!(
                res.headers().contains_key("ratelimit"),
                "{:?}",
                res.headers()
            );
        }

        #[tokio::test]
        async fn with_every_protection_layer_the_stack_passes_the_conformance_kit() {
            let unwrap_body =
                tower::util::MapRequestLayer::new(|req: Request<LimitedBody<String>>| {
                    req.map(LimitedBody::into_inner)
                });
            Conformance::new(tower::layer::util::Stack::new(
                unwrap_body,
                StackLayer::new(Duration::from_secs(5))
                    .concurrency_limit(ConcurrencyLimitLayer::new(64))
                    .rate_limit(RateLimitLayer::new(Policy::per_second(1000)))
                    .body_limit(RequestBodyLimitLayer::new(1024)),
            ))
            .with_request(|| Request::new(String::from("a body")))
            .run()
            .await;
        }

        fn writer() -> (
            impl for<'a> tracing_subscriber::fmt::MakeWriter<'a> + 'static,
            impl Fn() -> String,
        ) {
            #[derive(Clone)]
            struct Buf(Arc<Mutex<Vec<u8>>>);
            impl std::io::Write for Buf {
                fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                    self.0.lock().unwrap().extend_from_slice(b);
                    Ok(b.len())
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    Ok(())
                }
            }
            let buf = Buf(Arc::default());
            let read = buf.clone();
            (
                move || buf.clone(),
                move || String::from_utf8(read.0.lock().unwrap().clone()).unwrap(),
            )
        }
    }

    /// A service that is never ready.
    #[derive(Clone, Copy, Debug)]
    struct NeverReady;

    impl tower_service::Service<Request<String>> for NeverReady {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Pending
        }

        fn call(&mut self, _: Request<String>) -> Self::Future {
            panic!("an unready service was called")
        }
    }

    /// A request body that never sends anything (and never ends).
    struct Stalled;

    impl http_body::Body for Stalled {
        type Data = bytes::Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
            std::task::Poll::Pending
        }
    }
}
