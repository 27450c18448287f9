use std::{
    collections::{BTreeMap, VecDeque},
    convert::Infallible,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
    data::{AggregatedMetrics, MetricData},
};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

use super::*;
use crate::Context;

#[tokio::test]
async fn a_completed_request_is_recorded_once_at_the_end_of_its_body() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks::new(&["hello ", "world"])))
    }));
    let req = Request::post("/users/7")
        .header("content-length", "12")
        .body(())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert!(
        rec.points("http.server.request.duration").is_empty(),
        "recorded at the head"
    );
    assert_eq!(rec.value("http.server.active_requests"), 1);
    res.into_body().collect().await.unwrap();

    let points = rec.points("http.server.request.duration");
    assert_eq!(points.len(), 1, "{points:?}");
    let (count, attributes) = &points[0];
    assert_eq!(*count, 1);
    assert_eq!(
        attributes,
        &attrs(&[
            ("http.request.method", "POST"),
            ("http.response.status_code", "200"),
            ("url.scheme", "http"),
        ])
    );
    assert_eq!(rec.value("http.server.active_requests"), 0);
    assert!(rec.points("middleware.server.timeouts").is_empty());
    assert_eq!(rec.sum("http.server.response.body.size"), 11);
    assert_eq!(rec.sum("http.server.request.body.size"), 12);
}

#[tokio::test]
async fn a_hostile_content_length_is_not_recorded_and_never_panics() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks::new(&["no"])))
    }));
    // hyper accepts lengths up to `u64::MAX - 2`; two such claims overflowed the SDK's
    // histogram sum (a panic in `Measure::finish` with overflow checks on).
    for claim in ["18446744073709551615", "18446744073709551613"] {
        let req = Request::post("/")
            .header("content-length", claim)
            .body(())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(rec.points("http.server.request.duration")[0].0, 2);
    assert!(
        rec.points("http.server.request.body.size").is_empty(),
        "a claim no server reads was recorded"
    );
    assert_eq!(rec.value("http.server.active_requests"), 0);
}

#[tokio::test]
async fn a_refused_request_body_is_not_recorded_as_a_request_size() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        let mut res = Response::new(Chunks::new(&["too big"]));
        *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        Ok::<_, Infallible>(res)
    }));
    let req = Request::post("/")
        .header("content-length", "1000000")
        .body(())
        .unwrap();
    app.oneshot(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert!(rec.points("http.server.request.body.size").is_empty());
}

#[tokio::test]
async fn a_server_error_is_recorded_with_its_status_as_error_type() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        let mut res = Response::new(Chunks::new(&["down"]));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Ok::<_, Infallible>(res)
    }));
    let res = app.oneshot(Request::new(())).await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(
        rec.only("http.server.request.duration")["error.type"],
        "503"
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_body_cut_by_its_deadline_is_recorded_as_a_timeout() {
    let rec = Recorder::new();
    let app = ServiceBuilder::new()
        .layer(HttpMetricsLayer::new(&rec.meter()))
        .layer(
            crate::timeout::TimeoutLayer::new(std::time::Duration::from_secs(10))
                .response_body_idle(std::time::Duration::from_millis(10)),
        )
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Chunks::stalling(&["a"])))
        }));
    let mut body = app.oneshot(Request::new(())).await.unwrap().into_body();
    assert!(body.frame().await.unwrap().is_ok());
    // The idle deadline passes: the timeout layer's body error, with its expiry reported.
    assert!(body.frame().await.unwrap().is_err());
    drop(body);
    let point = rec.only("http.server.request.duration");
    assert_eq!(point["error.type"], "timeout", "{point:?}");
    assert_eq!(rec.value("middleware.server.timeouts"), 1);
}

#[tokio::test]
async fn an_error_of_the_inner_service_is_recorded_once_as_other() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Err::<Response<Chunks>, _>("db down")
    }));
    app.oneshot(Request::new(())).await.unwrap_err();
    let point = rec.only("http.server.request.duration");
    assert_eq!(point["error.type"], "_OTHER");
    assert!(!point.contains_key("http.response.status_code"));
    assert_eq!(rec.value("http.server.active_requests"), 0);
}

