//! The authoring styles: [`Middleware`] (around), [`Hook`] (before/after, may answer early) and
//! [`Observe`] (before/after, never answers early).

use std::{future::Future, ops::ControlFlow};

use bytes::Bytes;

use crate::{
    body::ResponseBody,
    next::{ChainNext, Next},
};

/// What a middleware or a [`Next`] resolves to: the response, with a [`ResponseBody`] over the
/// inner body, or the inner service's error, passed through unchanged.
pub type Outcome<N> =
    Result<http::Response<ResponseBody<<N as Next>::ResBody>>, <N as Next>::Error>;

/// A middleware in the around style: `handle(req, next)`, like Go's `func(w, r, next)`.
///
/// `handle` may change the request, call `next.run(req)` at most once (it consumes `next`), or
/// return without calling it (short-circuit), and may change the response afterwards. The
/// request's [`Context`](crate::Context) is at hand through
/// [`RequestExt::context`](crate::RequestExt::context), which finds it or creates it: the
/// adapter itself never creates one, so a middleware that does not need a context does not pay
/// for it.
///
/// Turn a middleware into a tower layer with [`MiddlewareLayer::new`](crate::MiddlewareLayer::new)
/// and compose several into one layer with [`Middleware::then`].
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use http::{HeaderValue, Request, Response, StatusCode};
/// use middleware_core::{Middleware, MiddlewareLayer, Next, Outcome, RequestExt, ResponseBody};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// struct RequireJson;
///
/// impl Middleware for RequireJson {
///     async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
///         if req.headers().get("content-type") != Some(&HeaderValue::from_static("application/json")) {
///             // Short-circuit: the inner service is not called.
///             let res = Response::builder()
///                 .status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
///                 .body(ResponseBody::full("expected application/json"))
///                 .unwrap();
///             return Ok(res);
///         }
///         let cx = req.context().clone();
///         let mut res = next.run(req).await?;
///         let ms = u64::try_from(cx.elapsed().as_millis()).unwrap_or(u64::MAX);
///         res.headers_mut().insert("x-elapsed-ms", ms.into());
///         Ok(res)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(MiddlewareLayer::new(RequireJson))
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("ok")))
///     }));
///
/// let res = svc.clone().oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
///
/// let req = Request::builder().header("content-type", "application/json").body(String::new()).unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// assert!(res.headers().contains_key("x-elapsed-ms"));
/// # }
/// ```
///
/// # Around or hook: the trade-off
///
/// There are two styles because there are two costs.
///
/// - `Middleware` (this trait) is the flexible one: arbitrary async code before and after the
///   inner call. Its future cannot be named on stable Rust, so the adapter boxes it: **one heap
///   allocation per request**. A [`Chain`] of any number of around-style middlewares is still
///   boxed once: the futures nest into one state machine. The request's
///   [`Context`](crate::Context) costs two more allocations, once per request however many
///   layers share it, and only if some layer or the handler asks for it.
/// - [`Hook`] is the zero-cost one: a synchronous `before` (which may short-circuit) and a
///   synchronous `after`. Its tower future is a named pin-project-lite type: **zero heap
///   allocations per request**, and it creates no context unless `before` asks for one. Most
///   header-level middleware (auth checks, header stamping, request ids) fits this shape.
/// - [`Observe`] is a hook that cannot answer early: the same zero allocations, and its layer
///   also leaves the response body type alone (a [`Hook`] wraps it in a [`ResponseBody`]), so
///   logging, timing and stamping cost what they cost hand-written.
///
/// # Backpressure / readiness
///
/// The adapter's `poll_ready` forwards to the inner service, so an inner service that is not
/// ready keeps the whole stack not ready. In `call`, the adapter takes the *ready* inner service
/// out with `mem::replace` (leaving a fresh clone behind for the next `poll_ready`) and hands it
/// to `next`: the service that `next.run` calls is always the one that reported ready. A
/// middleware that short-circuits simply drops `next`, which releases any reservation the inner
/// service took in `poll_ready`.
///
/// # Errors
///
/// The inner service's error passes through unchanged (`next.run(req).await?`): the adapter's
/// `Service::Error` is the inner one, so a stack over an axum router stays `Infallible`. A
/// middleware that wants to fail answers with a response instead, usually a rendered
/// [`Error`](crate::Error) (see [`Context::render_error`](crate::Context::render_error)).
///
/// # Pitfalls
///
/// - `handle` is generic over `N: Next`; it must work for any inner service and any body
///   types, which is what makes the same middleware usable around axum, tonic and hyper. A
///   middleware that needs to read or rewrite body bytes is better written as a plain tower
///   layer.
/// - The future must be `Send`. It may borrow `&self`, but the adapter's boxed future is
///   `'static`, so state handed to spawned work goes through a
///   [`Context`](crate::Context) clone, not through borrows of the request.
/// - Dropping the request future (client gone, outer timeout) cancels the context with
///   [`CancelCause::Dropped`](crate::CancelCause::Dropped) if the context existed when the
///   request entered the adapter or reached the inner service; work spawned from `handle` should
///   watch [`Context::cancelled`](crate::Context::cancelled). A context first created by the
///   handler itself is invisible to the layers above it: put [`EnsureContext`] (or any layer
///   that creates the context, as every `middleware-std` layer does) in front of handlers that
///   rely on drop cancellation.
/// - An `async fn handle` that reads the request before passing it on (`req.headers()`, then
///   `next.run(req).await`) stores the request **twice** in its future: an `async fn` moves
///   each argument into a local, and a local that was borrowed keeps its slot across the
///   `.await`, next to the argument itself (a rustc limitation): about 250 bytes more per
///   level in the boxed future, for as long as the request is in flight. Where that memory
///   matters (many long-lived requests), return an `async move` block instead: it captures the
///   request once and reads it in place. The time per request is the same either way in our
///   benchmark. `#[middleware_fn]` expands to this form:
///
///   ```
///   use std::future::Future;
///   use http::{Request, StatusCode};
///   use middleware_core::{Middleware, Next, Outcome};
///
///   struct Keyed;
///
///   impl Middleware for Keyed {
///       // Clippy's `manual_async_fn` suggests the `async fn` this form avoids.
///       #[allow(clippy::manual_async_fn)]
///       fn handle<N: Next>(
///           &self,
///           req: Request<N::ReqBody>,
///           next: N,
///       ) -> impl Future<Output = Outcome<N>> + Send {
///           async move {
///               let keyed = req.headers().contains_key("x-key");
///               let mut res = next.run(req).await?;
///               if keyed {
///                   *res.status_mut() = StatusCode::ACCEPTED;
///               }
///               Ok(res)
///           }
///       }
///   }
///   ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an around-style middleware",
    label = "does not implement `Middleware`",
    note = "implement `middleware_core::Middleware` (async `handle(req, next)`), or `middleware_core::Hook` and wrap it in `HookLayer`; see https://docs.rs/middleware-core/latest/middleware_core/trait.Middleware.html"
)]
pub trait Middleware: Send + Sync + 'static {
    /// Handles one request; see the [trait docs](Middleware).
    fn handle<N: Next>(
        &self,
        req: http::Request<N::ReqBody>,
        next: N,
    ) -> impl Future<Output = Outcome<N>> + Send;

    /// Composes `self` (outer) with `inner`: a request passes `self` first, then `inner`.
    ///
    /// The chain is itself a [`Middleware`]; however long, one [`MiddlewareLayer`] over it boxes
    /// its future once per request.
    ///
    /// [`MiddlewareLayer`]: crate::MiddlewareLayer
    #[must_use]
    fn then<M: Middleware>(self, inner: M) -> Chain<Self, M>
    where
        Self: Sized,
    {
        Chain { outer: self, inner }
    }
}

