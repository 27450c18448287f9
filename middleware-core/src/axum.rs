//! axum extractors for the context values (feature `axum`, which depends on `axum-core` only).
//!
//! - [`Context`]: the request's context, found or created; never rejects.
//! - [`RequestId`]: the id a request-id layer set. Absent, it is a server misconfiguration (no
//!   such layer in front of the handler), answered with a `500` rendered by the request's error
//!   renderer ([`MissingRequestId`]); take `Option<RequestId>` when the layer is optional.
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
    type Rejection = MissingRequestId;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(id) = parts.try_context().and_then(Context::request_id) {
            return Ok(id.clone());
        }
        let error = Error::new(StatusCode::INTERNAL_SERVER_ERROR);
        let response = match parts.try_context() {
            Some(cx) => cx.render_error(&error),
            None => Context::new().render_error(&error),
        };
        Err(MissingRequestId(response))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.try_context().and_then(Context::request_id).cloned())
    }
}

/// The rejection of a [`RequestId`] extractor when no layer set an id: a `500` (the server
/// is misconfigured, the client did nothing wrong), rendered by the request's renderer.
pub struct MissingRequestId(http::Response<Bytes>);

impl fmt::Debug for MissingRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MissingRequestId").finish()
    }
}

impl fmt::Display for MissingRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no request id: put a request-id layer in front of this handler")
    }
}

impl IntoResponse for MissingRequestId {
    fn into_response(self) -> Response {
        self.0.map(axum_core::body::Body::from)
    }
}

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
}
