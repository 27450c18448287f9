//! Redacted dumps of requests and responses in HTTP/1.1 wire format: Go's `httputil.DumpRequest`
//! and `DumpResponse`, without their leaks.
//!
//! [`request_head`] and [`response_head`] render a head as text: the request or status line,
//! then one line per header. [`DumpLayer`] logs each request and response passing through it as
//! a `tracing` event (target `middleware_std::dump`, level `DEBUG` unless told otherwise), on
//! the way in and on the way out, and, when asked with [`DumpLayer::body_bytes`], the first
//! bytes of each response body as they stream through: the body is never buffered or changed,
//! the dump sees a copy of its first frames. The layer leaves request bodies alone, keeping the
//! request type as it is so that it stacks over any service (a client's body type included);
//! wrap a request body where it is built with [`DumpLayer::request_body`] to dump it too. It
//! works the same inbound (around a server's handler) and
//! outbound (around a client such as hyper-util's), and costs nothing but a check when its
//! events are disabled.
//!
//! # What a dump never shows
//!
//! - the values of credential headers (`authorization`, `proxy-authorization`, `cookie`,
//!   `set-cookie`, `x-api-key` and other token headers), of headers the request's [`Context`]
//!   declared sensitive ([`Context::mark_sensitive_header`], as the auth layer does), and of
//!   headers added with [`Redaction::header`];
//! - the values of secret query keys (`token`, `access_token`, `api_key`, `password`, `sig`, ...,
//!   and those added with [`Redaction::query_key`]) and the user info of a URI;
//! - credential-looking values anywhere in the head: an auth scheme with a value (`Bearer ...`,
//!   `Basic ...`) or a long high-entropy token (24 or more token characters mixing upper case,
//!   lower case and digits: API keys, JWTs). Body bytes get the token check too; a body's own
//!   fields (`"password": ...`) are not parsed: dump bodies only where they hold no secrets.
//!
//! The request's context is read when the request passes the layer: a header that a layer
//! *inside* this one declares sensitive is redacted in the response dump but not in the request
//! dump already written. Put the dump layer inside the layers that declare headers (the auth
//! layer does), or name those headers with [`Redaction::header`].
//!
//! Every byte outside printable ASCII is escaped (`\xNN`, `\t`, and `\\` for a backslash), so a
//! hostile header can neither end its line nor forge another: a head always has exactly one line
//! per header. Body lines are indented by two spaces for the same reason.
//!
//! Unlike `httputil`, this never reads a body to dump it: [`DumpBody`] copies at most
//! [`DumpLayer::body_bytes`] of it as the consumer reads, and a body that is never read is never
//! dumped.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response};
//! use middleware_std::dump::{self, Redaction};
//!
//! let req = Request::get("https://user:pw@api.example/v1/items?page=2&token=abc")
//!     .header("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
//!     .header("user-agent", &b"demo\xe2\x80\xa8x-forged: yes"[..])
//!     .header("x-trace", "Basic dXNlcjpwYXNz")
//!     .body(())
//!     .unwrap();
//! let text = dump::request_head(&req, &Redaction::new());
//! assert_eq!(
//!     text,
//!     "GET /v1/items?page=2&token=[redacted] HTTP/1.1\n\
//!      host: api.example\n\
//!      authorization: [redacted]\n\
//!      user-agent: demo\\xe2\\x80\\xa8x-forged: yes\n\
//!      x-trace: [redacted]"
//! );
//!
//! let res = Response::builder().status(404).body(()).unwrap();
//! assert_eq!(dump::response_head(&res, None, &Redaction::new()), "HTTP/1.1 404 Not Found");
//! ```
//!
//! (`http` refuses CR and LF in a header value; a U+2028 line separator, which some log viewers
//! break lines at, is escaped like every other byte outside printable ASCII.)
//!
//! The layer, inbound:
//!
//! ```
//! use http::{Request, Response};
//! use middleware_std::dump::DumpLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(DumpLayer::new().label("inbound").body_bytes(64))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::from("hello")))
//!     }));
//! let res = svc.oneshot(Request::new(String::from("ping"))).await.unwrap();
//! assert_eq!(res.status(), 200);
//! # }
//! ```
//!
//! # Per-layer time
//!
//! The time spent rendering and logging is recorded as the mark `mw.dump` when the request asks
//! for per-layer times (see the timing layer).