/// Two middlewares composed: `outer` sees the request first and the response last.
///
/// Made with [`Middleware::then`].
#[derive(Clone, Debug, Default)]
pub struct Chain<O, I> {
    outer: O,
    inner: I,
}

impl<O, I> Chain<O, I> {
    /// The outer and inner middleware.
    pub fn into_parts(self) -> (O, I) {
        (self.outer, self.inner)
    }
}

impl<O: Middleware, I: Middleware> Middleware for Chain<O, I> {
    fn handle<N: Next>(
        &self,
        req: http::Request<N::ReqBody>,
        next: N,
    ) -> impl Future<Output = Outcome<N>> + Send {
        self.outer.handle(req, ChainNext::new(&self.inner, next))
    }
}

/// A middleware in the hook style: synchronous `before` and `after`, zero allocations.
///
/// `before` sees the request and either lets it continue with some state, or short-circuits
/// with a response (the inner service is then not called). `after` gets that state back with
/// the inner service's response. The state is dropped without `after` when the inner service
/// fails or the request future is dropped, so a `Drop` impl on it sees every ending.
///
/// Wrap a hook in [`HookLayer`](crate::HookLayer) to use it as a tower layer; see the
/// [`Middleware`] trait docs for when to pick which style.
///
/// # Hook or [`Observe`]
///
/// A hook may answer early, so its layer's response body is a [`ResponseBody`] over the inner
/// body: every response is re-wrapped, and every body poll goes through one more enum level.
/// A hook that never breaks (logging, timing, header stamping) pays for that and gains nothing:
/// write it as an [`Observe`] instead, whose layer returns the inner service's response type
/// unchanged. Keep `Hook` for the ones that answer early (auth checks, required headers).
///
/// # Example
///
/// ```
/// use std::{convert::Infallible, ops::ControlFlow};
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use middleware_core::{Hook, HookLayer, ResponseBody};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// /// Rejects requests without an `x-tenant` header and echoes it on the response.
/// struct Tenant;
///
/// impl Hook for Tenant {
///     type State = http::HeaderValue;
///
///     fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>, Self::State> {
///         match req.headers().get("x-tenant") {
///             Some(tenant) => ControlFlow::Continue(tenant.clone()),
///             None => {
///                 let mut res = Response::new(Bytes::from_static(b"missing x-tenant"));
///                 *res.status_mut() = StatusCode::BAD_REQUEST;
///                 ControlFlow::Break(res)
///             }
///         }
///     }
///
///     fn after<B>(&self, tenant: Self::State, res: &mut Response<ResponseBody<B>>) {
///         res.headers_mut().insert("x-tenant", tenant);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(HookLayer::new(Tenant))
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("ok")))
///     }));
///
/// let res = svc.clone().oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::BAD_REQUEST);
///
/// let req = Request::builder().header("x-tenant", "acme").body(String::new()).unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.headers()["x-tenant"], "acme");
/// # }
/// ```
///
/// # Backpressure / readiness
///
/// The adapter forwards `poll_ready` and calls the inner service synchronously inside its own
/// `call`, so the service that reported ready is the one called, with no clone at all.
///
/// # Pitfalls
///
/// - Nothing here may block: `before` and `after` run inside `call` and `poll`.
/// - `after` is not called for short-circuited requests, inner errors, or dropped futures.
/// - The [`Context`](crate::Context) is not created for a hook unless `before` asks for it with
///   [`RequestExt::context`](crate::RequestExt::context); a hook that only reads it uses
///   [`RequestExt::try_context`](crate::RequestExt::try_context) and stays allocation-free.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a hook-style middleware",
    label = "does not implement `Hook`",
    note = "implement `middleware_core::Hook` (synchronous `before`/`after`); see https://docs.rs/middleware-core/latest/middleware_core/trait.Hook.html"
)]
pub trait Hook: Send + Sync + 'static {
    /// What `before` hands to `after`.
    type State: Send + 'static;

    /// Runs before the inner service: continue with a state, or break with a response.
    fn before<B>(
        &self,
        req: &mut http::Request<B>,
    ) -> ControlFlow<http::Response<Bytes>, Self::State>;

    /// Runs after the inner service produced a response (not on errors, short-circuits or drops).
    fn after<B>(&self, state: Self::State, res: &mut http::Response<ResponseBody<B>>);
}