#[tokio::test]
async fn a_body_error_is_recorded_once_and_stays_an_error() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks::failing(&["part"])))
    }));
    let res = app.oneshot(Request::new(())).await.unwrap();
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().is_ok());
    assert!(body.frame().await.unwrap().is_err());
    drop(body);
    let point = rec.only("http.server.request.duration");
    assert_eq!(point["error.type"], "_OTHER");
    assert_eq!(point["http.response.status_code"], "200");
}

#[tokio::test]
async fn a_panicking_handler_is_recorded_once_as_a_panic() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter())
        .layer(service_fn(|_req: Request<()>| async { handler_bug() }));
    let joined = tokio::spawn(app.oneshot(Request::new(()))).await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(
        rec.only("http.server.request.duration")["error.type"],
        "panic"
    );
    assert_eq!(rec.value("http.server.active_requests"), 0);
}

#[tokio::test]
async fn a_panicking_body_is_recorded_once_as_a_panic() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks::panicking()))
    }));
    let res = app.oneshot(Request::new(())).await.unwrap();
    let joined = tokio::spawn(async move { res.into_body().collect().await }).await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(
        rec.only("http.server.request.duration")["error.type"],
        "panic"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_timed_out_by_an_outer_timeout_layer_is_recorded_once_as_a_timeout() {
    let rec = Recorder::new();
    let app = ServiceBuilder::new()
        .layer(crate::timeout::TimeoutLayer::new(Duration::from_millis(50)))
        .layer(HttpMetricsLayer::new(&rec.meter()))
        .service(service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, Infallible>(Response::new(Chunks::new(&["late"])))
        }));
    let res = app.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let point = rec.only("http.server.request.duration");
    assert_eq!(point["error.type"], "timeout");
    assert!(!point.contains_key("http.response.status_code"));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_answered_inside_is_recorded_as_a_timeout_not_a_503() {
    let rec = Recorder::new();
    let app = ServiceBuilder::new()
        .layer(HttpMetricsLayer::new(&rec.meter()))
        .layer(crate::timeout::TimeoutLayer::new(Duration::from_millis(50)))
        .service(service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, Infallible>(Response::new(Chunks::new(&["late"])))
        }));
    // No context on the request: the metrics layer makes the one the timeout reports to.
    let res = app.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    res.into_body().collect().await.unwrap();
    let point = rec.only("http.server.request.duration");
    assert_eq!(point["error.type"], "timeout");
    assert_eq!(point["http.response.status_code"], "503");
    assert_eq!(
        rec.only("middleware.server.timeouts"),
        attrs(&[
            ("http.request.method", "GET"),
            ("timeout.by_client", "false"),
            ("timeout.phase", "head"),
            ("url.scheme", "http"),
        ])
    );
}

#[tokio::test]
async fn a_client_that_goes_away_mid_body_is_recorded_once_as_disconnected() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks::stalling(&["first"])))
    }));
    let res = app.oneshot(Request::new(())).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    let point = rec.only("http.server.request.duration");
    assert_eq!(point["error.type"], "disconnected");
    assert_eq!(rec.sum("http.server.response.body.size"), 5);
    assert_eq!(rec.value("http.server.active_requests"), 0);
}

#[tokio::test]
async fn a_client_that_goes_away_before_the_head_is_recorded_once_as_disconnected() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Chunks::new(&[])))
    }));
    let mut call = Box::pin(app.oneshot(Request::new(())));
    assert!(futures_poll(call.as_mut()).is_pending());
    drop(call);
    let point = rec.only("http.server.request.duration");
    assert_eq!(point["error.type"], "disconnected");
}

fn futures_poll<F: std::future::Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut TaskContext::from_waker(std::task::Waker::noop()))
}

#[tokio::test]
async fn a_head_response_ends_at_its_head_and_is_not_a_disconnect() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks::stalling(&["never read"])))
    }));
    let res = app
        .oneshot(Request::head("/").body(()).unwrap())
        .await
        .unwrap();
    drop(res); // hyper drops a HEAD response's body unpolled
    let point = rec.only("http.server.request.duration");
    assert!(!point.contains_key("error.type"), "{point:?}");
    assert_eq!(point["http.request.method"], "HEAD");
}

