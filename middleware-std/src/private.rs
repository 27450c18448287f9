//! Paths used by code that `#[handler]` (from `middleware-macros`) generates: core's hidden
//! module, the std layers, and the small runtime the generated service is built from.
//!
//! Not public API: nothing here is covered by semver.
/// Not public API.
pub use ::http_body::Body;
/// Not public API.
pub use ::std::{
    convert::Infallible, convert::Into, marker::Send, marker::Sync, string::String, time::Duration,
    time::Instant,
};
/// Not public API.
pub use middleware_core::__private::*;
/// Not public API.
pub use middleware_core::{BoxError, Error};

#[cfg(feature = "auth")]
/// Not public API.
pub use crate::auth::{AuthLayer, Principal};
#[cfg(feature = "axum")]
/// Not public API.
pub use crate::axum::{
    __axum, __provides as provides, AxumFuture, AxumMarker, AxumService, HasState,
    insert_router_state, router_state,
};
#[cfg(feature = "catch-panic")]
/// Not public API.
pub use crate::catch_panic::CatchPanicLayer;
#[cfg(feature = "logging")]
/// Not public API.
pub use crate::logging::LogLayer;
#[cfg(feature = "request-id")]
/// Not public API.
pub use crate::request_id::SetRequestIdLayer;
#[cfg(feature = "timeout")]
/// Not public API.
pub use crate::timeout::TimeoutLayer;
#[cfg(feature = "timing")]
/// Not public API.
pub use crate::timing::ServerTimingLayer;
/// Not public API.
pub use middleware_core::RequestId;

// `fmt`, `Future`, `Pin`, `Bytes`, `Context`, `RequestExt`, `ResponseBody` and `Service`
// come from core's module through the glob above.
use std::task::{Context as TaskContext, Poll};

use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE, request::Parts};

/// What a `#[handler]` may return. Not public API.
#[cfg_attr(
    not(feature = "axum"),
    diagnostic::on_unimplemented(
        message = "`{Self}` cannot be returned from a `#[handler]`",
        label = "not a handler response",
        note = "return `Response<B>`, `Result<R, middleware_std::Error>`, `middleware_std::Error`, `()`, `&'static str`, `String`, `StatusCode` or `(StatusCode, String)`"
    )
)]
#[cfg_attr(
    feature = "axum",
    diagnostic::on_unimplemented(
        message = "`{Self}` cannot be returned from a `#[handler]`",
        label = "not a handler response",
        note = "return what an axum handler may return (`impl IntoResponse`: `Json<T>`, `Html<T>`, `(StatusCode, Json<T>)`, `Result<T, E>` with `E: IntoResponse`, ...), `Response<B>`, or `Result<R, middleware_std::Error>` (problem details)"
    )
)]
pub trait IntoHandlerResponse {
    /// Not public API.
    type Body;
    /// Not public API.
    fn into_handler_response(self, cx: Option<&Context>) -> Response<Self::Body>;
}

impl<B> IntoHandlerResponse for Response<B> {
    type Body = B;
    fn into_handler_response(self, _: Option<&Context>) -> Self {
        self
    }
}

impl<R: IntoHandlerResponse> IntoHandlerResponse for Result<R, Error> {
    type Body = ResponseBody<R::Body>;
    fn into_handler_response(self, cx: Option<&Context>) -> Response<Self::Body> {
        match self {
            Ok(ok) => ok.into_handler_response(cx).map(ResponseBody::new),
            Err(error) => match cx {
                Some(cx) => error.into_response(cx),
                None => error.into_response(&Context::new()),
            },
        }
    }
}

/// The handler's answer as the handler service's response. Not public API.
pub fn respond<R: IntoHandlerResponse>(
    out: R,
    cx: Option<&Context>,
) -> Response<ResponseBody<R::Body>> {
    out.into_handler_response(cx).map(ResponseBody::new)
}

/// A fixed body for the plain return types. Not public API.
pub type TextBody = ResponseBody<String>;

