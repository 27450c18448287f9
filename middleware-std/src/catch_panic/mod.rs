//! Panic recovery: a panic anywhere in the inner service becomes a `500` (or, once the response
//! head is sent, a body error), is logged once with the request id, and never reaches the
//! client.
//!
//! # Where panics are caught
//!
//! | site | outcome |
//! | --- | --- |
//! | the inner `call` | the responder's response (`500` by default) |
//! | the response future, first poll or any later one | the responder's response; the inner future is dropped |
//! | the response body, after the head | the body yields a [`PanicError`], and again on every later poll (never a clean end); hyper closes the connection (HTTP/1.1) or resets the stream (HTTP/2); never a hang |
//! | the responder (or the application's error renderer it calls) | the fixed [`ProblemDetails::fallback`](crate::ProblemDetails::fallback) `500`; still one log event, for the first panic |
//! | the inner `poll_ready` | `poll_ready` reports ready (the service's error type stays the inner one, so there is no error to return); the next `call` answers with the responder's response *without calling the inner service*, whose state is unknown; the following `poll_ready` asks the inner service again. The process and the connection stay up. |
//!
//! Every caught panic cancels the request's [`Context`](crate::Context) (when it has one) with
//! [`CancelCause::Panicked`](crate::CancelCause::Panicked), so work spawned for the request
//! stops; for a panicking future this happens before the future is dropped, so layers inside
//! this one (a timeout's drop guard) see that cause rather than `dropped`.
//!
//! Every panic is logged once, at error level, with the fields `request_id`, `panic.message`
//! (Debug-escaped, so a message with CR/LF cannot forge log lines), `panic.location` and
//! `panic.site` ([`PanicSite`]). The request id comes from the request's
//! [`Context`](crate::Context), so put the request-id layer outside this one (the recommended
//! order).
//!
//! # The default response
//!
//! [`DefaultResponseForPanic`] renders `500 Internal Server Error` with the request's error
//! renderer: RFC 9457 problem details carrying the request id, and nothing of the payload. A
//! custom responder is a [`ResponseForPanic`] or a closure
//! `Fn(&Panic, &Context) -> Response<Bytes> + Clone` ([`CatchPanicLayer::custom`]).
//!
//! The answer to a panic cannot panic in turn: if the application's renderer (a
//! [`Renderer`](crate::Renderer) in the context) or a custom responder panics while making the
//! `500`, the client gets the fixed
//! [`ProblemDetails::fallback`](crate::ProblemDetails::fallback) `500`
//! (`{"type":"about:blank","title":"Internal Server Error","status":500}`), built without any
//! application code, instead of a closed connection.
//!
//! # Errors in the body
//!
//! After the inner body yields an error (or panics), [`CatchPanicBody`] does not poll it
//! again, and every later poll yields an error again ([`BodyFailedError`], or [`PanicError`]
//! after a panic): a consumer that polls once more never takes a cut body for a complete one.
//!
//! # Per-layer time
//!
//! With `ServerTimingLayer::per_layer_times(true)` (module `timing`) on an outer timing layer, this layer records its own time (in `call` up to the inner call,
//! plus wrapping the response, or handling a panic: logging and the `500`) as the context
//! mark `mw.catch_panic`. A panic in the body happens after the head went out, too late for
//! that header.
//!
//! # The panic location
//!
//! `catch_unwind` hands over the payload, not the location; only a panic hook sees that.
//! The layer never installs a hook by itself (a process-wide hook is the application's
//! decision): call [`install_panic_hook`] once at startup, which records each panic's location
//! in a thread-local and then calls the previous hook, or call [`record_panic_location`] from
//! your own hook. Without either, `panic.location` is empty. A record is used only by a catch
//! whose payload message matches it, so a panic caught elsewhere is never misattributed.
//!
//! This layer needs `panic = "unwind"` (the default): with `panic = "abort"` nothing can be
//! caught.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::BodyExt;
//! use middleware_std::{RequestExt, RequestId, catch_panic::{self, CatchPanicLayer}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! catch_panic::install_panic_hook(); // opt in to logging the location too
//!
//! let svc = ServiceBuilder::new()
//!     .layer(CatchPanicLayer::new())
//!     .service(service_fn(|req: Request<String>| async move {
//!         if req.body().is_empty() {
//!             panic!("db password is hunter2");
//!         }
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//!
//! let mut req = Request::new(String::new());
//! req.context().set_request_id(RequestId::try_from("req-1").unwrap()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"type":"about:blank","title":"Internal Server Error","status":500,"request_id":"req-1"}"#,
//! );
//! # }
//! ```
//!
//! # Differences from tower-http
//!
//! - tower-http's `CatchPanicLayer` boxes every response body (`UnsyncBoxBody`) and uses a
//!   boxed `CatchUnwind` future; here the future and the body are named pin-project types and
//!   nothing is allocated for a request that does not panic.
//! - tower-http does not catch panics while the body streams, nor in `poll_ready`; here both
//!   are caught.
//! - tower-http's default response is a plain-text `500` without a request id, and its hook
//!   receives the payload only; here the response carries the request id, the panic is logged
//!   once with the request id and (opt-in) the location, and the responder gets the [`Panic`]
//!   (message, location, site) and the request's context.

mod body;
mod future;
mod layer;
mod panic;
mod service;

#[doc(inline)]
pub use self::{
    body::{CatchPanicBody, PanicError},
    future::ResponseFuture,
    layer::CatchPanicLayer,
    panic::{
        DefaultResponseForPanic, Panic, PanicLocation, PanicSite, ResponseForPanic,
        install_panic_hook, record_panic_location,
    },
    service::CatchPanic,
};
/// Re-exported from core, where every body wrapper's "polled again after it failed" error lives.
#[doc(inline)]
pub use middleware_core::body::BodyFailedError;

#[cfg(test)]
mod tests;
