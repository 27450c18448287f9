use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll, ready},
    time::Instant,
};

use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter, UpDownCounter},
};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{DURATION_BUCKETS, ErrorType, MetricsBody, method_attr, scheme_attr};
use crate::{Context, RequestExt, layer_time};

/// The server instruments, made once per layer.
pub(crate) struct Instruments {
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    request_size: Histogram<u64>,
    response_size: Histogram<u64>,
    timeouts: Counter<u64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        Self {
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description(
                    "Duration of HTTP server requests, to the end of the response body.",
                )
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter("http.server.active_requests")
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests.")
                .build(),
            request_size: meter
                .u64_histogram("http.server.request.body.size")
                .with_unit("By")
                .with_description("Size of HTTP server request bodies (their Content-Length).")
                .build(),
            response_size: meter
                .u64_histogram("http.server.response.body.size")
                .with_unit("By")
                .with_description("Size of HTTP server response bodies, as streamed.")
                .build(),
            timeouts: meter
                .u64_counter("middleware.server.timeouts")
                .with_unit("{request}")
                .with_description(
                    "Requests whose budget expired, by the phase a timeout layer reported.",
                )
                .build(),
        }
    }
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Instruments))
            .finish_non_exhaustive()
    }
}

/// Records HTTP server metrics by the semantic conventions. See the [module docs](super) for
/// an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct HttpMetricsLayer {
    instruments: Arc<Instruments>,
}

impl HttpMetricsLayer {
    /// A layer recording with instruments made from `meter`.
    pub fn new(meter: &Meter) -> Self {
        Self {
            instruments: Arc::new(Instruments::new(meter)),
        }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics {
            inner,
            instruments: Arc::clone(&self.instruments),
        }
    }
}

/// The service of [`HttpMetricsLayer`]. See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct HttpMetrics<S> {
    inner: S,
    instruments: Arc<Instruments>,
}

impl<S> HttpMetrics<S> {
    /// Wraps `inner`, recording with instruments made from `meter`.
    pub fn new(inner: S, meter: &Meter) -> Self {
        HttpMetricsLayer::new(meter).layer(inner)
    }

    /// The layer form, same as [`HttpMetricsLayer::new`].
    pub fn layer(meter: &Meter) -> HttpMetricsLayer {
        HttpMetricsLayer::new(meter)
    }

    define_inner_service_accessors!();
}

impl<S, B, RB> Service<Request<B>> for HttpMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Body,
{
    type Response = Response<MetricsBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let start = Instant::now();
        // The request's context, made here when no outer layer made one (the layers inside
        // use it): through it a timeout inside is told from a plain 503 or a disconnect.
        req.context();
        let mut measure = Measure::start(Arc::clone(&self.instruments), &req, start);
        if layer_time::wanted(req.try_context()) {
            layer_time::record(req.try_context(), "mw.metrics", start.elapsed());
        }
        // A panic in `call` unwinds while `polling`: recorded as a panic.
        measure.polling = true;
        let inner = self.inner.call(req);
        measure.polling = false;
        ResponseFuture {
            inner,
            measure: Some(measure),
        }
    }
}

pin_project! {
    /// The response future of [`HttpMetrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        measure: Option<Measure>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Body,
{
    type Output = Result<Response<MetricsBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let measure = this
            .measure
            .as_mut()
            .expect("future polled after completion");
        // Set only for the poll: a drop while pending is a disconnect or a timeout, not a panic.
        measure.polling = true;
        let poll = this.inner.poll(cx);
        measure.polling = false;
        let result = ready!(poll);
        let mut measure = this.measure.take().expect("future polled after completion");
        Poll::Ready(match result {
            Ok(res) => {
                measure.status = Some(res.status());
                let length = crate::body_state::declared_length(&res);
                let bodiless = measure.head
                    || res.status().is_informational()
                    || res.status() == StatusCode::NO_CONTENT
                    || res.status() == StatusCode::NOT_MODIFIED
                    || res.body().is_end_stream()
                    || length == Some(0);
                let measure = if bodiless {
                    // hyper drops such a body unpolled: the request ends at the head.
                    measure.finish(None);
                    None
                } else {
                    Some(measure)
                };
                Ok(res.map(|body| MetricsBody::new(body, measure).with_length(length)))
            }
            Err(error) => {
                measure.finish(Some(ErrorType::Other));
                Err(error)
            }
        })
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &format_args!("..."))
            .field("measure", &self.measure)
            .finish()
    }
}