#[tokio::test]
async fn an_unknown_method_is_recorded_as_other() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks::new(&[])))
    }));
    let method = Method::from_bytes(b"X-SECRET-12345").unwrap();
    let res = app
        .oneshot(Request::builder().method(method).body(()).unwrap())
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(
        rec.only("http.server.request.duration")["http.request.method"],
        "_OTHER"
    );
}

#[tokio::test]
async fn the_layer_reports_its_own_time_when_asked() {
    let rec = Recorder::new();
    let app = HttpMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks::new(&[])))
    }));
    let cx = Context::new();
    cx.request_layer_times();
    let mut req = Request::new(());
    req.extensions_mut().insert(cx.clone());
    drop(app.oneshot(req).await.unwrap());
    let marks: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(marks, ["mw.metrics"]);
}

#[tokio::test]
async fn the_client_layer_reports_its_own_time_when_asked() {
    let rec = Recorder::new();
    let client =
        HttpClientMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let cx = Context::new();
    cx.request_layer_times();
    let mut req = Request::get("http://api.test/").body(()).unwrap();
    req.extensions_mut().insert(cx.clone());
    client.oneshot(req).await.unwrap();
    let marks: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(marks, ["mw.metrics_client"]);
}

#[tokio::test]
async fn a_client_call_is_recorded_with_the_called_host_and_its_error_status() {
    let rec = Recorder::new();
    let client =
        HttpClientMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::NOT_FOUND;
            Ok::<_, Infallible>(res)
        }));
    let req = Request::get("https://api.test/users/7?x=1")
        .body(())
        .unwrap();
    client.oneshot(req).await.unwrap();
    assert_eq!(
        rec.only("http.client.request.duration"),
        attrs(&[
            ("error.type", "404"),
            ("http.request.method", "GET"),
            ("http.response.status_code", "404"),
            ("server.address", "api.test"),
            ("server.port", "443"),
            ("url.scheme", "https"),
        ])
    );
}

#[cfg(feature = "call-timeout")]
#[tokio::test(start_paused = true)]
async fn a_client_call_given_up_by_a_call_timeout_is_recorded_as_a_timeout() {
    let rec = Recorder::new();
    let client = ServiceBuilder::new()
        .layer(crate::call_timeout::CallTimeoutLayer::new(
            Duration::from_millis(50),
        ))
        .layer(HttpClientMetricsLayer::new(&rec.meter()))
        .service(service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, Infallible>(Response::new(()))
        }));
    client
        .oneshot(Request::get("http://api.test/").body(()).unwrap())
        .await
        .unwrap_err();
    let point = rec.only("http.client.request.duration");
    assert_eq!(point["error.type"], "timeout");
    assert!(!point.contains_key("http.response.status_code"));
}

#[tokio::test(start_paused = true)]
async fn a_client_call_dropped_before_its_head_is_recorded_as_cancelled() {
    let rec = Recorder::new();
    let client =
        HttpClientMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, Infallible>(Response::new(()))
        }));
    let call = client.oneshot(Request::get("http://api.test/").body(()).unwrap());
    tokio::time::timeout(Duration::from_millis(50), call)
        .await
        .unwrap_err();
    assert_eq!(
        rec.only("http.client.request.duration")["error.type"],
        "cancelled"
    );
}

#[tokio::test]
async fn an_origin_form_client_call_takes_its_server_from_the_host_header() {
    let rec = Recorder::new();
    let client = HttpClientMetricsLayer::new(&rec.meter())
        .server_from_host_header()
        .layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let req = Request::get("/orders")
        .header("host", "upstream.test:8080")
        .body(())
        .unwrap();
    client.clone().oneshot(req).await.unwrap();
    let point = rec.only("http.client.request.duration");
    assert_eq!(point["server.address"], "upstream.test");
    assert_eq!(point["server.port"], "8080");
    // Not asked: a forwarded client's `Host` never becomes a series.
    let rec = Recorder::new();
    let client =
        HttpClientMetricsLayer::new(&rec.meter()).layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    for i in 0..50 {
        let req = Request::get("/")
            .header("host", format!("h{i}.test"))
            .body(())
            .unwrap();
        client.clone().oneshot(req).await.unwrap();
    }
    let points = rec.points("http.client.request.duration");
    assert_eq!(points.len(), 1, "one series for fifty hosts: {points:?}");
    assert!(!points[0].1.contains_key("server.address"));
    // Not a host: no attribute.
    let rec = Recorder::new();
    let client = HttpClientMetricsLayer::new(&rec.meter())
        .server_from_host_header()
        .layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let req = Request::get("/")
        .header("host", "evil host/../x")
        .body(())
        .unwrap();
    client.oneshot(req).await.unwrap();
    assert!(
        !rec.only("http.client.request.duration")
            .contains_key("server.address")
    );
}

