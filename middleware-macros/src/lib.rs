#![doc = include_str!("../README.md")]

mod attr;
mod fn_attr;
mod handler;
mod layer;
mod middleware_fn;
mod paths;

use proc_macro::TokenStream;

/// Derives a tower `Layer` for a struct whose fields are a middleware's configuration.
///
/// Write the struct and implement `middleware_core::Middleware` (around style, the default),
/// `middleware_core::Hook` (hook style, with `#[middleware(hook)]`) or
/// `middleware_core::Observe` (a hook that never answers early, with `#[middleware(observe)]`)
/// for it; the derive does the tower plumbing. The struct must be `Clone`: each `layer` call clones it once into the
/// service's shared `Arc` (never per request).
///
/// # Example
///
/// ```
/// use std::{convert::Infallible, time::Duration};
/// use http::{HeaderValue, Request, Response};
/// use middleware_core::{Layer, Middleware, Next, Outcome, RequestExt};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// /// Stamps a header on every response and gives the request a time budget.
/// #[derive(Clone, Layer)]
/// struct Stamp {
///     value: &'static str,
///     #[middleware(secret)]
///     signing_key: String,
///     #[middleware(default = Duration::from_secs(5))]
///     budget: Duration,
/// }
///
/// impl Middleware for Stamp {
///     async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
///         req.context().set_timeout(self.budget);
///         let mut res = next.run(req).await?;
///         res.headers_mut().insert("x-stamp", HeaderValue::from_static(self.value));
///         Ok(res)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stamp = Stamp::new("v1", String::from("k3y")).budget(Duration::from_millis(250));
/// assert_eq!(
///     format!("{stamp:?}"),
///     r#"Stamp { value: "v1", signing_key: "<redacted>", budget: 250ms }"#,
/// );
///
/// let svc = ServiceBuilder::new()
///     .layer(stamp) // the struct is the layer
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("ok")))
///     }));
/// let res = svc.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(res.headers()["x-stamp"], "v1");
/// # }
/// ```
///
/// # Generated items
///
/// For `struct Name`:
///
/// | item | what |
/// | --- | --- |
/// | `impl<S> tower::Layer<S> for Name` | `Service = NameService<S>`; clones `Name` into the service |
/// | `type NameService<S> = MiddlewareService<Name, S>` | the service, named (`HookService` in hook mode, `ObserveService` in observe mode); same visibility as the struct |
/// | `impl Debug for Name` | every field, `"<redacted>"` for `#[middleware(secret)]` ones |
/// | `Name::new(required..) -> Name` | named-field structs: one argument per field without a default, in order; `#[must_use]` |
/// | `Name::field(self, value) -> Name` | one `#[must_use]` setter per field with a default |
/// | `const fn new() -> Name` | unit structs: the same value as `Name`, spelled as every layer's constructor |
///
/// Do not also derive `Debug`, and do not write a `new` unless you opt out with
/// `#[middleware(new = false)]` (named-field and unit structs). A generic struct gets a generic layer and alias
/// (`NameService<S, T>`, the inner service first); the layer requires `Name<T>: Clone +
/// Middleware`.
///
/// # Attributes
///
/// On the struct, `#[middleware(...)]` with any of:
///
/// - `around` (default): the struct implements `Middleware`; the layer is a
///   `MiddlewareService` (one allocation per request for the future).
/// - `hook`: the struct implements `Hook`; the layer is a `HookService` (no allocation).
/// - `observe`: the struct implements `Observe`; the layer is an `ObserveService` (no
///   allocation, and the inner service's response type unchanged: no `ResponseBody` wrapper).
/// - `service = Ident`: name the service alias (default `<Name>Service`), e.g.
///   `#[middleware(service = Stamp)]` on `struct StampLayer`, after tower-http's naming.
/// - `new = false`: do not generate `new` (and so no `default`s either).
/// - `crate = "path"`: the crate that re-exports `middleware_core`, for a facade of your own.
///   Not needed for `middleware-core` or `middleware-std` (renamed or not): the macro finds
///   whichever your manifest lists.
///
/// On a field:
///
/// - `secret`: `Debug` prints `"<redacted>"` instead of the value.
/// - `default` or `default = <expr>`: `new` does not take this field; it starts at
///   `Default::default()` or `<expr>`, and gets a setter. Named fields only.
///
/// # Errors
///
/// Compile errors, on the offending token: the derive on an enum or union, lifetime
/// parameters, unknown keys (with the closest key suggested), duplicate or conflicting keys,
/// a field key on the struct or the other way round, a `default` without a value or on a
/// tuple field; and, from rustc on the struct's name, a struct that is not `Clone` or does
/// not implement the chosen trait.
#[proc_macro_derive(Layer, attributes(middleware))]
pub fn derive_layer(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    layer::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Turns a function into a middleware value: an `async fn` into an around-style
/// `Middleware`, a synchronous `fn` with `before` into a zero-allocation `Hook`.
///
/// The function is written with the trait's own types, and nothing is rewritten: what you
/// write is what rustc checks, so a type error lands on your token and the IDE shows the real
/// types. The function's name becomes the name of the middleware's type and of a `const fn`
/// that makes it; the value is itself a layer: `.layer(stamp())`.
///
/// # Around: `#[middleware_fn]`
///
/// ```text
/// async fn name<N: Next>(req: Request<N::ReqBody>, next: N, [extras]) -> Outcome<N>
/// ```
///
/// The request comes first, the rest of the stack second; then, in any order:
///
/// - `cx: &Context` or `cx: Context`: a handle on the request's context (created by the
///   adapter anyway; cloning it is a reference-count increment). Values a middleware wants
///   later layers to see go in through `req.context().insert(..)`; a `&mut Context` parameter
///   is refused because it would change a copy.
/// - `state: &T` (or `state: T`, cloned per request) with `#[middleware_fn(state = T)]`:
///   shared state held by the middleware value.
///
/// ```
/// use std::convert::Infallible;
/// use http::{HeaderValue, Request, Response, StatusCode};
/// use middleware_core::{
///     Context, Next, Outcome, ResponseBody, middleware_fn,
/// };
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// #[derive(Clone)]
/// struct Config {
///     admin_header: &'static str,
/// }
///
/// /// Lets admins through, marks the context, stamps the response.
/// #[middleware_fn(state = Config)]
/// async fn admins_only<N: Next>(
///     req: Request<N::ReqBody>,
///     next: N,
///     cx: &Context,
///     config: &Config,
/// ) -> Outcome<N> {
///     if !req.headers().contains_key(config.admin_header) {
///         let mut res = Response::new(ResponseBody::full("admins only"));
///         *res.status_mut() = StatusCode::FORBIDDEN;
///         return Ok(res);
///     }
///     cx.mark("admin", cx.elapsed());
///     let mut res = next.run(req).await?;
///     res.headers_mut().insert("x-admin", HeaderValue::from_static("1"));
///     Ok(res)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(admins_only(Config { admin_header: "x-admin-token" }))
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("ok")))
///     }));
///
/// let res = svc.clone().oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
///
/// let req = Request::builder().header("x-admin-token", "t").body(String::new()).unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.headers()["x-admin"], "1");
/// # }
/// ```
///
/// # Hook: `#[middleware_fn(before)]` and `after = path`
///
/// ```text
/// fn name<B>(req: &mut Request<B>, [state]) -> ControlFlow<Response<Bytes>, State>
/// fn after_fn<B>(state: State, res: &mut Response<ResponseBody<B>>, [state])
/// ```
///
/// `before` continues with a `State` (`()` when the second argument is left out) or breaks
/// with a response; the optional `after = after_fn` names a plain function that gets the
/// `State` back with the inner service's response (it is not called on short-circuits or
/// inner errors). With `state = T`, both take the shared state the same way (`&T` or `T`).
/// There is no context parameter: `req.context()` creates it, `req.try_context()` only reads.
///
/// ```
/// use std::{convert::Infallible, ops::ControlFlow};
/// use bytes::Bytes;
/// use http::{HeaderValue, Request, Response, StatusCode};
/// use middleware_core::{ResponseBody, middleware_fn};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// /// Requires `x-tenant` and echoes it back: zero allocations per request.
/// #[middleware_fn(before, after = echo_tenant)]
/// fn tenant<B>(req: &mut Request<B>) -> ControlFlow<Response<Bytes>, HeaderValue> {
///     if let Some(tenant) = req.headers().get("x-tenant") {
///         return ControlFlow::Continue(tenant.clone());
///     }
///     let mut res = Response::new(Bytes::from_static(b"missing x-tenant"));
///     *res.status_mut() = StatusCode::BAD_REQUEST;
///     ControlFlow::Break(res)
/// }
///
/// fn echo_tenant<B>(tenant: HeaderValue, res: &mut Response<ResponseBody<B>>) {
///     res.headers_mut().insert("x-tenant", tenant);
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(tenant())
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("ok")))
///     }));
/// let req = Request::builder().header("x-tenant", "acme").body(String::new()).unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.headers()["x-tenant"], "acme");
/// # }
/// ```
///
/// # Generated items
///
/// For `fn name`, with the function's visibility:
///
/// | item | what |
/// | --- | --- |
/// | `struct name {}` / `struct name { pub state: T }` | the middleware; implements `Middleware` (around) or `Hook` (with `before`, `State` = the `Continue` type), and `Debug`; `Clone + Copy` without state |
/// | `const fn name() -> name` / `const fn name(state: T) -> name` | makes it; carries the function's docs |
/// | `impl<S> tower::Layer<S> for name` | `Service = MiddlewareService<name, S>` (`HookService` with `before`); each service gets a copy of the value, so with state it needs `T: Clone` |
/// | `impl Clone for name` (with state) | when `T: Clone` |
///
/// The type is a braced struct so that it lives in the type namespace only: a local variable
/// may still be called `name`. The function's body moves, unchanged, into the trait method.
/// Use the value as a layer (`.layer(name())`), or share one value between every service with
/// `MiddlewareLayer::new(name())` / `HookLayer::new(name())` (a state that is not `Clone`, like
/// an `AtomicUsize` counter), or compose it with `Middleware::then`. The state is shared by every
/// request, so it must be `Send + Sync + 'static`: a `RefCell` or an `Rc` is reported once, on
/// the type in `state = ..`.
///
/// # Attributes
///
/// `#[middleware_fn(...)]` with any of `before`, `after = path` (with `before`),
/// `state = Type`, `crate = "path"` (see [`macro@Layer`]).
///
/// # Errors
///
/// Compile errors, on the offending token: a non-`async` function (or an `async` one with
/// `before`), `const`/`unsafe`/`extern` functions, `self` receivers, lifetime or const
/// parameters, a type parameter other than the one `N: Next` (around) or unbounded `B`
/// (hook), `where` clauses, parameters in the wrong order or of the wrong type (a concrete
/// request body, `&mut Context`, a context in a hook), a missing or different return type,
/// state taken without `state = T` or declared and not taken, unknown (with the closest key
/// suggested), duplicate or misplaced keys.
#[proc_macro_attribute]
pub fn middleware_fn(args: TokenStream, item: TokenStream) -> TokenStream {
    middleware_fn::expand(args.into(), item.into()).into()
}