/// A hook that never answers early: `before` sees the request, `after` sees the inner
/// service's response, and the response type is the inner service's, unchanged.
///
/// `before` returns a state, `after` gets it back with the response: the same shape as
/// [`Hook`] without the short-circuit. Because the inner service is always called, the adapter
/// does not wrap the response body in a [`ResponseBody`] and adds no enum level to body polls:
/// [`ObserveLayer`](crate::ObserveLayer) over a service `S` answers with `S::Response`, and a
/// stack of observers costs close to what the same logic costs hand-written (1.04–1.07× for
/// two observers and a hook, `benches/BENCHMARKS.md`). The state is dropped
/// without `after` when the inner service fails or the request future is dropped, as with
/// [`Hook`].
///
/// Wrap it in [`ObserveLayer`](crate::ObserveLayer) to use it as a tower layer. The layer
/// holds the observer by value and clones it into each request's future (so it must be
/// `Clone`), as tower-http's layers clone their callbacks: for the usual stateless observer
/// that costs nothing, where a shared `Arc` would cost two atomic operations per request; keep
/// state shared between requests behind an `Arc` inside the observer.
///
/// # Example
///
/// ```
/// use std::{convert::Infallible, time::Instant};
/// use http::{Method, Request, Response};
/// use middleware_core::{Observe, ObserveLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// /// Stamps the time spent below it on every response.
/// #[derive(Clone)]
/// struct Elapsed;
///
/// impl Observe for Elapsed {
///     type State = (Method, Instant);
///
///     fn before<B>(&self, req: &mut Request<B>) -> Self::State {
///         (req.method().clone(), Instant::now())
///     }
///
///     fn after<B>(&self, (method, start): Self::State, res: &mut Response<B>) {
///         let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
///         res.headers_mut().insert("x-elapsed-us", us.into());
///         res.headers_mut().insert("x-method", method.as_str().parse().unwrap());
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(ObserveLayer::new(Elapsed))
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("ok")))
///     }));
///
/// // The response type is the inner service's: `Response<String>`, no wrapper.
/// let res: Response<String> = svc.oneshot(Request::new(String::new())).await.unwrap();
/// assert!(res.headers().contains_key("x-elapsed-us"));
/// assert_eq!(res.headers()["x-method"], "GET");
/// assert_eq!(res.into_body(), "ok");
/// # }
/// ```
///
/// # Observe or [`Hook`]
///
/// - `Observe` (this trait) cannot answer in place of the inner service; in exchange its layer
///   leaves the response type alone: no body re-wrap per response, no extra enum level per body
///   poll, zero heap allocations per request. Use it for logging, timing, metrics, header
///   stamping: anything that lets every request through.
/// - [`Hook`] can answer early (`ControlFlow::Break` in `before`), so its layer's response
///   body is a [`ResponseBody`] over the inner body. Use it when some requests must be
///   refused (auth, required headers, rate limits).
///
/// Both mix freely in one stack: observers outside or inside hooks.
///
/// # Backpressure / readiness
///
/// As with [`Hook`]: the adapter forwards `poll_ready` and calls the inner service inside its
/// own `call`, so the service that reported ready is the one called, with no clone at all.
///
/// # Pitfalls
///
/// - Nothing here may block: `before` and `after` run inside `call` and `poll`.
/// - `after` is not called for inner errors or dropped futures; the state is dropped instead,
///   so a `Drop` impl on it sees every ending.
/// - `after` gets the response head and the inner body type: it may edit headers and status,
///   but a body of another type is a job for a plain tower layer.
/// - The [`Context`](crate::Context) is not created unless `before` asks for it with
///   [`RequestExt::context`](crate::RequestExt::context). When the request has one, dropping
///   the response future cancels it with
///   [`CancelCause::Dropped`](crate::CancelCause::Dropped), as [`HookLayer`](crate::HookLayer)
///   does.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an observer (a hook that never answers early)",
    label = "does not implement `Observe`",
    note = "implement `middleware_core::Observe` (synchronous `before` returning a state, `after` with the inner response); see https://docs.rs/middleware-core/latest/middleware_core/trait.Observe.html"
)]
pub trait Observe: Send + Sync + 'static {
    /// What `before` hands to `after`.
    type State: Send + 'static;

    /// Runs before the inner service, which is always called next.
    fn before<B>(&self, req: &mut http::Request<B>) -> Self::State;

    /// Runs after the inner service produced a response (not on errors or drops), with the
    /// inner service's response, body type unchanged.
    fn after<B>(&self, state: Self::State, res: &mut http::Response<B>);
}

