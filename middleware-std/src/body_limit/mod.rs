//! A limit on the size of request bodies that never buffers: [`RequestBodyLimitLayer`].
//!
//! - A request whose `Content-Length` declares more than the limit is answered
//!   `413 Payload Too Large` at once: the handler never runs and the body is never read (with
//!   `Expect: 100-continue` the client is never told to send it). A `Content-Length` too long
//!   to fit a `u64` counts as over the limit; with several values, any one over the limit does.
//! - Every other body (chunked, HTTP/2 without a length, or one that declares a length) reaches
//!   the handler as a [`LimitedBody`], which counts the bytes as they stream and fails the
//!   handler's read with a [`LengthLimitError`] at the frame that would pass the limit. A body
//!   that declared a length within the limit is cut at that length, so a body that brings more
//!   than it declared fails the same way. Nothing is buffered: frames pass through as they come.
//! - Once the body has passed the limit, the layer answers `413` itself, whatever the handler
//!   made of the error (its response, or its error, is dropped): a handler that maps every
//!   body error to `400`, or one that ignores the error, still yields a `413`.
//! - Every `413` on HTTP/1 carries `Connection: close`: the rest of the body was not read, so
//!   the connection cannot be reused (hyper closes it after the response instead of draining
//!   an unbounded body). HTTP/2 forbids the header; there the stream ends on its own.
//!
//! An empty body (`is_end_stream`, a `GET`) passes at no cost; any other body costs one
//! allocation, the flag its [`LimitedBody`] shares with the layer's future.
//!
//! The `413` is rendered by the request's [`Renderer`](crate::Renderer) (RFC 9457 problem
//! details by default), like every other error response of this crate.
//!
//! A `413` decided while the body streams needs the layer to see the limit *before the response
//! head*. A handler that starts streaming its response and only then reads the body sees the
//! [`LengthLimitError`] too late for a `413`: the head it sent stands.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header};
//! use http_body_util::{BodyExt, Full};
//! use middleware_std::{
//!     BoxError,
//!     body_limit::{LengthLimitError, LimitedBody, RequestBodyLimitLayer},
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(RequestBodyLimitLayer::new(16))
//!     .service(service_fn(|req: Request<LimitedBody<Full<Bytes>>>| async move {
//!         // The handler maps every body error to `400`; the layer still answers `413`.
//!         let status = match req.into_body().collect().await {
//!             Ok(body) => {
//!                 assert!(body.to_bytes().len() <= 16);
//!                 StatusCode::OK
//!             }
//!             Err(err) => {
//!                 assert!(err.downcast_ref::<LengthLimitError>().is_some());
//!                 StatusCode::BAD_REQUEST
//!             }
//!         };
//!         Ok::<_, Infallible>(Response::builder().status(status).body(Full::<Bytes>::default()).unwrap())
//!     }));
//!
//! // Within the limit: the handler reads it all.
//! let req = Request::new(Full::from("small"));
//! assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
//!
//! // A declared length over the limit: `413` before the handler runs.
//! let req = Request::builder()
//!     .header(header::CONTENT_LENGTH, "1000000")
//!     .body(Full::from("not read"))
//!     .unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
//! assert_eq!(res.headers()[header::CONNECTION], "close");
//!
//! // No declared length, too many bytes: cut while streaming, still `413`.
//! let req = Request::new(Full::from("far more than sixteen bytes"));
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
//! # let _: Option<BoxError> = None;
//! # }
//! ```
//!
//! # Differences from tower-http's `RequestBodyLimit`
//!
//! tower-http's layer also answers `413` on a `Content-Length` over the limit and wraps the
//! rest in `http_body_util::Limited` (cut at `min(limit, Content-Length)`, as here). It differs:
//!
//! - it answers `413` for a streamed body only when the *inner service's error* carries the
//!   `LengthLimitError` in its source chain; a handler that turns the body error into a response
//!   (any axum handler: the service error is `Infallible`) decides the status, often `400` or
//!   `500`. Here a flag raised by the body decides, so the status is `413` on every path where
//!   the limit was passed before the head;
//! - it sends no `Connection: close`, leaving an unread, possibly unbounded body on a
//!   connection the server may try to reuse;
//! - a `Content-Length` too large for a `usize` is ignored (only the streaming limit applies),
//!   and only the first of several values is read; here either is a `413` at once;
//! - its `413` has a fixed text body; here the request's renderer writes it (problem details,
//!   with the request id).

mod body;
mod error;
mod future;
mod layer;
mod service;
#[cfg(test)]
mod tests;

#[doc(inline)]
pub use self::{
    body::LimitedBody, error::LengthLimitError, future::ResponseFuture,
    layer::RequestBodyLimitLayer, service::RequestBodyLimit,
};
