//! axum extractors for the context values (feature `axum`, which depends on `axum-core` only).
//!
//! - [`Context`]: the request's context, found or created; never rejects.
//! - [`RequestId`]: the id a request-id layer set. Absent, it is a server misconfiguration (no
//!   such layer in front of the handler), answered with a `500` rendered by the request's error
//!   renderer ([`MissingContextValue`]); take `Option<RequestId>` when the layer is optional.
//! - [`Ctx<T>`]: any context value of type `T` that a layer put in the request's context
//!   (`Context::insert`); absent, the same `500` ([`MissingContextValue`], naming `T`); take
//!   `Option<Ctx<T>>` when the layer is optional.
//! - [`MissingContextValue`]: the one rejection of every extractor of a context value that no
//!   layer provided (core's, `middleware-std`'s, and a layer author's own).
//! - [`Provides`]: what a layer declares it puts in the context, so that `#[handler]` checks at
//!   compile time that a layer of the handler provides each `Ctx<T>` parameter.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use middleware_core::{Context, RequestId};
//! use tower::ServiceExt;
//!
//! async fn handler(cx: Context, id: Option<RequestId>) -> String {
//!     format!("deadline: {:?}, id: {:?}", cx.deadline(), id.map(|id| id.to_string()))
//! }
//!
//! let app = Router::new().route("/", get(handler));
//! let res = app.oneshot(Request::new(Body::empty())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # }
//! ```

use std::{convert::Infallible, fmt};

use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{StatusCode, request::Parts};

use crate::{Context, Error, RequestExt, RequestId};

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.context().clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = MissingContextValue;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.try_context().and_then(Context::request_id) {
            Some(id) => Ok(id.clone()),
            None => Err(MissingContextValue::new(parts, stringify!(RequestId))),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.try_context().and_then(Context::request_id).cloned())
    }
}

/// The context value of type `T` that a layer put in the request's context, as an axum
/// extractor: `Ctx(tenant): Ctx<Tenant>`. Absent, the rejection is [`MissingContextValue`] (a
/// `500` naming `T`, never a panic); `Option<Ctx<T>>` is `None` instead.
///
/// In a `#[handler]`, a `Ctx<T>` parameter is checked at compile time: a layer of the handler
/// must declare that it provides `T` ([`Provides`]); mark it `#[from_outer]` when an outer layer
/// provides it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::{Router, body::Body, routing::get};
/// use http::{Request, StatusCode};
/// use middleware_core::{RequestExt, axum::Ctx};
/// use tower::ServiceExt;
///
/// #[derive(Clone)]
/// struct Tenant(&'static str);
///
/// async fn handler(Ctx(tenant): Ctx<Tenant>) -> &'static str {
///     tenant.0
/// }
///
/// let app = Router::new().route("/", get(handler));
/// let mut req = Request::new(Body::empty());
/// req.context().insert(Tenant("acme"));
/// let res = app.clone().oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
///
/// // No layer put a `Tenant` in the context: a `500`, not a panic.
/// let res = app.oneshot(Request::new(Body::empty())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ctx<T>(pub T);

impl<S, T> FromRequestParts<S> for Ctx<T>
where
    S: Send + Sync,
    T: Clone + Send + Sync + 'static,
{
    type Rejection = MissingContextValue;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.try_context().and_then(Context::get::<T>) {
            Some(value) => Ok(Self(value.clone())),
            None => Err(MissingContextValue::new(parts, std::any::type_name::<T>())),
        }
    }
}

impl<S, T> OptionalFromRequestParts<S> for Ctx<T>
where
    S: Send + Sync,
    T: Clone + Send + Sync + 'static,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .try_context()
            .and_then(Context::get::<T>)
            .map(|value| Self(value.clone())))
    }
}

/// What a layer puts in the context of every request it passes on: the types of those values,
/// as a tuple (`(Tenant,)`, `(Tenant, Plan)`; up to 12, `()` for none).
///
/// `#[handler]` reads it for each layer of the handler (one that does not implement it
/// provides nothing) and checks at compile time that a `Ctx<T>` parameter's `T` is in one of
/// them. A layer deriving `Layer` declares it with `#[middleware(provides(Tenant))]`.
///
/// ```
/// use middleware_core::axum::Provides;
///
/// #[derive(Clone)]
/// struct Tenant(String);
///
/// /// Puts the caller's `Tenant` in the context.
/// #[derive(Clone)]
/// struct TenantLayer;
///
/// impl Provides for TenantLayer {
///     type Values = (Tenant,);
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not declare the context values it provides",
    note = "implement `middleware_core::axum::Provides` for it, or derive `Layer` with `#[middleware(provides(..))]`"
)]
pub trait Provides {
    /// The types of the values this layer puts in the context, as a tuple.
    type Values;
}

