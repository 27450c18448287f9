//! axum integration (feature `axum`): the context values are extractors, and a `#[handler]`
//! mounts with `get(handler)`.
//!
//! - [`Principal`](crate::auth::Principal) (feature `auth`) implements axum's
//!   `FromRequestParts`, so a plain axum handler behind an `AuthLayer` takes it as a
//!   parameter. An absent principal means no layer provided it, a server misconfiguration, so
//!   the handler is not run and the answer is [`MissingContextValue`]: a `500` rendered with
//!   the request's error renderer. Take `Option<Principal>` (`OptionalFromRequestParts`) when
//!   authentication is optional. `Context` and `RequestId` are extractors too, from
//!   `middleware-core`'s `axum` feature, which this feature turns on. In a `#[handler]`, all
//!   three are parameters anyway.
//! - [`Ctx<T>`] is any context value of type `T` as an extractor (absent: the same `500`,
//!   naming `T`); a layer declares the values it inserts with [`Provides`], which
//!   `#[handler]` checks at compile time (`AuthLayer` provides the `Principal`).
//! - A `#[handler]` without `state = T` implements axum's `Handler`, so `get(name)` mounts it
//!   with its layers (built once, on the first request), on a `Router<S>` whose state (or a
//!   `FromRef` part of it) reaches its `State<T>` parameters. Every `#[handler]` also mounts
//!   with `route_service(path, name.service())`, the way to go with `state = T`.
//! - A `#[handler]` parameter of any other type is extracted with `FromRequestParts<()>`:
//!   `Path`, `Query`, `HeaderMap`, `Method`, `Uri`, `Extension`, ...; the last one, when the
//!   handler takes neither the request, its parts nor its body, with `FromRequest<()>`, so it
//!   may read the body: `Json<T>`, `String`, `Bytes`, `Form<T>`. axum's rejections (an error
//!   status with a plain-text body) answer RFC 9457 problem details rendered with the
//!   request's renderer (carrying the request id), with axum's status and text.
//! - A `#[handler]` returns whatever an axum handler may (`impl IntoResponse`), besides its
//!   own return types; `Result<T, Error>` renders the error as problem details.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{Router, extract::Path, routing::get};
//! use http::{Request, StatusCode, header};
//! use http_body_util::BodyExt;
//! use middleware_macros::handler;
//! use middleware_std::{RequestId, auth::{AuthLayer, Principal}};
//! use tower::ServiceExt;
//!
//! /// Greets the caller: the path parameter comes from axum, the rest from our layers.
//! #[handler(request_id, auth = AuthLayer::bearer("t0ken", Principal::new("ada")))]
//! async fn greet(Path(greeting): Path<String>, who: Principal, id: RequestId) -> String {
//!     format!("{greeting}, {} ({id})", who.id())
//! }
//!
//! /// A plain axum handler behind our layers takes our context values too.
//! async fn whoami(who: Option<Principal>) -> String {
//!     who.map_or_else(|| String::from("anonymous"), |who| who.id().to_owned())
//! }
//!
//! let app = Router::new()
//!     .route("/greet/{greeting}", get(greet))
//!     .route("/whoami", get(whoami));
//!
//! let req = Request::get("/greet/hello")
//!     .header(header::AUTHORIZATION, "Bearer t0ken")
//!     .header("x-request-id", "r-1")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let res = app.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "hello, ada (r-1)");
//!
//! let req = Request::get("/whoami").body(axum::body::Body::empty()).unwrap();
//! let body = app.oneshot(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "anonymous");
//! # }
//! ```

use std::{
    convert::Infallible,
    fmt,
    future::{Future, poll_fn},
    pin::Pin,
    sync::{Mutex, OnceLock},
};

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::request::Parts;
use middleware_core::{Context, Error, RequestExt};
use tower_service::Service;

#[doc(hidden)]
pub use ::axum as __axum;

