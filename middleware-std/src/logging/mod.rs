//! Access logging with `tracing`: one span and exactly one access event per request.
//!
//! [`LogLayer`] opens a span named `request` for every request and, when the request is over,
//! emits one event (`request finished`) inside it, whatever the ending: a response whose body
//! was read to the end, an error, a panic, a timeout, a cancellation, or a client that went
//! away in the middle of the body. The event's `outcome` field says which
//! ([`RequestOutcome`]), and its duration covers the body stream, not only the time to the
//! response headers.
//!
//! # Fields
//!
//! The span carries the [OpenTelemetry HTTP semantic conventions]:
//!
//! | field | when |
//! | --- | --- |
//! | `http.request.method` | always: the method, or `_OTHER` for one the conventions do not know |
//! | `http.request.method_original` | for an `_OTHER` method: the method, escaped and bounded |
//! | `url.scheme` | always: the URI's scheme (absolute-form, HTTP/2), else `http` |
//! | `url.path` | always |
//! | `url.query` | with [`LogLayer::log_query`], sensitive keys masked |
//! | `http.route` | with the `axum` feature, when the layer runs inside the router (axum's `MatchedPath`): the route template |
//! | `server.address`, `server.port` | from the URI's authority, else the `Host` header (escaped, bounded) |
//! | `client.address`, `client.port` | when the request's extensions hold a [`std::net::SocketAddr`] |
//! | `user_agent.original` | when the request has a `User-Agent`: escaped, at most 256 bytes, as a string |
//! | `request_id` | when the request's [`Context`](crate::Context) has one |
//! | `http.request.headers` | with [`LogLayer::log_headers`], when the request ends (see [Headers](#headers)) |
//! | `http.response.status_code` | once the response head arrives |
//! | `error.type` | when the request ends in failure: the status of a 5xx, else the outcome (`_OTHER` for `error`, `panic`, `timeout`, `cancelled`, `disconnected`, `client_deadline`); the same value as the `metrics` feature's `error.type` for the request |
//! | `otel.name`, `otel.kind`, `otel.status_code` | with the `otel` feature: `{method} {route}` (or `{method}`, `HTTP` for `_OTHER`), `server`, and `error` on failure (not for a client's own deadline) |
//!
//! With the `otel` feature and `tracing-opentelemetry`'s layer in the subscriber, this span
//! *is* the request's OpenTelemetry server span (see the `otel` module): a
//! child of the remote span that `TraceContextLayer` read, and the event carries its
//! `trace_id` and `span_id`.
//!
//! Every value fed by the client or the inner service is escaped (see [`escape`]) and bounded
//! (see [Limits](#limits)), so that no value can read as another field:
//!
//! - the method, path, query and request id are written bare (`url.path=/users/7`): they
//!   cannot hold an ASCII space (http's parser rejects one in a method, path or query; a
//!   request id is visible ASCII), and every other blank, an ASCII space too should one
//!   appear, is escaped, so nothing in them can start a new field;
//! - the header lists, bodies and error messages, which can hold spaces, are recorded as
//!   strings: a text formatter (`tracing-subscriber`'s `fmt`) writes them quoted, with their
//!   quotes escaped (`error="db down"`), a JSON formatter as JSON strings.
//!
//! The client address is read from a `SocketAddr` in the request extensions: hyper-util
//! servers and tests can insert one directly; axum's `ConnectInfo<SocketAddr>` is a different
//! type, so map it with `axum::middleware::map_request` (or any layer) into a plain
//! `SocketAddr` before this layer.
//!
//! # Levels
//!
//! The event's level comes from a [`MakeLevel`]: by default ([`DefaultLevel`]) `ERROR` for
//! 5xx responses, errors, panics and timeouts, `WARN` for 4xx and for requests whose client's
//! own deadline expired ([`RequestOutcome::ClientDeadline`]: a client that asks for 10 ms
//! cannot mint server errors), `INFO` for the rest; configure it or pass a closure with
//! [`LogLayer::level`]. The span's level is set with [`LogLayer::span_level`].
//!
//! # Safe by default
//!
//! - Query strings are not logged unless asked; then the values of sensitive keys are
//!   masked (see [`LogLayer::log_query`] for the list: `token`, `code`, `client_secret`,
//!   `sig`, `X-Amz-Signature`...).
//! - Headers are not logged unless asked; then they are safe by default (see
//!   [Headers](#headers)): only the values of well-known non-credential headers are shown.
//! - Every logged value that comes from the request or the response (method, path, query,
//!   header names and values, bodies, error messages, the request id) is escaped with
//!   [`escape`]: CR, LF, other control characters, ANSI escape sequences, every Unicode space
//!   but the ASCII one, zero-width and other format characters, bidirectional overrides and
//!   invalid UTF-8 become visible escapes, so a value can neither forge a log line or a field
//!   nor repaint a terminal.
//! - Every logged value is bounded (see [Limits](#limits)): a huge path or header block
//!   cannot turn into a huge record.
//! - Bodies are not captured unless asked ([`LogLayer::capture_request_body`],
//!   [`LogLayer::capture_response_body`]); then only the first `limit` bytes are kept, and the
//!   body streams through unchanged.
//!
//! # Headers
//!
//! With [`LogLayer::log_headers`], every header is listed by name, as
//! `name: "value", name: [redacted], ...`. A value is shown only when its header is on the
//! allow-list and not on the deny-list; otherwise it is written `[redacted]` (every value of a
//! repeated header).
//!
//! - **The allow-list**: `accept` and `accept-*`, `access-control-*`, `age`, `cache-control`,
//!   `connection`, `content-encoding`, `content-language`, `content-length`,
//!   `content-location`, `content-range`, `content-type`, `date`, `etag`, `expect`, `expires`,
//!   `forwarded`, `host`, `if-match`, `if-modified-since`, `if-none-match`, `if-range`,
//!   `if-unmodified-since`, `last-modified`, `location`, `origin`, `pragma`, `range`,
//!   `referer`, `refresh`, `retry-after`, `server`, `te`, `traceparent`, `tracestate`,
//!   `transfer-encoding`, `upgrade`, `user-agent`, `vary`, `via`, `x-forwarded-*`,
//!   `x-real-ip`, `x-request-id`; plus [`LogLayer::log_header_value`]. A header nobody
//!   declared (`x-auth-token`, `api-key`, `x-my-secret`...) is therefore never shown.
//! - **The deny-list**, which wins over the allow-list: `authorization`,
//!   `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key`, `api-key`, `x-auth-token`,
//!   `x-access-token`, `x-csrf-token`, `x-xsrf-token`; [`LogLayer::redact_header`]; values
//!   marked [sensitive](http::HeaderValue::set_sensitive); and every header that a layer of
//!   the request declared a credential with
//!   [`Context::mark_sensitive_header`](crate::Context::mark_sensitive_header), as auth layers
//!   do. The request headers are written when the request ends, so a declaration counts
//!   whether the declaring layer sits outside or inside this one (it needs the request's
//!   context: an outer layer's, or [`LogLayer::create_context`]).
//! - The URLs in `location`, `content-location`, `refresh`, `referer` and `origin` are
//!   masked: their query and fragment by the query rules (an OAuth `Location: ...?code=`),
//!   their userinfo (`user:pass@`) as `[redacted]`.
//!
//! # Limits
//!
//! Each logged value is cut to a fixed size of escaped text, and a cut value ends in
//! `...[truncated]`: the method at 32 bytes, the path at 2 KiB, the (masked) query at 2 KiB,
//! the request id at 256 bytes, an error message at 1 KiB, each header list (request,
//! response) at 4 KiB, with each header value at 256 bytes and each header name at 64 bytes.
//! A captured body keeps its first `limit` bytes, which escape to at most `4 * limit` bytes.
//! A record without body capture stays under about 16 KiB, whatever the request.
//!
//! # Bodiless responses
//!
//! A response to `HEAD`, and a `1xx`, `204` or `304` response, has no body on the wire: hyper
//! drops its body unpolled (and axum empties it). The request ends at the response head, with
//! outcome `completed` and a body size of 0, and the context is not cancelled: a load
//! balancer's `HEAD` health check is not a client that went away.
//!
//! # The context
//!
//! The layer does not create the request's [`Context`](crate::Context) (unless
//! [`LogLayer::create_context`]): it clones the one an outer layer made, if any, at the time of
//! the request, and reads through it, once the request is over, the cancellation cause and a
//! request id that an inner layer set. Durations are then measured on the context's clock
//! (tokio's, so tests with a paused clock are exact).
//!
//! Without a context (no outer layer made one): there is no `request_id` and no
//! `cancel_cause`, a future dropped by an outer timeout is logged as `disconnected` (the layer
//! cannot tell why it was dropped), a late answer from an inner timeout layer as a completed
//! 503, and durations use the standard monotonic clock. Put a request-id layer (which creates
//! the context) outside this one, as the recommended order does, or turn on
//! [`LogLayer::create_context`].
//!
//! When the client goes away before the response ends (the response future or the body is
//! dropped early), the layer cancels the context with
//! [`CancelCause::Dropped`](crate::CancelCause::Dropped) — also while nothing is being logged —
//! so work spawned for the request can stop: once the response head is out, no adapter's drop
//! guard sees the request any more, this layer's body does.
//!
//! # Panics
//!
//! A panic in the inner service's `call`, in its future or in the response body unwinds
//! through this layer; whoever catches it (a panic-recovery layer outside, the runtime's
//! task), the request is logged once with outcome `panic`. A panic-recovery layer *inside*
//! this one turns the panic into a response, logged as that response.
//!
//! # Cost
//!
//! Nothing is allocated by the layer for a request without options (the span's storage is the
//! subscriber's business): the context is cloned, not created, and the record travels inside
//! the future and then the body. A value that needs escaping or cutting is copied into a
//! string; a clean one is recorded as it is. Header logging clones the request and the
//! response header maps and writes them as strings, query logging writes the masked query,
//! body capture allocates its buffer, and [`LogLayer::create_context`] costs the context.
//! Measured in `tests/logging_fmt.rs`.
//!
//! Inside a timing layer that asks for per-layer times (`per_layer_times` of the `timing`
//! module's `ServerTimingLayer`), the time this layer spends before calling the inner service
//! is reported as `mw.logging`.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::BodyExt;
//! use middleware_std::logging::LogLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # let (writer, logs) = writer();
//! # let subscriber = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
//! # let _guard = tracing::subscriber::set_default(subscriber);
//! let app = ServiceBuilder::new()
//!     .layer(LogLayer::new().log_query(true))
//!     .service(service_fn(|_req: Request<String>| async {
//!         let mut res = Response::new(String::from("not here"));
//!         *res.status_mut() = StatusCode::NOT_FOUND;
//!         Ok::<_, Infallible>(res)
//!     }));
//!
//! let req = Request::get("/users/7?token=s3cret&page=2").body(String::new()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! res.into_body().collect().await.unwrap(); // the event is emitted at the end of the body
//!
//! let logs = logs();
//! assert_eq!(logs.lines().count(), 1, "{logs}");
//! assert!(logs.contains(" WARN request{"), "{logs}");
//! assert!(logs.contains("url.path=/users/7 url.query=token=[redacted]&page=2"), "{logs}");
//! assert!(logs.contains("outcome=\"completed\""), "{logs}");
//! assert!(!logs.contains("s3cret"), "{logs}");
//! # }
//! # fn writer() -> (impl for<'a> tracing_subscriber::fmt::MakeWriter<'a> + 'static, impl Fn() -> String) {
//! #     use std::sync::{Arc, Mutex};
//! #     #[derive(Clone)]
//! #     struct Buf(Arc<Mutex<Vec<u8>>>);
//! #     impl std::io::Write for Buf {
//! #         fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().extend_from_slice(b); Ok(b.len()) }
//! #         fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! #     }
//! #     let buf = Buf(Arc::default());
//! #     let read = buf.clone();
//! #     (move || buf.clone(), move || String::from_utf8(read.0.lock().unwrap().clone()).unwrap())
//! # }
//! ```
//!
//! # Differences from tower-http
//!
//! tower-http's `TraceLayer` is a toolkit: it calls `on_request`, `on_response`,
//! `on_body_chunk`, `on_eos` and `on_failure` callbacks that you write, and logs what its
//! defaults log. Its callbacks fire from the future's and the body's polls, so nothing is
//! reported for a future dropped before the response or a body dropped mid-stream (a client
//! that went away), and its defaults log the response and the end of the stream as separate
//! events. With `include_headers(true)` its default span prints every header, and redaction
//! relies on values marked sensitive (its `SetSensitiveHeadersLayer`); it has no query
//! masking and no body capture.
//!
//! This layer is one opinionated access log instead: exactly one event per request that names
//! its outcome (drops and panics included), OpenTelemetry field names, escaping, query masking
//! and header redaction built in, bounded body capture, and the context's request id and
//! cancellation cause. Use `TraceLayer` when you need per-chunk callbacks or gRPC
//! classification.
//!
//! # One record per request
//!
//! A `LogLayer` under another one on the same request (a per-route `LogLayer` under a global
//! one, or under [`StackLayer`](crate::stack::StackLayer), which has one) writes no record:
//! the outer one writes the only access record, and the inner one passes the request through
//! and says so in one `warn!` per process. The layers find each other through a mark in the
//! request's extensions, which costs no allocation (a request that has no extension at all
//! when it reaches the outer layer is not marked). A client-side `LogLayer` that is handed the
//! inbound request itself, extensions included (a proxy forwarding it as is), counts as inner
//! too: build the outbound request anew, or drop its extensions, to log it.
//!
//! A request-id layer *inside* this one (the order of `Router::layer` calls is the reverse of
//! `ServiceBuilder`'s) does not lose the id: without a context, the record takes it from the
//! response's [`RequestId`](crate::RequestId) extension. The request-id layer warns once
//! about the order (the span lacks the id until the response).
//!
//! [OpenTelemetry HTTP semantic conventions]: https://opentelemetry.io/docs/specs/semconv/http/http-spans/

mod access;
mod body;
mod capture;
mod escape;
mod future;
mod headers;
mod layer;
mod level;
mod service;

#[cfg_attr(not(feature = "otel"), allow(unused_imports))]
pub(crate) use self::access::semconv;
#[doc(inline)]
pub use self::{
    body::LogBody,
    capture::{CaptureBody, CaptureRequestBody, PassRequestBody, RequestBodyMode},
    escape::{Escape, escape},
    future::ResponseFuture,
    layer::LogLayer,
    level::{DefaultLevel, MakeLevel, RequestOutcome},
    service::Log,
};