/// Turns an `async fn` handler into a tower `Service` with its own layers: timeout, auth,
/// access log, `Server-Timing`, panic recovery, request id, and any tower layer.
///
/// The layers it names are `middleware-std`'s, so the generated code reaches them (and core)
/// through `middleware_std::__private` only: the crate using it depends on `middleware-std`
/// (or names a re-exporter with `crate = "..."`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use http::{Request, StatusCode, header};
/// use middleware_macros::handler;
/// use middleware_std::{RequestId, auth::{AuthLayer, Principal}};
/// use tower::ServiceExt;
///
/// /// Who am I?
/// #[handler(
///     request_id,
///     catch_panic,
///     timeout = "250ms",
///     auth = AuthLayer::bearer("s3cr3t", Principal::new("ada")),
/// )]
/// async fn whoami(who: Principal, id: RequestId) -> String {
///     format!("{} ({id})", who.id())
/// }
///
/// let svc = whoami.service();
/// let req = Request::builder()
///     .header(header::AUTHORIZATION, "Bearer s3cr3t")
///     .header("x-request-id", "r-7")
///     .body(String::new())
///     .unwrap();
/// let res = svc.clone().oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.headers()["x-request-id"], "r-7");
///
/// let res = svc.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
/// # }
/// ```
///
/// # Layers
///
/// `#[handler(...)]` takes a comma-separated list. The layer keys apply **in the written
/// order, the first key being the outermost layer** (as with `ServiceBuilder::layer`); the
/// handler is innermost.
///
/// | key | layer | provides |
/// | --- | --- | --- |
/// | `timeout = "250ms"` | `TimeoutLayer::new(250ms)`: `503` when the budget runs out | the deadline (`Instant`) |
/// | `timeout = <expr>` | a `Duration` expression (`Duration::from_millis(BUDGET)`) or your `TimeoutLayer` | the deadline |
/// | `auth = <expr>` | your `AuthLayer` (`401`/`403`) | the `Principal` (also as `Ctx<Principal>`) |
/// | `log` / `log = <expr>` | `LogLayer::new()` / yours | |
/// | `timing` / `timing = <expr>` | `ServerTimingLayer::new()` / yours | |
/// | `catch_panic` / `catch_panic = <expr>` | `CatchPanicLayer::new()` / yours | |
/// | `request_id` / `request_id = <expr>` | `SetRequestIdLayer::new()` / yours | the `RequestId` |
/// | `layer(<expr>)` | any tower layer (tower-http, third-party, an around-style middleware); repeatable | what its type declares with `axum::Provides` |
///
/// Durations are a number and a unit (`h`, `m`, `s`, `ms`, `us`), several largest first:
/// `"250ms"`, `"1.5s"`, `"1m"`, `"1m30s"`; a fraction must come to whole nanoseconds. Each
/// `layer(..)` must keep the error type `Infallible` (answer with a response, as every std
/// layer does); wrap a failing one with axum's `HandleErrorLayer`. A handler with a
/// `layer(..)` takes a request body that is an `http_body::Body` with `Bytes` data (axum's
/// `Body`, `String`, `Full<Bytes>`): an around-style middleware needs one.
///
/// Other keys: `state = Type` (shared state the handler value holds), `allow(<rule>, ..)`
/// (see *Order*), `associated` (see *Generated items*), `crate = "path"` (a crate that
/// re-exports `middleware_std`).
///
/// # Order
///
/// Orders that lose information are compile errors that say the right order:
///
/// - `request_id` inside `log` (the access log has no id): opt out with
///   `allow(request_id_inside_log)`;
/// - `request_id` inside `catch_panic` (the panic's log line and `500` have no id):
///   `allow(request_id_inside_catch_panic)`;
/// - `catch_panic` inside `timing` (a panic in the timing layer escapes):
///   `allow(catch_panic_inside_timing)`.
///
/// An order that passes every rule is `request_id, log, catch_panic, timing, timeout, auth`.
/// `middleware_std::stack::StackLayer` instead puts timing outside panic recovery, so that a
/// caught panic's `500` carries `Server-Timing` too; write that order with
/// `allow(catch_panic_inside_timing)`.
///
/// # Parameters
///
/// In any order, each at most once:
///
/// | parameter | value |
/// | --- | --- |
/// | `req: Request<B>` | the request (fixes the service's request body type to `B`) |
/// | `parts: Parts` and/or `#[body] body: B` | the request's parts and its body |
/// | `cx: &Context` / `cx: Context` | the request's context (created if no layer made one) |
/// | `who: Principal` | the authenticated principal; needs `auth` |
/// | `id: RequestId` | the request id; needs `request_id` |
/// | `deadline: Instant` | the request's deadline (`std::time::Instant`); needs `timeout` |
/// | `Option<Principal>` / `Option<RequestId>` / `Option<Instant>` | the value if any layer, here or outside, provided it |
/// | `#[from_outer] who: Principal` (or `RequestId`, `Instant`, `Ctx<T>`) | provided by an outer layer: when absent, the handler is not run; the answer is a logged `500` |
/// | `Ctx(t): Ctx<T>` (feature `axum`) | any context value of type `T`; a layer of this handler must declare that it provides `T` (`middleware_std::axum::Provides`, or `#[middleware(provides(T))]` on a derived layer): a compile error on `T` otherwise; `Option<Ctx<T>>` is `None` when absent |
/// | `State(s): State<S>` (feature `axum`) | the router's state, or a part of it (`S: FromRef<RouterState>`): mount with `get(name)` on a `Router` with that state; through `name.service()` alone it is absent, a `500` |
/// | `state: &T` / `state: T` with `state = T` | the handler value's state (by value: cloned per request) |
/// | anything else | an extractor: with the `axum` feature of `middleware-std`, any axum `FromRequestParts<()>` (`Path`, `Query`, `HeaderMap`, ...); the last one, when no parameter takes the request, its parts or its body, any `FromRequest<()>`, which may read the body (`Json<T>`, `String`, `Bytes`, `Form<T>`; the service's request body must then be an `http_body::Body` with `Bytes` data) |
///
/// A rejected extractor answers for the handler. axum's own rejections (bad JSON, a bad path
/// parameter, a missing header: an error status with a plain-text body) become RFC 9457
/// problem details rendered with the request's renderer, so they carry the request id, with
/// the status axum chose and its text as the `detail` (at most 512 bytes); any other
/// rejection (a redirect, a JSON body) is kept as it is.
///
/// A context value that no layer of this handler provides is a compile error naming the key
/// to add, unless it is an `Option` or `#[from_outer]`.
///
/// # Return types
///
/// `Response<B>`; `Result<R, middleware_std::Error>` with `R` any of these, and
/// `middleware_std::Error` alone (the error is rendered with the request's renderer, RFC 9457
/// problem details by default, carrying the request id); `()` (`200`, empty); `&'static str`
/// and `String` (`200`, `text/plain`); `StatusCode` (empty); `(StatusCode, String)` and
/// `(StatusCode, &'static str)`.
///
/// With the `axum` feature of `middleware-std`, also anything an axum handler may return
/// (`impl IntoResponse`): `Json<T>`, `Html<T>`, `(StatusCode, Json<T>)`, header tuples,
/// `Result<T, E>` with `E: IntoResponse` (`Result<T, StatusCode>`, your error type), and
/// `Result<T, middleware_std::Error>` with an axum `T` (the error as problem details). The
/// conversion is picked from the type; a type with none is one error on the return type.
///
/// # Generated items
///
/// For `async fn name`, with the function's visibility and docs:
///
/// | item | what |
/// | --- | --- |
/// | `struct name;` (with `state = T`: `struct name(pub T);`) | the handler value: `Clone` (and `Copy` without state), `Debug` |
/// | `fn name::service(self) -> impl Service<Request<B>, ..> + Clone + Send` | the handler inside its layers: `Error = Infallible`, a `Response` whose body is `Send` with `Bytes` data, a `Send` future; also `Sync` when every layer is (axum's `route_service` wants it); generic over `B` unless a parameter fixes it |
/// | `impl axum::handler::Handler<_, S> for name` | with the `axum` feature, without `state = T` and body type: `get(name)` mounts it, on a `Router<S>` whose state gives each `State<T>` parameter (`T: FromRef<S>`); the layers are built on the first request |
///
/// With `associated`, on an associated function in an `impl` block (controller style), the
/// function itself becomes `fn name() -> impl Service<Request<B>, ..>` (same visibility and
/// docs), mounted with `route_service("/path", Type::name())`; the body moves into a hidden
/// associated function beside it, so it may use `Self`. No handler value: no `state = T` and
/// no `State<T>` (the router's state reaches only `get(name)`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::{Router, extract::Path};
/// use http::{Request, StatusCode};
/// use middleware_macros::handler;
/// use tower::ServiceExt;
///
/// struct Orders;
///
/// impl Orders {
///     fn label() -> &'static str {
///         "order"
///     }
///
///     /// One order.
///     #[handler(associated, request_id)]
///     async fn show(Path(id): Path<u32>) -> String {
///         format!("{} {id}", Self::label())
///     }
/// }
///
/// let app = Router::new().route_service("/orders/{id}", Orders::show());
/// let req = Request::get("/orders/7").body(axum::body::Body::empty()).unwrap();
/// let res = app.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// # }
/// ```
///
/// The function body moves unchanged into `service`; its future is boxed once per request
/// (an `async fn`'s future cannot be named). Mount it with axum as `get(name)` or
/// `route_service("/path", name.service())`, and with hyper through
/// `hyper_util::service::TowerToHyperService::new(name.service())`.
///
/// # Errors
///
/// Compile errors, on the offending token: a non-`async` function, `const`/`unsafe`/`extern`
/// functions, `self` receivers, generic parameters and `where` clauses, unknown (with the
/// closest key suggested), duplicate or malformed keys, a bad duration literal (on the
/// literal), `layer()` without a layer, an unknown or needless `allow` rule, the order mistakes
/// above, a context value no layer provides, two requests, contexts or states, `&mut Context`,
/// `#[from_outer]` on an `Option` or on another type, state taken without `state = T` or
/// declared and not taken; and, from rustc on your token, a return type that does not convert
/// to a response, a parameter type that is not an extractor, an `auth = ..` that is not an
/// `AuthLayer`, a `timeout = <expr>` that is neither a `Duration` nor a `TimeoutLayer`, a
/// `Ctx<T>` that no layer of the handler provides. axum's body extractors (`Json<_>`,
/// `Form<_>`, `String`, `Bytes`, ...) not last, two of them, or next to the request, its
/// `Parts` or `#[body]` get `#[debug_handler]`'s message, once: "`Json<_>` consumes the
/// request body and thus must be the last argument to the handler function".
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(args.into(), item.into()).into()
}
