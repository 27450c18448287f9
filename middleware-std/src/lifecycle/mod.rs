//! Lifecycle timings of outbound calls: Go's `httptrace`, for hyper-util's client.
//!
//! For each call through [`LifecycleLayer`], [`Timings`] says how the connection was got (a new
//! one and how long it took to make, DNS and connect together, or a reused one), and how long
//! after the call started the request was written, the first response byte (the head) arrived,
//! and the body ended. They are recorded as context marks on the request's [`Context`] (so the
//! timing layer's `Server-Timing` and the access log show them) and passed to a callback
//! ([`LifecycleLayer::on_timings`]) once the body ends, fails or is dropped.
//!
//! It is built on hyper-util's hooks, not a fork of the client: build the client with a
//! [`TimedConnector`] around its connector (it times each new connection and tags it with a
//! [`ConnectInfo`], which the client copies into every response the connection carries), and
//! put [`LifecycleLayer`] around the client. Without the connector the connection is
//! [`ConnectionKind::Unknown`] and the write time is missing; the rest still works.
//!
//! | mark               | duration                                                  |
//! |--------------------|-----------------------------------------------------------|
//! | `client.connect`   | making a new connection (only when the call made one)      |
//! | `client.reused`    | zero: the call reused a pooled connection                  |
//! | `client.write`     | from the call to the request's last byte written           |
//! | `client.first_byte`| from the call to the response head                         |
//! | `client.body`      | from the call to the end of the response body              |
//!
//! A call that made a connection is the first one to receive a response from it; the calls
//! after it reused it. The write time is the connection's last write before the response head:
//! with HTTP/1.1 one request is in flight per connection, so that is the end of this request's
//! write. On a multiplexed HTTP/2 connection it is the last write of any stream, an upper bound.
//!
//! # Example
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use http::{Request, Response};
//! use middleware_std::{
//!     Context,
//!     lifecycle::{ConnectionKind, LifecycleLayer, Timings},
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let seen = Arc::new(Mutex::new(None));
//! let sink = Arc::clone(&seen);
//! // In real use the inner service is hyper-util's client built over a `TimedConnector`.
//! let client = ServiceBuilder::new()
//!     .layer(LifecycleLayer::new().on_timings(move |t: &Timings| {
//!         *sink.lock().unwrap() = Some(t.clone());
//!     }))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//!     }));
//!
//! let cx = Context::new();
//! let mut req = Request::new(String::new());
//! req.extensions_mut().insert(cx.clone());
//! let res = client.oneshot(req).await.unwrap();
//! drop(res); // an empty body ends at the head
//!
//! let timings = seen.lock().unwrap().clone().unwrap();
//! assert_eq!(timings.connection(), ConnectionKind::Unknown);
//! assert!(timings.first_byte().is_some() && timings.body_end().is_some());
//! let marks: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
//! assert_eq!(marks, ["client.first_byte", "client.body"]);
//! # }
//! ```
//!
//! Over TCP, with the connector:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Empty;
//! use hyper_util::{
//!     client::legacy::{Client, connect::HttpConnector},
//!     rt::TokioExecutor,
//! };
//! use middleware_std::lifecycle::{LifecycleLayer, TimedConnector};
//! use tower::ServiceBuilder;
//!
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, Empty<Bytes>>(TimedConnector::new(HttpConnector::new()));
//! let client = ServiceBuilder::new().layer(LifecycleLayer::new()).service(client);
//! # let _ = client;
//! ```
//!
//! # Per-layer time
//!
//! The layer's own time is recorded as the mark `mw.lifecycle` when the request asks for
//! per-layer times.

mod body;
mod connect;

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

use crate::{Context, RequestExt, layer_time};

#[doc(inline)]
pub use self::{
    body::TimedBody,
    connect::{ConnectFuture, ConnectInfo, TimedConnection, TimedConnector},
};

/// How a call got its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionKind {
    /// The call made a new connection, which took `connect`.
    New {
        /// Making the connection: name resolution and connect (and TLS, if the connector does
        /// it).
        connect: Duration,
    },
    /// The call reused a pooled connection.
    Reused,
    /// No [`ConnectInfo`] on the response: the client's connector is not a [`TimedConnector`],
    /// or the call failed before a response.
    Unknown,
}

