//! A streamed response with a declared length ends when that length is sent: hyper writes the
//! `Content-Length` bytes and drops the body without polling it again (as it does for every
//! file tower-http's `ServeDir` serves). The access log, the `Server-Timing` end hook and the
//! HTTP metrics must record a complete response, not a client gone; a body dropped short of its
//! length is still a disconnect. Over real TCP and in process.
#![cfg(all(
    feature = "logging",
    feature = "timing",
    feature = "metrics",
    feature = "axum"
))]
#![allow(missing_docs)]

#[path = "log_support/mod.rs"]
mod log_support;
use log_support::subscriber;
use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header::CONTENT_LENGTH};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use middleware_std::BoxError;
use middleware_std::{
    logging::LogLayer,
    metrics::HttpMetricsLayer,
    timing::{BodyEnd, ServerTimingLayer, StreamEnd},
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
    data::{AggregatedMetrics, MetricData},
};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test]
async fn a_response_streamed_to_its_content_length_over_tcp_is_complete() {
    let (_guard, text) = subscriber();
    let (provider, exporter) = provider();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/file",
            axum::routing::get(|| async { with_length(Stream::new(&["hel", "lo"]), "5") }),
        )
        .layer(ServerTimingLayer::new().on_body_end({
            let ends = Arc::clone(&ends);
            move |end: BodyEnd| ends.lock().unwrap().push(end.stream)
        }))
        .layer(LogLayer::new())
        .layer(HttpMetricsLayer::new(&provider.meter("test")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /file HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        io::Result::Ok(String::from_utf8_lossy(&response).into_owned())
    });
    let response = tokio::time::timeout(Duration::from_secs(15), client)
        .await
        .expect("the server answered in time")
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nhello"), "{response}");

    // The connection task records the end once it has written the body (bounded wait).
    tokio::time::timeout(Duration::from_secs(10), async {
        while !text().contains("request finished") || ends.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the request was recorded in time");
    server.abort();

    let logged = text();
    assert_eq!(logged.lines().count(), 1, "{logged}");
    assert!(logged.contains("outcome=\"completed\""), "{logged}");
    assert!(logged.contains("http.response.body.size=5"), "{logged}");
    assert_eq!(*ends.lock().unwrap(), [StreamEnd::Complete]);
    let point = duration_point(&provider, &exporter);
    assert!(!point.contains("error.type"), "{point}");
}

#[tokio::test]
async fn a_body_dropped_at_its_declared_length_is_complete_in_process() {
    let (_guard, text) = subscriber();
    let (provider, exporter) = provider();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let app = stack(&provider, &ends, "5");
    let res = app.oneshot(Request::new(String::new())).await.unwrap();
    let mut body = res.into_body();
    // What hyper does: write the declared bytes, then drop the body unpolled.
    body.frame().await.unwrap().unwrap();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert!(text().contains("outcome=\"completed\""), "{}", text());
    assert_eq!(*ends.lock().unwrap(), [StreamEnd::Complete]);
    let point = duration_point(&provider, &exporter);
    assert!(!point.contains("error.type"), "{point}");
}

#[tokio::test]
async fn a_body_dropped_short_of_its_declared_length_is_a_disconnect() {
    let (_guard, text) = subscriber();
    let (provider, exporter) = provider();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let app = stack(&provider, &ends, "5");
    let res = app.oneshot(Request::new(String::new())).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert!(text().contains("outcome=\"disconnected\""), "{}", text());
    assert_eq!(*ends.lock().unwrap(), [StreamEnd::Dropped]);
    let point = duration_point(&provider, &exporter);
    assert!(point.contains("error.type=disconnected"), "{point}");
}

#[tokio::test]
async fn a_hostile_content_length_is_no_declared_length() {
    for value in [
        "5, 5",
        "+5",
        "-1",
        " 5",
        "99999999999999999999999",
        "0x5",
        "",
    ] {
        let (_guard, text) = subscriber();
        let (provider, exporter) = provider();
        let ends = Arc::new(Mutex::new(Vec::new()));
        let app = stack(&provider, &ends, value);
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let mut body = res.into_body();
        body.frame().await.unwrap().unwrap();
        body.frame().await.unwrap().unwrap();
        drop(body);
        // No length to trust: the body had not said it ended, so its drop is a disconnect.
        assert!(
            text().contains("outcome=\"disconnected\""),
            "{value:?}: {}",
            text()
        );
        assert_eq!(*ends.lock().unwrap(), [StreamEnd::Dropped], "{value:?}");
        let point = duration_point(&provider, &exporter);
        assert!(
            point.contains("error.type=disconnected"),
            "{value:?}: {point}"
        );
    }
}

#[tokio::test]
async fn an_error_after_the_declared_length_is_still_an_error() {
    // What hyper's HTTP/2 server does: poll on past the declared length, to the end or an error.
    let (_guard, text) = subscriber();
    let (provider, exporter) = provider();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let app = stack_with(&provider, &ends, "5", || {
        Stream::failing(&["hel", "lo"], "upstream reset")
    });
    let res = app.oneshot(Request::new(String::new())).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    body.frame().await.unwrap().unwrap();
    assert!(body.frame().await.unwrap().is_err());
    drop(body);
    assert!(text().contains("outcome=\"error\""), "{}", text());
    assert_eq!(*ends.lock().unwrap(), [StreamEnd::Error]);
    let point = duration_point(&provider, &exporter);
    assert!(point.contains("error.type=_OTHER"), "{point}");
}

#[tokio::test]
async fn a_body_polled_past_its_declared_length_and_dropped_is_complete() {
    let (_guard, text) = subscriber();
    let (provider, exporter) = provider();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let app = stack(&provider, &ends, "5");
    let res = app.oneshot(Request::new(String::new())).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    body.frame().await.unwrap().unwrap();
    // Polled on past the length (HTTP/2), then dropped while the body is still pending.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), body.frame())
            .await
            .is_err()
    );
    drop(body);
    assert!(text().contains("outcome=\"completed\""), "{}", text());
    assert_eq!(*ends.lock().unwrap(), [StreamEnd::Complete]);
    let point = duration_point(&provider, &exporter);
    assert!(!point.contains("error.type"), "{point}");
}