impl Observe for () {
    type State = ();

    fn before<B>(&self, _: &mut http::Request<B>) {}

    fn after<B>(&self, (): (), _: &mut http::Response<B>) {}
}

/// A hook that makes sure the request has a [`Context`](crate::Context), so that the layers it
/// passes watch it for drops (see the [`Middleware`] pitfalls).
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use middleware_core::{EnsureContext, HookLayer, RequestExt};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(HookLayer::new(EnsureContext))
///     .service(service_fn(|req: Request<String>| async move {
///         assert!(req.try_context().is_some());
///         Ok::<_, Infallible>(Response::new(String::new()))
///     }));
/// svc.oneshot(Request::new(String::new())).await.unwrap();
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct EnsureContext;

impl Hook for EnsureContext {
    type State = ();

    fn before<B>(&self, req: &mut http::Request<B>) -> ControlFlow<http::Response<Bytes>> {
        let _ = crate::RequestExt::context(req);
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut http::Response<ResponseBody<B>>) {}
}

impl Hook for () {
    type State = ();

    fn before<B>(&self, _: &mut http::Request<B>) -> ControlFlow<http::Response<Bytes>> {
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut http::Response<ResponseBody<B>>) {}
}

impl Middleware for () {
    fn handle<N: Next>(
        &self,
        req: http::Request<N::ReqBody>,
        next: N,
    ) -> impl Future<Output = Outcome<N>> + Send {
        next.run(req)
    }
}