// ----- fixtures ---------------------------------------------------------------------------

fn handler_bug() -> Result<Response<Chunks>, Infallible> {
    panic!("handler bug")
}

type Attrs = BTreeMap<String, String>;

fn attrs(pairs: &[(&str, &str)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An SDK meter provider with an in-memory exporter, read on demand.
struct Recorder {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Recorder {
    fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Self { provider, exporter }
    }

    fn meter(&self) -> opentelemetry::metrics::Meter {
        self.provider.meter("test")
    }

    /// The data points of instrument `name`: (count or value, attributes).
    fn points(&self, name: &str) -> Vec<(u64, Attrs)> {
        self.exporter.reset();
        self.provider.force_flush().unwrap();
        let metrics = self.exporter.get_finished_metrics().unwrap();
        let Some(last) = metrics.last() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for metric in last
            .scope_metrics()
            .flat_map(opentelemetry_sdk::metrics::data::ScopeMetrics::metrics)
        {
            if metric.name() != name {
                continue;
            }
            let to_attrs = |kvs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| -> Attrs {
                kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect()
            };
            match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.push((p.count(), to_attrs(&mut p.attributes())));
                    }
                }
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.push((p.sum(), to_attrs(&mut p.attributes())));
                    }
                }
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    for p in s.data_points() {
                        out.push((p.value(), to_attrs(&mut p.attributes())));
                    }
                }
                AggregatedMetrics::I64(MetricData::Sum(s)) => {
                    for p in s.data_points() {
                        out.push((p.value().unsigned_abs(), to_attrs(&mut p.attributes())));
                    }
                }
                other => panic!("unexpected data {other:?}"),
            }
        }
        out
    }

    /// The attributes of the one data point of `name`, which counts one request.
    fn only(&self, name: &str) -> Attrs {
        let points = self.points(name);
        assert_eq!(points.len(), 1, "{points:?}");
        assert_eq!(points[0].0, 1, "{points:?}");
        points.into_iter().next().unwrap().1
    }

    fn sum(&self, name: &str) -> u64 {
        self.points(name).iter().map(|(v, _)| v).sum()
    }

    fn value(&self, name: &str) -> u64 {
        self.sum(name)
    }
}

/// A response body of fixed chunks, then an end, an error, a stall or a panic.
#[derive(Debug)]
struct Chunks {
    chunks: VecDeque<&'static str>,
    then: Then,
}

#[derive(Clone, Copy, Debug)]
enum Then {
    End,
    Fail,
    Stall,
    Panic,
}

impl Chunks {
    fn new(chunks: &[&'static str]) -> Self {
        Self {
            chunks: chunks.iter().copied().collect(),
            then: Then::End,
        }
    }

    fn failing(chunks: &[&'static str]) -> Self {
        Self {
            then: Then::Fail,
            ..Self::new(chunks)
        }
    }

    fn stalling(chunks: &[&'static str]) -> Self {
        Self {
            then: Then::Stall,
            ..Self::new(chunks)
        }
    }

    fn panicking() -> Self {
        Self {
            then: Then::Panic,
            ..Self::new(&[])
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(chunk.as_bytes())))));
        }
        match self.then {
            Then::End => Poll::Ready(None),
            Then::Fail => Poll::Ready(Some(Err("cut"))),
            Then::Stall => Poll::Pending,
            Then::Panic => panic!("body bug"),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && matches!(self.then, Then::End)
    }
}