/// The rejection of an extractor whose context value no layer provided: a `500 Internal Server
/// Error` (the server is misconfigured, the client did nothing wrong), rendered with the
/// request's renderer ([`RequestExt::render_error`]). It names the missing type.
///
/// The rejection of core's [`RequestId`] extractor and of `middleware-std`'s; a layer author's
/// extractor of its own context value can answer with it too:
///
/// ```
/// use axum::response::IntoResponse;
/// use http::{Request, StatusCode};
/// use middleware_core::axum::MissingContextValue;
///
/// let (parts, ()) = Request::new(()).into_parts();
/// let rejection = MissingContextValue::new(&parts, "Tenant");
/// assert_eq!(rejection.what(), "Tenant");
/// assert_eq!(rejection.to_string(), "no layer provided the `Tenant` context value");
/// assert_eq!(rejection.into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
/// ```
pub struct MissingContextValue {
    what: &'static str,
    response: http::Response<Bytes>,
}

impl MissingContextValue {
    /// The rejection for the request `req` (its parts, or the request itself), whose context
    /// value of type `what` (e.g. `"RequestId"`) is missing. The response is rendered now, with
    /// the request's renderer.
    #[must_use]
    pub fn new(req: &impl RequestExt, what: &'static str) -> Self {
        let response = req.render_error(&Error::new(StatusCode::INTERNAL_SERVER_ERROR));
        Self { what, response }
    }

    /// The type of the missing value, e.g. `"RequestId"`.
    #[must_use]
    pub fn what(&self) -> &'static str {
        self.what
    }
}

impl fmt::Debug for MissingContextValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(MissingContextValue))
            .field("what", &self.what)
            .field("status", &self.response.status())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for MissingContextValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no layer provided the `{}` context value", self.what)
    }
}

impl std::error::Error for MissingContextValue {}

impl IntoResponse for MissingContextValue {
    fn into_response(self) -> Response {
        self.response.map(axum_core::body::Body::from)
    }
}

/// The former name of [`MissingContextValue`], the rejection of the [`RequestId`] extractor.
#[deprecated(since = "0.1.0", note = "use `MissingContextValue` instead")]
pub type MissingRequestId = MissingContextValue;

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{HookLayer, middleware::EnsureContext};

    async fn body(res: Response) -> String {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_context_extractor_finds_the_layers_context() {
        async fn handler(cx: Context) -> String {
            format!("{:?}", cx.get::<&'static str>())
        }
        struct Tag;
        impl crate::Hook for Tag {
            type State = ();
            fn before<B>(
                &self,
                req: &mut http::Request<B>,
            ) -> std::ops::ControlFlow<http::Response<Bytes>> {
                req.context().insert("from the layer");
                std::ops::ControlFlow::Continue(())
            }
            fn after<B>(&self, (): (), _: &mut http::Response<crate::ResponseBody<B>>) {}
        }
        let app = Router::new()
            .route("/", get(handler))
            .layer(HookLayer::new(Tag));
        let res = app.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(body(res.map(Body::new)).await, r#"Some("from the layer")"#);
    }

    #[tokio::test]
    async fn a_missing_request_id_is_a_500_and_optional_is_none() {
        async fn required(id: RequestId) -> String {
            id.to_string()
        }
        async fn optional(id: Option<RequestId>) -> String {
            format!("{id:?}")
        }
        let app = Router::new()
            .route("/required", get(required))
            .route("/optional", get(optional))
            .layer(HookLayer::new(EnsureContext));
        let req = Request::get("/required").body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let req = Request::get("/optional").body(Body::empty()).unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(body(res.map(Body::new)).await, "None");
    }

    #[tokio::test]
    async fn a_missing_request_id_names_its_type_and_uses_the_request_s_renderer() {
        let mut req = Request::new(Body::empty());
        req.context()
            .insert(crate::Renderer::new(|err: &Error, _: &Context| {
                let mut res = http::Response::new(Bytes::from_static(b"custom"));
                *res.status_mut() = err.status();
                res
            }));
        let (mut parts, _) = req.into_parts();
        let rejection = <RequestId as FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(rejection.what(), "RequestId");
        assert_eq!(
            rejection.to_string(),
            "no layer provided the `RequestId` context value"
        );
        let res = rejection.into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body(res).await, "custom");
    }
}