/// The rejection of every context-value extractor (`RequestId`, `Principal`), from
/// `middleware-core`'s `axum` module.
#[doc(inline)]
pub use middleware_core::axum::MissingContextValue;
/// The former name of [`MissingContextValue`].
#[doc(inline)]
#[allow(deprecated)]
pub use middleware_core::axum::MissingRequestId;
/// Any context value as an extractor, and what a layer declares it provides; from
/// `middleware-core`'s `axum` module.
#[doc(inline)]
pub use middleware_core::axum::{Ctx, Provides};

#[cfg(feature = "auth")]
mod principal {
    use std::convert::Infallible;

    use axum::extract::{FromRequestParts, OptionalFromRequestParts};
    use http::request::Parts;

    use super::MissingContextValue;
    use crate::auth::Principal;

    impl<S: Send + Sync> FromRequestParts<S> for Principal {
        type Rejection = MissingContextValue;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MissingContextValue> {
            crate::__private::value::<Self>(parts).ok_or_else(|| {
                let rejection = MissingContextValue::new(parts, stringify!(Principal));
                #[cfg(any(feature = "logging", feature = "catch-panic"))]
                tracing::error!(missing = rejection.what(), "{rejection}");
                rejection
            })
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
        type Rejection = Infallible;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Infallible> {
            Ok(crate::__private::value::<Self>(parts))
        }
    }
}

/// Any axum parts extractor is a `#[handler]` parameter; its rejection is answered with
/// [`rejection_response`].
impl<T> crate::__private::FromHandlerParts for T
where
    T: FromRequestParts<()> + Send,
    T::Rejection: Send,
{
    async fn from_handler_parts(parts: &mut Parts) -> Result<Self, http::Response<Bytes>> {
        match T::from_request_parts(parts, &()).await {
            Ok(value) => Ok(value),
            Err(rejection) => {
                let cx = parts.try_context().cloned();
                Err(rejection_response(rejection, cx.as_ref()).await)
            }
        }
    }
}

/// Any axum extractor is the last `#[handler]` parameter (when the handler takes neither the
/// request nor its parts); it may consume the body. Its rejection is answered with
/// [`rejection_response`].
impl<T, M> crate::__private::FromHandlerRequest<M> for T
where
    T: FromRequest<(), M> + Send,
    T::Rejection: Send,
{
    async fn from_handler_request<B>(req: http::Request<B>) -> Result<Self, http::Response<Bytes>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<middleware_core::BoxError>,
    {
        let cx = req.try_context().cloned();
        match T::from_request(req.map(axum::body::Body::new), &()).await {
            Ok(value) => Ok(value),
            Err(rejection) => Err(rejection_response(rejection, cx.as_ref()).await),
        }
    }
}

/// The longest rejection text kept as the problem's `detail`, in bytes.
const MAX_DETAIL: usize = 512;

/// An extractor's rejection as the handler's answer. axum's own rejections (an error status
/// with a plain-text body: bad JSON, a bad path parameter, a missing header) become RFC 9457
/// problem details rendered with the request's renderer (so they carry the request id), with
/// axum's status, its text as the `detail` (at most 512 bytes) and its other headers. Any
/// other rejection (a redirect, a JSON body, problem details already) is kept as it is.
async fn rejection_response(
    rejection: impl IntoResponse,
    cx: Option<&Context>,
) -> http::Response<Bytes> {
    let res = rejection.into_response();
    let plain_text = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"));
    let is_error = res.status().is_client_error() || res.status().is_server_error();
    let (parts, body) = res.into_parts();
    // Rejections are short, fixed bodies; one that cannot be read is dropped.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if !(plain_text && is_error) {
        return http::Response::from_parts(parts, body);
    }
    let mut error = Error::new(parts.status);
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if !text.is_empty() {
        let mut end = text.len().min(MAX_DETAIL);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        error = error.with_detail(text[..end].to_owned());
    }
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            error = error.with_header(name.clone(), value.clone());
        }
    }
    match cx {
        Some(cx) => cx.render_error(&error),
        None => Context::new().render_error(&error),
    }
}