fn text(status: StatusCode, body: Bytes) -> Response<TextBody> {
    let mut res = Response::new(ResponseBody::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl IntoHandlerResponse for Error {
    type Body = TextBody;
    fn into_handler_response(self, cx: Option<&Context>) -> Response<TextBody> {
        match cx {
            Some(cx) => self.into_response(cx),
            None => self.into_response(&Context::new()),
        }
    }
}

impl IntoHandlerResponse for () {
    type Body = TextBody;
    fn into_handler_response(self, _: Option<&Context>) -> Response<TextBody> {
        Response::new(ResponseBody::empty())
    }
}

impl IntoHandlerResponse for StatusCode {
    type Body = TextBody;
    fn into_handler_response(self, _: Option<&Context>) -> Response<TextBody> {
        let mut res = Response::new(ResponseBody::empty());
        *res.status_mut() = self;
        res
    }
}

impl IntoHandlerResponse for &'static str {
    type Body = TextBody;
    fn into_handler_response(self, _: Option<&Context>) -> Response<TextBody> {
        text(StatusCode::OK, Bytes::from_static(self.as_bytes()))
    }
}

impl IntoHandlerResponse for String {
    type Body = TextBody;
    fn into_handler_response(self, _: Option<&Context>) -> Response<TextBody> {
        text(StatusCode::OK, Bytes::from(self))
    }
}

impl IntoHandlerResponse for (StatusCode, String) {
    type Body = TextBody;
    fn into_handler_response(self, _: Option<&Context>) -> Response<TextBody> {
        text(self.0, Bytes::from(self.1))
    }
}

impl IntoHandlerResponse for (StatusCode, &'static str) {
    type Body = TextBody;
    fn into_handler_response(self, _: Option<&Context>) -> Response<TextBody> {
        text(self.0, Bytes::from_static(self.1.as_bytes()))
    }
}

/// A handler parameter that is not one of ours: an axum extractor (feature `axum`).
/// Not public API.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `#[handler]` parameter",
    label = "not a handler parameter",
    note = "a handler takes `Request<B>`, `Parts` (and `#[body] B`), `&Context`/`Context`, `Principal`, `RequestId`, the deadline `Instant`, its `state = T`, or (with the `axum` feature of middleware-std) an axum `FromRequestParts` extractor"
)]
pub trait FromHandlerParts: Sized {
    /// Not public API.
    fn from_handler_parts(
        parts: &mut Parts,
    ) -> impl Future<Output = Result<Self, Response<Bytes>>> + Send;
}

/// The last handler parameter, when it is not one of ours and the handler takes neither the
/// request nor its parts: an axum extractor that may consume the body, like `Json<T>`
/// (feature `axum`). Not public API.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `#[handler]` parameter",
    label = "not a handler parameter",
    note = "a handler takes `Request<B>`, `Parts` (and `#[body] B`), `&Context`/`Context`, `Principal`, `RequestId`, the deadline `Instant`, its `state = T`, or (with the `axum` feature of middleware-std) an axum extractor, the last one possibly consuming the body (`Json<T>`, `String`, ...)"
)]
pub trait FromHandlerRequest<M>: Sized {
    /// Not public API.
    fn from_handler_request<B>(
        req: http::Request<B>,
    ) -> impl Future<Output = Result<Self, Response<Bytes>>> + Send
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>;
}

/// The context value of type `T`, from the request's context. Not public API.
pub fn value<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Option<T> {
    parts.try_context().and_then(|cx| cx.get::<T>()).cloned()
}

/// The request id, from the request's context. Not public API.
pub fn request_id(parts: &Parts) -> Option<RequestId> {
    parts.try_context().and_then(|cx| cx.request_id()).cloned()
}

/// The deadline, from the request's context. Not public API.
pub fn deadline(parts: &Parts) -> Option<Instant> {
    parts.try_context().and_then(Context::deadline)
}

/// A handle on the request's context, if a layer made one. Not public API.
pub fn try_context(parts: &Parts) -> Option<Context> {
    parts.try_context().cloned()
}

/// The request's context handle, created if no layer made one. Not public API.
pub fn context(parts: &mut Parts) -> Context {
    parts.context().clone()
}

/// The answer when a context value the handler needs is absent (a `#[from_outer]`
/// parameter that no outer layer provided): logged, then a `500` rendered with the
/// request's renderer. Not public API.
pub fn missing(parts: &Parts, what: &'static str, handler: &'static str) -> Response<Bytes> {
    #[cfg(any(feature = "logging", feature = "catch-panic"))]
    tracing::error!(
        handler,
        missing = what,
        "a handler parameter is absent from the request's context: no outer layer provided it"
    );
    #[cfg(not(any(feature = "logging", feature = "catch-panic")))]
    let _ = (what, handler);
    parts.render_error(&Error::new(StatusCode::INTERNAL_SERVER_ERROR))
}

/// A rejection (an extractor's, or `missing`'s) as the handler's response body.
/// Not public API.
pub fn rejection<B>(res: Response<Bytes>) -> Response<ResponseBody<B>> {
    ResponseBody::response(res)
}

/// Checks that `auth = ..` is an `AuthLayer`, which provides the `Principal`.
/// Not public API.
#[cfg(feature = "auth")]
pub const fn auth_layer<A>(layer: AuthLayer<A>) -> AuthLayer<A> {
    layer
}

/// Checks that `request_id = ..` is a `SetRequestIdLayer`, which provides the id.
/// Not public API.
#[cfg(feature = "request-id")]
pub const fn request_id_layer<M>(layer: SetRequestIdLayer<M>) -> SetRequestIdLayer<M> {
    layer
}

/// Checks that `timeout = ..` is a `TimeoutLayer` (which provides the deadline) or the
/// `Duration` of one. Not public API.
#[cfg(feature = "timeout")]
pub fn timeout_layer(layer: impl IntoTimeoutLayer) -> TimeoutLayer {
    layer.into_timeout_layer()
}