#[tokio::test]
async fn a_declared_length_of_zero_ends_at_the_head() {
    let (_guard, text) = subscriber();
    let (provider, exporter) = provider();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let app = stack_with(&provider, &ends, "0", || Stream::new(&[]));
    let res = app.oneshot(Request::new(String::new())).await.unwrap();
    // hyper writes nothing for `Content-Length: 0` and drops the body unpolled.
    drop(res);
    assert!(text().contains("outcome=\"completed\""), "{}", text());
    assert_eq!(*ends.lock().unwrap(), [StreamEnd::Complete]);
    let point = duration_point(&provider, &exporter);
    assert!(!point.contains("error.type"), "{point}");
}

// ----- fixtures -----

/// Metrics outside the log outside the timing layer, around a handler that streams "hello" in
/// two chunks with `Content-Length: length`.
fn stack(
    provider: &SdkMeterProvider,
    ends: &Arc<Mutex<Vec<StreamEnd>>>,
    length: &'static str,
) -> impl tower::Service<
    Request<String>,
    Response = Response<impl Body<Data = Bytes, Error: std::fmt::Debug>>,
    Error = Infallible,
> {
    stack_with(provider, ends, length, || Stream::new(&["hel", "lo"]))
}

/// [`stack`] with the handler's body made by `body`.
fn stack_with(
    provider: &SdkMeterProvider,
    ends: &Arc<Mutex<Vec<StreamEnd>>>,
    length: &'static str,
    body: fn() -> Stream,
) -> impl tower::Service<
    Request<String>,
    Response = Response<impl Body<Data = Bytes, Error: std::fmt::Debug>>,
    Error = Infallible,
> {
    let ends = Arc::clone(ends);
    let handler = service_fn(move |_req: Request<String>| async move {
        Ok::<_, Infallible>(with_length(body(), length))
    });
    let timing = ServerTimingLayer::new().on_body_end(move |end: BodyEnd| {
        ends.lock().unwrap().push(end.stream);
    });
    HttpMetricsLayer::new(&provider.meter("test"))
        .layer(LogLayer::new().layer(timing.layer(handler)))
}

fn with_length(body: Stream, length: &'static str) -> Response<Stream> {
    let mut res = Response::new(body);
    res.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static(length));
    res
}

/// Yields its chunks (then an error, if it has one), then stays pending: like a file stream
/// that never says it ended before `None`, and `None` is never asked for.
struct Stream {
    chunks: Vec<&'static str>,
    error: Option<&'static str>,
}

impl Stream {
    fn new(chunks: &[&'static str]) -> Self {
        Self {
            chunks: chunks.iter().rev().copied().collect(),
            error: None,
        }
    }

    /// The chunks, then an error (an upstream reset after the last byte).
    fn failing(chunks: &[&'static str], error: &'static str) -> Self {
        Self {
            error: Some(error),
            ..Self::new(chunks)
        }
    }
}

impl Body for Stream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(chunk) = self.chunks.pop() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(chunk.as_bytes())))));
        }
        match self.error.take() {
            Some(error) => Poll::Ready(Some(Err(error.into()))),
            None => Poll::Pending,
        }
    }
}

impl axum::response::IntoResponse for Stream {
    fn into_response(self) -> axum::response::Response {
        axum::response::Response::new(axum::body::Body::new(self))
    }
}

fn provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    (provider, exporter)
}

/// The one `http.server.request.duration` point's attributes, as `key=value` text.
fn duration_point(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> String {
    provider.force_flush().unwrap();
    let metrics = exporter.get_finished_metrics().unwrap();
    let duration = metrics
        .last()
        .unwrap()
        .scope_metrics()
        .flat_map(opentelemetry_sdk::metrics::data::ScopeMetrics::metrics)
        .find(|m| m.name() == "http.server.request.duration")
        .expect("the duration was recorded");
    let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = duration.data() else {
        panic!("not a histogram: {:?}", duration.data());
    };
    let points: Vec<_> = histogram.data_points().collect();
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0].count(), 1);
    points[0]
        .attributes()
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect::<Vec<_>>()
        .join(" ")
}