/// The axum levels of `#[handler]`'s answer conversion (see `__private::kind`). Not public API.
#[doc(hidden)]
pub mod __kind {
    use axum::response::IntoResponse;
    use http::Response;
    use middleware_core::{Context, Error, ResponseBody};

    use crate::__private::kind::Wrap;

    /// `Result<R, Error>` with an axum `R`: the error rendered with the request's renderer
    /// (problem details carrying the request id). Not public API.
    #[derive(Debug)]
    pub struct AxumResult;

    impl AxumResult {
        /// Not public API.
        pub fn respond<R: IntoResponse>(
            self,
            out: Result<R, Error>,
            cx: Option<&Context>,
        ) -> Response<ResponseBody<axum::body::Body>> {
            match out {
                Ok(ok) => ok.into_response().map(ResponseBody::new),
                Err(error) => match cx {
                    Some(cx) => error.into_response(cx),
                    None => error.into_response(&Context::new()),
                },
            }
        }
    }

    /// Anything axum's `IntoResponse` takes. Not public API.
    #[derive(Debug)]
    pub struct Axum;

    impl Axum {
        /// Not public API.
        pub fn respond<R: IntoResponse>(
            self,
            out: R,
            _: Option<&Context>,
        ) -> Response<ResponseBody<axum::body::Body>> {
            out.into_response().map(ResponseBody::new)
        }
    }

    /// Level 2: `Result<R, Error>` with an axum `R`. Not public API.
    pub trait __MiddlewareAxumResultKind {
        /// Not public API.
        fn handler_kind(&self) -> AxumResult {
            AxumResult
        }
    }

    impl<R: IntoResponse> __MiddlewareAxumResultKind for &&Wrap<Result<R, Error>> {}

    /// Level 3: `IntoResponse`. Not public API.
    pub trait __MiddlewareAxumKind {
        /// Not public API.
        fn handler_kind(&self) -> Axum {
            Axum
        }
    }

    impl<T: IntoResponse> __MiddlewareAxumKind for &Wrap<T> {}
}

/// A `#[handler]`'s `State<T>`, handed over by its axum `Handler` impl in the request's
/// extensions. Not public API.
#[derive(Clone)]
struct RouterState<T>(T);

/// Puts the router's state (or the part of it a `State<T>` parameter takes) in the request,
/// for the handler's service. Not public API.
#[doc(hidden)]
pub fn insert_router_state<T: Clone + Send + Sync + 'static>(req: &mut Request, state: T) {
    req.extensions_mut().insert(RouterState(state));
}

/// A router state `Self` from which a `State<T>` parameter's `T` is taken (`T: FromRef<Self>`).
/// A bound on the state rather than on `T`, so that the router's state type is not inferred
/// from the `FromRef` impls (`T: FromRef<T>` would pick `T`): a wrong state is then reported
/// as the missing `T: FromRef<S>`. Not public API.
#[doc(hidden)]
pub trait HasState<T> {
    /// Not public API.
    fn state(&self) -> T;
}

impl<S, T: axum::extract::FromRef<S>> HasState<T> for S {
    fn state(&self) -> T {
        T::from_ref(self)
    }
}

/// The `T` of a `State<T>` parameter: absent when the handler was not mounted with
/// `get(name)` (its `service()` on its own). Not public API.
#[doc(hidden)]
pub fn router_state<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Option<T> {
    parts
        .extensions
        .get::<RouterState<T>>()
        .map(|state| state.0.clone())
}

/// `#[handler]`'s compile-time check of its `Ctx<T>` parameters against what its layers
/// [`Provides`]: for each layer, [`Yes`](__provides::Yes) or [`No`](__provides::No) (picked by
/// method resolution: a layer that does not implement `Provides` provides nothing), then one
/// bound that a `Yes` is among them. Two layers that both provide `T` are fine. Not public API.
#[doc(hidden)]
pub mod __provides;