mod body;
mod render;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll, ready},
    time::{Duration, Instant},
};

use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Level;

use crate::{Context, RequestExt, layer_time};

use self::body::{Capture, render_body};
#[doc(inline)]
pub use self::{
    body::DumpBody,
    render::{REDACTED, Redaction, request_head, response_head},
};

/// The target of the layer's events.
const TARGET: &str = "middleware_std::dump";

macro_rules! dump_event {
    ($level:expr, $($rest:tt)*) => {
        match $level {
            Level::ERROR => tracing::event!(target: TARGET, Level::ERROR, $($rest)*),
            Level::WARN => tracing::event!(target: TARGET, Level::WARN, $($rest)*),
            Level::INFO => tracing::event!(target: TARGET, Level::INFO, $($rest)*),
            Level::DEBUG => tracing::event!(target: TARGET, Level::DEBUG, $($rest)*),
            _ => tracing::event!(target: TARGET, Level::TRACE, $($rest)*),
        }
    };
}

/// What the layer's clones share: how to redact and where to log.
#[derive(Clone, Debug)]
pub(crate) struct Emitter {
    label: &'static str,
    level: Level,
    redaction: Redaction,
}

impl Emitter {
    fn enabled(&self) -> bool {
        match self.level {
            Level::ERROR => tracing::enabled!(target: TARGET, Level::ERROR),
            Level::WARN => tracing::enabled!(target: TARGET, Level::WARN),
            Level::INFO => tracing::enabled!(target: TARGET, Level::INFO),
            Level::DEBUG => tracing::enabled!(target: TARGET, Level::DEBUG),
            _ => tracing::enabled!(target: TARGET, Level::TRACE),
        }
    }

    fn head(&self, what: &'static str, text: &str) {
        dump_event!(self.level, label = self.label, dump = %text, "{what}");
    }

    pub(crate) fn body(&self, what: &'static str, bytes: &[u8], end: &'static str) {
        if bytes.is_empty() && end == "dropped" {
            // A body nobody read: nothing to show.
            return;
        }
        let text = render_body(bytes);
        dump_event!(self.level, label = self.label, dump = %text, bytes = bytes.len(), end, "{what}");
    }
}

/// Logs redacted dumps of each request and response. See the [module docs](self) for an
/// example.
#[derive(Clone, Debug)]
#[must_use]
pub struct DumpLayer {
    emitter: Arc<Emitter>,
    body_bytes: usize,
}

impl Default for DumpLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl DumpLayer {
    /// Dumps heads only, at `DEBUG`, with the built-in redaction.
    pub fn new() -> Self {
        Self {
            emitter: Arc::new(Emitter {
                label: "dump",
                level: Level::DEBUG,
                redaction: Redaction::new(),
            }),
            body_bytes: 0,
        }
    }

    fn emitter_mut(&mut self) -> &mut Emitter {
        Arc::make_mut(&mut self.emitter)
    }

    /// Names the dumps (the event field `label`), e.g. `"inbound"` or `"upstream"`.
    pub fn label(mut self, label: &'static str) -> Self {
        self.emitter_mut().label = label;
        self
    }

    /// Logs the dumps at `level`.
    pub fn level(mut self, level: Level) -> Self {
        self.emitter_mut().level = level;
        self
    }