/// Where one outbound call spent its time. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct Timings {
    connection: ConnectionKind,
    wrote_request: Option<Duration>,
    first_byte: Option<Duration>,
    body_end: Option<Duration>,
    completed: bool,
}

impl Timings {
    /// A call that got no response (failed or given up).
    const fn failed() -> Self {
        Self {
            connection: ConnectionKind::Unknown,
            wrote_request: None,
            first_byte: None,
            body_end: None,
            completed: false,
        }
    }

    /// How the call got its connection.
    #[must_use]
    pub const fn connection(&self) -> ConnectionKind {
        self.connection
    }

    /// From the call to the request's last byte written, if known.
    #[must_use]
    pub const fn wrote_request(&self) -> Option<Duration> {
        self.wrote_request
    }

    /// From the call to the response head (`None`: the call failed before a response).
    #[must_use]
    pub const fn first_byte(&self) -> Option<Duration> {
        self.first_byte
    }

    /// From the call to the end of the response body (`None`: no response, or its body was
    /// dropped before its end).
    #[must_use]
    pub const fn body_end(&self) -> Option<Duration> {
        self.body_end
    }

    /// Whether the response arrived and its body ended cleanly (not cut by an error or a drop).
    #[must_use]
    pub const fn is_complete(&self) -> bool {
        self.completed
    }
}

/// A callback for each call's [`Timings`], once its body ends, fails or is dropped, or the call
/// fails or is given up before its response (a timeout outside dropped it). Implemented for closures and for `()` (no callback).
pub trait OnTimings {
    /// Called once per call.
    fn on_timings(&self, timings: &Timings);
}

impl OnTimings for () {
    fn on_timings(&self, _: &Timings) {}
}

impl<F: Fn(&Timings)> OnTimings for F {
    fn on_timings(&self, timings: &Timings) {
        self(timings);
    }
}

/// Records the [`Timings`] of each outbound call. See the [module docs](self) for an example.
#[must_use]
pub struct LifecycleLayer<H = ()> {
    hook: Arc<H>,
}

impl LifecycleLayer {
    /// Records marks, with no callback.
    pub fn new() -> Self {
        Self { hook: Arc::new(()) }
    }
}

impl Default for LifecycleLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<H> LifecycleLayer<H> {
    /// Also passes each call's timings to `hook`.
    pub fn on_timings<H2: OnTimings>(self, hook: H2) -> LifecycleLayer<H2> {
        LifecycleLayer {
            hook: Arc::new(hook),
        }
    }
}

impl<H> Clone for LifecycleLayer<H> {
    fn clone(&self) -> Self {
        Self {
            hook: Arc::clone(&self.hook),
        }
    }
}

impl<H> fmt::Debug for LifecycleLayer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(LifecycleLayer))
            .field("hook", &std::any::type_name::<H>())
            .finish()
    }
}

impl<S, H> Layer<S> for LifecycleLayer<H> {
    type Service = Lifecycle<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        Lifecycle {
            inner,
            hook: Arc::clone(&self.hook),
        }
    }
}

/// Records the [`Timings`] of each outbound call. See the [module docs](self) for an example.
pub struct Lifecycle<S, H = ()> {
    inner: S,
    hook: Arc<H>,
}

impl<S> Lifecycle<S> {
    /// Wraps `inner`, recording marks with no callback.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            hook: Arc::new(()),
        }
    }

    /// A layer with no callback.
    pub fn layer() -> LifecycleLayer {
        LifecycleLayer::new()
    }
}

impl<S, H> Lifecycle<S, H> {
    define_inner_service_accessors!();
}

impl<S: Clone, H> Clone for Lifecycle<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hook: Arc::clone(&self.hook),
        }
    }
}

impl<S: fmt::Debug, H> fmt::Debug for Lifecycle<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Lifecycle))
            .field("inner", &self.inner)
            .field("hook", &std::any::type_name::<H>())
            .finish()
    }
}

impl<S, H, ReqB, ResB> Service<Request<ReqB>> for Lifecycle<S, H>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
    H: OnTimings,
{
    type Response = Response<TimedBody<ResB, H>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, H>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let started = Instant::now();
        let context = req.extensions().try_context().cloned();
        let spent = layer_time::wanted(context.as_ref()).then(|| started.elapsed());
        ResponseFuture {
            inner: self.inner.call(req),
            call: InFlight(Some(Call {
                started,
                context,
                hook: Arc::clone(&self.hook),
                spent,
            })),
        }
    }
}