#[cfg(feature = "auth")]
impl<A> Provides for crate::auth::AuthLayer<A> {
    type Values = (crate::auth::Principal,);
}

/// The `T` of axum's `Handler<T, S>` for `#[handler]`s. Not public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct AxumMarker(());

/// The future of a `#[handler]` mounted as an axum `Handler`. Not public API.
#[doc(hidden)]
pub type AxumFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A `#[handler]`'s layered service, built once on the first request. Not public API.
#[doc(hidden)]
pub struct AxumService(OnceLock<Mutex<Box<dyn Erased>>>);

impl AxumService {
    /// Not public API.
    #[must_use]
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// Calls the service that `make` builds (on the first call only). Not public API.
    pub fn call<T>(&'static self, make: impl FnOnce() -> T, req: Request) -> AxumFuture
    where
        T: Service<Request, Error = Infallible> + Clone + Send + 'static,
        T::Response: IntoResponse,
        T::Future: Send + 'static,
    {
        // The mutex makes a service that is `Send` but not `Sync` storable in a `static`; it is
        // held only to clone the service.
        let service = self.0.get_or_init(|| Mutex::new(Box::new(make())));
        let service = match service.lock() {
            Ok(service) => service.clone_box(),
            Err(poisoned) => poisoned.into_inner().clone_box(),
        };
        service.oneshot(req)
    }
}

impl Default for AxumService {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AxumService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(stringify!(AxumService))
            .field(&"...")
            .finish()
    }
}

trait Erased: Send {
    fn clone_box(&self) -> Box<dyn Erased>;
    fn oneshot(self: Box<Self>, req: Request) -> AxumFuture;
}

impl<T> Erased for T
where
    T: Service<Request, Error = Infallible> + Clone + Send + 'static,
    T::Response: IntoResponse,
    T::Future: Send + 'static,
{
    fn clone_box(&self) -> Box<dyn Erased> {
        Box::new(self.clone())
    }

    fn oneshot(self: Box<Self>, req: Request) -> AxumFuture {
        let mut service = *self;
        Box::pin(async move {
            let Ok(()) = poll_fn(|cx| service.poll_ready(cx)).await;
            let Ok(res) = service.call(req).await;
            res.into_response()
        })
    }
}

/// With the `axum` feature, `#[handler]` implements axum's `Handler` for a handler without
/// `state = T`; the router's state goes to its `State<T>` parameters (the types after the
/// name), each `T: FromRef<S>`. The layered service is built once, on the first request: it
/// does not depend on the router's state. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __middleware_std_axum_handler {
    ($name:ident $(, $state:ty)*) => {
        #[automatically_derived]
        impl<__S> $crate::__private::__axum::handler::Handler<$crate::__private::AxumMarker, __S>
            for $name
        where
            __S: $crate::__private::Clone
                + $crate::__private::Send
                + $crate::__private::Sync
                + 'static,
            $(
                __S: $crate::__private::HasState<$state>,
                $state: $crate::__private::Clone
                    + $crate::__private::Send
                    + $crate::__private::Sync
                    + 'static,
            )*
        {
            type Future = $crate::__private::AxumFuture;

            #[allow(unused_mut, unused_variables)]
            fn call(
                self,
                mut req: $crate::__private::__axum::extract::Request,
                state: __S,
            ) -> Self::Future {
                $(
                    $crate::__private::insert_router_state::<$state>(
                        &mut req,
                        <__S as $crate::__private::HasState<$state>>::state(&state),
                    );
                )*
                static SERVICE: $crate::__private::AxumService =
                    $crate::__private::AxumService::new();
                SERVICE.call(|| self.service(), req)
            }
        }
    };
}