/// The largest `Content-Length` recorded as `http.server.request.body.size` (4 GiB): a larger
/// claim is not recorded. hyper accepts claims up to `u64::MAX - 2` whatever the body holds,
/// and the SDK adds every value to a `u64` sum that overflows (a panic with overflow checks on)
/// on the second such claim.
const MAX_REQUEST_SIZE: u64 = 1 << 32;

/// The request bytes this process may still record, over every layer and series: the sum of
/// all recorded sizes stays within `u64`, so no series' sum in the SDK can overflow. Real
/// traffic never gets near it (16 EiB); a client sending 4 GiB claims could at worst use it up
/// (after four billion requests), after which request sizes are no longer recorded.
static REQUEST_BYTES_LEFT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Whether `size` bytes fit in [`REQUEST_BYTES_LEFT`], taking them if so.
fn take_request_bytes(size: u64) -> bool {
    REQUEST_BYTES_LEFT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(size)
        })
        .is_ok()
}

/// One request's pending measurement, carried by the future and then the body; recorded once,
/// by `finish` or by `Drop`.
// Four independent facts (a HEAD, polling, sent, done): not a state machine in disguise.
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct Measure {
    instruments: Arc<Instruments>,
    start: Instant,
    /// Method, scheme, and the route when known.
    attributes: Vec<KeyValue>,
    request_size: Option<u64>,
    head: bool,
    cx: Option<Context>,
    status: Option<StatusCode>,
    pub(crate) body_bytes: u64,
    /// Set while the inner service, its future or the body is polled: a drop while set is an
    /// unwind (a panic).
    pub(crate) polling: bool,
    /// The response's declared length has streamed: dropped now, it was complete.
    pub(crate) sent: bool,
    done: bool,
}

impl Measure {
    fn start<B>(instruments: Arc<Instruments>, req: &Request<B>, start: Instant) -> Self {
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new(
            "http.request.method",
            method_attr(req.method()),
        ));
        attributes.push(KeyValue::new("url.scheme", scheme_attr(req.uri())));
        instruments.active.add(1, &attributes);
        if let Some(route) = crate::route::route(req) {
            attributes.push(KeyValue::new("http.route", route.to_owned()));
        }
        let request_size = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .filter(|&size| size <= MAX_REQUEST_SIZE);
        Self {
            instruments,
            start,
            attributes,
            request_size,
            head: req.method() == Method::HEAD,
            cx: req.try_context().cloned(),
            status: None,
            body_bytes: 0,
            polling: false,
            sent: false,
            done: false,
        }
    }

    /// Records the request, once; `error` is the failure the caller saw, if any.
    pub(crate) fn finish(&mut self, error: Option<ErrorType>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let instruments = &self.instruments;
        instruments.active.add(-1, &self.attributes[..2]);
        let expiry = self.cx.as_ref().and_then(Context::expiry);
        // The access span's mapping, shared: one request, one `error.type`.
        let error =
            ErrorType::with_expiry(error, expiry).or_else(|| ErrorType::server_status(self.status));
        let mut attributes = std::mem::take(&mut self.attributes);
        if let Some(status) = self.status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
        }
        if let Some(error) = error {
            attributes.push(super::error_attr(error));
        }
        instruments.duration.record(elapsed, &attributes);
        if let Some(expiry) = expiry {
            let mut timeout = attributes[..2].to_vec();
            timeout.push(KeyValue::new("timeout.phase", expiry.phase().as_str()));
            timeout.push(KeyValue::new("timeout.by_client", expiry.is_by_client()));
            instruments.timeouts.add(1, &timeout);
        }
        // A 413 refused the body: its bytes were not read.
        let refused = self.status == Some(StatusCode::PAYLOAD_TOO_LARGE);
        if let Some(size) = self.request_size.filter(|_| !refused) {
            if take_request_bytes(size) {
                instruments.request_size.record(size, &attributes);
            }
        }
        if self.status.is_some() {
            instruments
                .response_size
                .record(self.body_bytes, &attributes);
        }
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let panicking = self.polling || std::thread::panicking();
        if self.sent && !panicking {
            // Dropped after its declared length streamed: a server stops polling there.
            self.finish(None);
            return;
        }
        let error = ErrorType::dropped(panicking, self.cx.as_ref().and_then(Context::cause));
        self.finish(Some(error));
    }
}

impl fmt::Debug for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Measure))
            .field("attributes", &self.attributes)
            .field("status", &self.status)
            .field("body_bytes", &self.body_bytes)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