/// One call in flight: what its timings need.
pub(crate) struct Call<H> {
    started: Instant,
    context: Option<Context>,
    hook: Arc<H>,
    /// The layer's own time so far, when the request asked for per-layer times.
    spent: Option<Duration>,
}

impl<H: OnTimings> Call<H> {
    fn mark(&self, name: &'static str, duration: Duration) {
        if let Some(cx) = &self.context {
            cx.mark(name, duration);
        }
    }

    /// The body ended (`completed`), failed or was dropped: the last marks and the callback.
    pub(crate) fn finish(self, mut timings: Timings, completed: bool) {
        let own = Instant::now();
        if completed || timings.first_byte.is_some() {
            let end = self.started.elapsed();
            if completed {
                timings.body_end = Some(end);
                self.mark("client.body", end);
            }
        }
        timings.completed = completed;
        self.hook.on_timings(&timings);
        if let Some(spent) = self.spent {
            layer_time::record(self.context.as_ref(), "mw.lifecycle", spent + own.elapsed());
        }
    }
}

/// A call whose response has not arrived: reported as it stands if the future is dropped (a
/// per-call timeout outside gave up on it).
pub(crate) struct InFlight<H: OnTimings>(Option<Call<H>>);

impl<H: OnTimings> Drop for InFlight<H> {
    fn drop(&mut self) {
        if let Some(call) = self.0.take() {
            call.finish(Timings::failed(), false);
        }
    }
}

pin_project! {
    /// The response future of [`Lifecycle`].
    pub struct ResponseFuture<F, H>
    where
        H: OnTimings,
    {
        #[pin]
        inner: F,
        call: InFlight<H>,
    }
}

impl<F, H: OnTimings> fmt::Debug for ResponseFuture<F, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &format_args!("..."))
            .finish_non_exhaustive()
    }
}

impl<F, H, B, E> Future for ResponseFuture<F, H>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    H: OnTimings,
{
    type Output = Result<Response<TimedBody<B, H>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut call = this.call.0.take().expect("future polled after completion");
        let first_byte = call.started.elapsed();
        let own = Instant::now();
        let res = match result {
            Ok(res) => res,
            Err(err) => {
                call.finish(Timings::failed(), false);
                return Poll::Ready(Err(err));
            }
        };
        let info = res.extensions().get::<ConnectInfo>();
        let connection = match info {
            Some(info) if info.claim() => ConnectionKind::New {
                connect: info.connect_time(),
            },
            Some(_) => ConnectionKind::Reused,
            None => ConnectionKind::Unknown,
        };
        let wrote_request = info
            .and_then(ConnectInfo::last_write)
            .and_then(|at| at.checked_duration_since(call.started));
        match connection {
            ConnectionKind::New { connect } => call.mark("client.connect", connect),
            ConnectionKind::Reused => call.mark("client.reused", Duration::ZERO),
            ConnectionKind::Unknown => {}
        }
        if let Some(wrote) = wrote_request {
            call.mark("client.write", wrote);
        }
        call.mark("client.first_byte", first_byte);
        let timings = Timings {
            connection,
            wrote_request,
            first_byte: Some(first_byte),
            body_end: None,
            completed: false,
        };
        if let Some(spent) = call.spent.as_mut() {
            *spent += own.elapsed();
        }
        let (parts, body) = res.into_parts();
        let body = if body.is_end_stream() {
            // A bodiless response (HEAD, 204, 304) ends at its head.
            call.finish(timings, true);
            TimedBody::new(body, None)
        } else {
            TimedBody::new(body, Some((call, timings)))
        };
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

// ----- stack introspection -----

impl<H> middleware_core::Describe for LifecycleLayer<H> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("LifecycleLayer")
            .setting("on_timings", crate::compose::short_name::<H>());
    }
}

impl<S: middleware_core::Describe, H> middleware_core::Describe for Lifecycle<S, H> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("LifecycleLayer")
            .setting("on_timings", crate::compose::short_name::<H>());
        self.inner.describe(description);
    }
}

#[cfg(test)]
mod tests;
