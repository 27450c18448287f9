use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll, ready},
    time::Instant,
};

use http::{Request, Response};
use opentelemetry::{
    KeyValue,
    metrics::{Histogram, Meter},
};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{DURATION_BUCKETS, ErrorType, error_attr, method_attr, scheme_attr};
use crate::{Context, RequestExt as _, layer_time};

/// Records `http.client.request.duration` per outbound call. See the [module docs](super).
#[derive(Clone)]
#[must_use]
pub struct HttpClientMetricsLayer {
    duration: Arc<Histogram<f64>>,
    host_header: bool,
}

impl HttpClientMetricsLayer {
    /// A layer recording with a histogram made from `meter`.
    pub fn new(meter: &Meter) -> Self {
        let duration = meter
            .f64_histogram("http.client.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP client requests, to the response head.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        Self {
            duration: Arc::new(duration),
            host_header: false,
        }
    }

    /// For an origin-form call (no authority in the URI, as a tonic channel sends), take
    /// `server.address` and `server.port` from the `Host` header when it is a valid authority
    /// of at most 256 bytes. Off by default: a proxy that forwards its clients' `Host` would
    /// make every client-chosen host a new metric series; turn it on when the application sets
    /// the `Host` of its calls itself.
    ///
    /// ```
    /// use middleware_std::metrics::HttpClientMetricsLayer;
    ///
    /// let meter = opentelemetry::global::meter("client");
    /// let layer = HttpClientMetricsLayer::new(&meter).server_from_host_header();
    /// # let _ = layer;
    /// ```
    pub const fn server_from_host_header(mut self) -> Self {
        self.host_header = true;
        self
    }
}

impl fmt::Debug for HttpClientMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(HttpClientMetricsLayer))
            .field("server_from_host_header", &self.host_header)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for HttpClientMetricsLayer {
    type Service = HttpClientMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpClientMetrics {
            inner,
            duration: Arc::clone(&self.duration),
            host_header: self.host_header,
        }
    }
}

/// The service of [`HttpClientMetricsLayer`]. See the [module docs](super).
#[derive(Clone)]
pub struct HttpClientMetrics<S> {
    inner: S,
    duration: Arc<Histogram<f64>>,
    host_header: bool,
}

impl<S> HttpClientMetrics<S> {
    /// Wraps `inner`, recording with a histogram made from `meter`.
    pub fn new(inner: S, meter: &Meter) -> Self {
        HttpClientMetricsLayer::new(meter).layer(inner)
    }

    /// The layer form, same as [`HttpClientMetricsLayer::new`].
    pub fn layer(meter: &Meter) -> HttpClientMetricsLayer {
        HttpClientMetricsLayer::new(meter)
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for HttpClientMetrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(HttpClientMetrics))
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Service<Request<B>> for HttpClientMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let uri = req.uri();
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new(
            "http.request.method",
            method_attr(req.method()),
        ));
        attributes.push(KeyValue::new("url.scheme", scheme_attr(uri)));
        // The host the application chose to call: bounded by the application, not a client.
        // The URI's, else (when asked) the `Host` header's when it is a valid authority (a
        // client that keeps the authority out of the URI, as a tonic channel does).
        let host_header = if uri.host().is_none() && self.host_header {
            host_authority(&req)
        } else {
            None
        };
        let server = uri
            .host()
            .map(|host| (host, uri.port_u16()))
            .or_else(|| host_header.as_ref().map(|a| (a.host(), a.port_u16())));
        if let Some((host, port)) = server {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
            let port = port.unwrap_or(if scheme_attr(uri) == "https" { 443 } else { 80 });
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        if layer_time::wanted(req.try_context()) {
            layer_time::record(req.try_context(), "mw.metrics_client", start.elapsed());
        }
        let cx = req.try_context().cloned();
        ClientFuture {
            inner: self.inner.call(req),
            pending: Some(Pending {
                duration: Arc::clone(&self.duration),
                attributes,
                start,
                cx,
                done: false,
            }),
        }
    }
}

/// The `Host` header of an origin-form call, when it is a valid authority of at most 256
/// bytes without userinfo (the host of `server.address`, nothing else a caller could put in).
fn host_authority<B>(req: &Request<B>) -> Option<http::uri::Authority> {
    let value = req.headers().get(http::header::HOST)?;
    if value.len() > 256 || value.as_bytes().contains(&b'@') {
        return None;
    }
    http::uri::Authority::try_from(value.as_bytes()).ok()
}

/// A call not answered yet; recorded once, when the head or an error arrives or, dropped
/// before (a timeout or a cancellation outside), as `timeout` or `cancelled`.
struct Pending {
    duration: Arc<Histogram<f64>>,
    attributes: Vec<KeyValue>,
    start: Instant,
    /// The call's context: a deadline cancelled it when the drop is a timeout.
    cx: Option<Context>,
    done: bool,
}

impl Pending {
    fn finish(&mut self, status: Option<u16>, error: Option<ErrorType>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let mut attributes = std::mem::take(&mut self.attributes);
        if let Some(status) = status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(error) = error {
            attributes.push(error_attr(error));
        }
        self.duration
            .record(self.start.elapsed().as_secs_f64(), &attributes);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.finish(None, Some(ErrorType::call_dropped(self.cx.as_ref())));
        }
    }
}

pin_project! {
    /// The response future of [`HttpClientMetrics`].
    pub struct ClientFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, RB, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut pending = this.pending.take().expect("future polled after completion");
        match &result {
            Ok(res) => {
                let status = res.status();
                let failed = status.is_client_error() || status.is_server_error();
                let error = failed.then_some(ErrorType::Status(status.as_u16()));
                pending.finish(Some(status.as_u16()), error);
            }
            Err(_) => pending.finish(None, Some(ErrorType::Other)),
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ClientFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ClientFuture))
            .field("inner", &format_args!("..."))
            .field("pending", &self.pending.is_some())
            .finish()
    }
}