    /// Redacts with `redaction` (besides the built-in lists, which always apply).
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.emitter_mut().redaction = redaction;
        self
    }

    /// Also dumps the first `limit` bytes of each response body as it streams through (0, the
    /// default, dumps none).
    pub const fn body_bytes(mut self, limit: usize) -> Self {
        self.body_bytes = limit;
        self
    }

    /// Wraps a request body where it is built, so its first [`body_bytes`](Self::body_bytes)
    /// are dumped (as `request body`, with this layer's label and level) as the client sends
    /// it. The layer itself leaves request bodies alone.
    ///
    /// ```
    /// use http_body_util::{BodyExt, Full};
    /// use middleware_std::dump::DumpLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dump = DumpLayer::new().body_bytes(16);
    /// let body = dump.request_body(Full::<bytes::Bytes>::from("{\"sku\": 42}"));
    /// // Streams through unchanged.
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "{\"sku\": 42}");
    /// # }
    /// ```
    pub fn request_body<B: Body>(&self, body: B) -> DumpBody<B> {
        let capture = (self.body_bytes > 0 && !body.is_end_stream() && self.emitter.enabled())
            .then(|| Capture::new(self.body_bytes, Arc::clone(&self.emitter), "request body"));
        DumpBody::dumping(body, capture)
    }
}

impl<S> Layer<S> for DumpLayer {
    type Service = Dump<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Dump {
            inner,
            layer: self.clone(),
        }
    }
}

/// Logs redacted dumps of each request and response. See the [module docs](self) for an
/// example.
#[derive(Clone, Debug)]
pub struct Dump<S> {
    inner: S,
    layer: DumpLayer,
}

impl<S> Dump<S> {
    /// Wraps `inner` with the dumps `layer` configures.
    pub const fn new(inner: S, layer: DumpLayer) -> Self {
        Self { inner, layer }
    }

    /// A layer with the default configuration.
    pub fn layer() -> DumpLayer {
        DumpLayer::new()
    }

    define_inner_service_accessors!();
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Dump<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
{
    type Response = Response<DumpBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let context = req.extensions().try_context();
        let started = layer_time::wanted(context).then(Instant::now);
        let emitter = &self.layer.emitter;
        if !emitter.enabled() {
            let context = started.and(context.cloned());
            let state = started.map(|started| State {
                context,
                emitter: None,
                body_bytes: 0,
                spent: Some(started.elapsed()),
            });
            return ResponseFuture {
                inner: self.inner.call(req),
                state,
            };
        }
        emitter.head("request", &request_head(&req, &emitter.redaction));
        let context = context.cloned();
        let state = State {
            context,
            emitter: Some(Arc::clone(emitter)),
            body_bytes: self.layer.body_bytes,
            spent: started.map(|started| started.elapsed()),
        };
        ResponseFuture {
            inner: self.inner.call(req),
            state: Some(state),
        }
    }
}

/// What the future needs once the response arrives.
struct State {
    context: Option<Context>,
    emitter: Option<Arc<Emitter>>,
    body_bytes: usize,
    spent: Option<Duration>,
}

pin_project! {
    /// The response future of [`Dump`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<State>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &format_args!("..."))
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<DumpBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let Some(state) = this.state.take() else {
            return Poll::Ready(Ok(res.map(DumpBody::new)));
        };
        let started = state.spent.is_some().then(Instant::now);
        let res = match &state.emitter {
            None => res.map(DumpBody::new),
            Some(emitter) => {
                let text = response_head(&res, state.context.as_ref(), &emitter.redaction);
                emitter.head("response", &text);
                let (parts, body) = res.into_parts();
                let capture = (state.body_bytes > 0 && !body.is_end_stream())
                    .then(|| Capture::new(state.body_bytes, Arc::clone(emitter), "response body"));
                Response::from_parts(parts, DumpBody::dumping(body, capture))
            }
        };
        if let (Some(spent), Some(started)) = (state.spent, started) {
            layer_time::record(state.context.as_ref(), "mw.dump", spent + started.elapsed());
        }
        Poll::Ready(Ok(res))
    }
}

// ----- stack introspection -----

impl middleware_core::Describe for DumpLayer {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("DumpLayer")
            .setting("label", self.emitter.label)
            .setting("level", self.emitter.level)
            .setting("body_bytes", self.body_bytes);
    }
}

impl<S: middleware_core::Describe> middleware_core::Describe for Dump<S> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.layer.describe(description);
        self.inner.describe(description);
    }
}

#[cfg(test)]
mod tests;