/// What `timeout = <expr>` takes. Not public API.
#[cfg(feature = "timeout")]
#[diagnostic::on_unimplemented(
    message = "`timeout = ..` takes a `Duration` or a `TimeoutLayer`, not `{Self}`",
    label = "not a `Duration` or a `TimeoutLayer`",
    note = "write `timeout = \"1.5s\"`, `timeout = Duration::from_millis(250)` or `timeout = TimeoutLayer::new(..)`"
)]
pub trait IntoTimeoutLayer {
    /// Not public API.
    fn into_timeout_layer(self) -> TimeoutLayer;
}

#[cfg(feature = "timeout")]
impl IntoTimeoutLayer for TimeoutLayer {
    fn into_timeout_layer(self) -> TimeoutLayer {
        self
    }
}

#[cfg(feature = "timeout")]
impl IntoTimeoutLayer for Duration {
    fn into_timeout_layer(self) -> TimeoutLayer {
        TimeoutLayer::new(self)
    }
}

/// The innermost service of a `#[handler]`: calls the handler's function. Not public API.
#[derive(Clone)]
pub struct HandlerFn<F>(pub F);

impl<F> fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(stringify!(HandlerFn))
            .field(&std::any::type_name::<F>())
            .finish()
    }
}

impl<F, B, Fut, RB> Service<http::Request<B>> for HandlerFn<F>
where
    F: Fn(http::Request<B>) -> Fut,
    Fut: Future<Output = Response<RB>> + Send + 'static,
{
    type Response = Response<RB>;
    type Error = Infallible;
    type Future = HandlerFuture<RB>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        HandlerFuture(Box::pin((self.0)(req)))
    }
}

/// The future of a `#[handler]`: the `async fn`'s future cannot be named, so it is boxed
/// once, here. Not public API.
pub struct HandlerFuture<RB>(Pin<Box<dyn Future<Output = Response<RB>> + Send>>);

impl<RB> fmt::Debug for HandlerFuture<RB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(stringify!(HandlerFuture))
            .field(&"...")
            .finish()
    }
}

impl<RB> Future for HandlerFuture<RB> {
    type Output = Result<Response<RB>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}

/// Without the `axum` feature, `#[handler]` generates no axum `Handler` impl.
/// Not public API.
#[cfg(not(feature = "axum"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __middleware_std_axum_handler {
    ($($tt:tt)*) => {};
}

/// Not public API.
pub use crate::__middleware_std_axum_handler as axum_handler;

/// Picks the conversion of a handler's answer from its type, by method resolution on
/// `(&&&&wrap(&out)).handler_kind()` (autoref specialization: the first level whose bound
/// holds wins): our [`IntoHandlerResponse`], then (feature `axum`) `Result<R, Error>` with an
/// axum `R`, then anything axum's `IntoResponse` takes, and last a stand-in whose one bound
/// failure is the one error a wrong return type gets. Not public API.
pub mod kind {
    use std::marker::PhantomData;

    use http::Response;

    use super::{Context, IntoHandlerResponse, ResponseBody, TextBody};

    /// The handler's answer type, for method resolution. Not public API.
    pub struct Wrap<T>(PhantomData<fn() -> T>);

    /// Not public API.
    impl<T> std::fmt::Debug for Wrap<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple(stringify!(Wrap))
                .field(&std::any::type_name::<T>())
                .finish()
        }
    }

    /// Not public API.
    #[must_use]
    pub const fn wrap<T>(_: &T) -> Wrap<T> {
        Wrap(PhantomData)
    }

    /// Our conversion. Not public API.
    #[derive(Debug)]
    pub struct Ours;

    impl Ours {
        /// Not public API.
        pub fn respond<R: IntoHandlerResponse>(
            self,
            out: R,
            cx: Option<&Context>,
        ) -> Response<ResponseBody<R::Body>> {
            super::respond(out, cx)
        }
    }

    /// No conversion fits: `respond`'s bound is the error. Not public API.
    #[derive(Debug)]
    pub struct NotAResponse;

    impl NotAResponse {
        /// Never called with a type that has a conversion (that one took the first level); the
        /// fixed return type keeps a wrong return type at one error. Not public API.
        pub fn respond<R: IntoHandlerResponse>(
            self,
            out: R,
            cx: Option<&Context>,
        ) -> Response<TextBody> {
            let _ = (out, cx);
            Response::new(ResponseBody::empty())
        }
    }

    /// The traits the generated code brings into scope. Not public API.
    pub mod traits {
        use super::{IntoHandlerResponse, NotAResponse, Ours, Wrap};

        #[cfg(feature = "axum")]
        pub use crate::axum::__kind::{__MiddlewareAxumKind, __MiddlewareAxumResultKind};

        /// Level 1: our conversion. Not public API.
        pub trait __MiddlewareOursKind {
            /// Not public API.
            fn handler_kind(&self) -> Ours {
                Ours
            }
        }

        impl<T: IntoHandlerResponse> __MiddlewareOursKind for &&&Wrap<T> {}

        /// Last level: no conversion. Not public API.
        pub trait __MiddlewareNoKind {
            /// Not public API.
            fn handler_kind(&self) -> NotAResponse {
                NotAResponse
            }
        }

        impl<T> __MiddlewareNoKind for Wrap<T> {}
    }
}
