//! The access span as the OpenTelemetry server span, seen through the SDK's in-memory span
//! exporter: parent, name, kind and attributes by the HTTP semantic conventions; hostile
//! `traceparent` values; an outbound call made inside the request; the JSON access record.
#![cfg(all(feature = "otel", feature = "axum"))]
#![allow(missing_docs)]

#[path = "log_support/mod.rs"]
mod log_support;
use log_support::Buf;
use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use axum::{Router, routing::get};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use middleware_core::{check_conformance, testing::Conformance};
use middleware_std::{
    Context, RequestExt,
    logging::LogLayer,
    otel::{PropagateTraceContextLayer, TraceContextLayer, TraceIds},
};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use proptest::prelude::*;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use tracing_subscriber::layer::SubscriberExt;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// A `tracing` subscriber that hands spans to an SDK tracer with an in-memory exporter.
fn otel() -> (InMemorySpanExporter, tracing::subscriber::DefaultGuard) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    (exporter, tracing::subscriber::set_default(subscriber))
}

fn attributes(span: &SpanData) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

/// An axum app whose routes run inside the access span (so it sees the route template).
fn app() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|req: Request<axum::body::Body>| async move {
                let ids = req
                    .try_context()
                    .and_then(Context::get::<TraceIds>)
                    .copied();
                ids.map(|ids| ids.to_string()).unwrap_or_default()
            }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
        )
        .layer(LogLayer::new().create_context(true))
        .layer(TraceContextLayer::new())
}

async fn send(app: Router, req: Request<axum::body::Body>) -> (StatusCode, String) {
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_valid_traceparent_makes_the_access_span_a_server_child_of_the_remote_span() {
    let (exporter, _guard) = otel();
    let req = Request::get("/users/7?token=s3cret")
        .header("host", "api.example:8443")
        .header(
            "user-agent",
            http::HeaderValue::from_bytes("curl/8.5 \u{202e}evil".as_bytes()).unwrap(),
        )
        .header("traceparent", PARENT)
        .header("tracestate", "vendor=abc")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = send(app(), req).await;
    assert_eq!(status, StatusCode::OK);

    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1, "one server span per request: {spans:?}");
    let span = &spans[0];
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.span_context.trace_id().to_string(), PARENT_TRACE);
    assert_eq!(span.parent_span_id.to_string(), PARENT_SPAN);
    assert!(span.parent_span_is_remote);
    assert_eq!(span.span_context.trace_state().header(), "vendor=abc");
    assert_eq!(span.status, Status::Unset);
    // The handler saw the server span's ids.
    assert_eq!(
        body,
        format!("00-{PARENT_TRACE}-{}-01", span.span_context.span_id())
    );
    let attrs = attributes(span);
    for (key, value) in [
        ("http.request.method", "GET"),
        ("url.scheme", "http"),
        ("url.path", "/users/7"),
        ("http.route", "/users/{id}"),
        ("server.address", "api.example"),
        ("server.port", "8443"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(
            attrs.get(key).map(String::as_str),
            Some(value),
            "{key}: {attrs:?}"
        );
    }
    // Escaped: a bidirectional override cannot reorder what a viewer shows.
    assert_eq!(attrs["user_agent.original"], "curl/8.5 \\u{202e}evil");
    assert!(!attrs.contains_key("error.type"));
    assert!(!attrs.values().any(|v| v.contains("s3cret")), "{attrs:?}");
}

#[tokio::test]
async fn a_hostile_host_and_user_agent_are_escaped_and_bounded_in_the_span() {
    let (exporter, _guard) = otel();
    let host = format!("evil host=1 {}", "h".repeat(4096));
    let agent = format!("bot \"quoted\" \u{200b}{}", "a".repeat(4096));
    let req = Request::get("/users/7")
        .header(
            "host",
            http::HeaderValue::from_bytes(host.as_bytes()).unwrap(),
        )
        .header(
            "user-agent",
            http::HeaderValue::from_bytes(agent.as_bytes()).unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _) = send(app(), req).await;
    assert_eq!(status, StatusCode::OK);
    let attrs = attributes(&exporter.get_finished_spans().unwrap()[0]);
    let address = &attrs["server.address"];
    assert!(address.starts_with("evil\\x20host=1\\x20hhh"), "{address}");
    assert!(!address.contains(' '), "{address}");
    assert!(address.len() <= 300, "{}", address.len());
    let agent = &attrs["user_agent.original"];
    assert!(
        agent.starts_with("bot \\\"quoted\\\" \\u{200b}aaa"),
        "{agent}"
    );
    assert!(agent.len() <= 300, "{}", agent.len());
}

#[tokio::test]
async fn a_5xx_sets_error_type_and_the_error_status() {
    let (exporter, _guard) = otel();
    let req = Request::get("/broken")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _) = send(app(), req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "GET /broken");
    assert_eq!(attributes(&spans[0])["error.type"], "500");
    assert!(
        matches!(spans[0].status, Status::Error { .. }),
        "{:?}",
        spans[0].status
    );
    // No traceparent: a root span of a fresh trace.
    assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
}

#[tokio::test]
async fn an_unknown_method_is_other_and_the_span_is_named_http() {
    let (exporter, _guard) = otel();
    let app = ServiceBuilder::new()
        .layer(TraceContextLayer::new())
        .layer(LogLayer::new())
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let req = Request::builder()
        .method(http::Method::from_bytes(b"PURGE").unwrap())
        .uri("/cache")
        .body(())
        .unwrap();
    app.oneshot(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans[0].name, "HTTP");
    let attrs = attributes(&spans[0]);
    assert_eq!(attrs["http.request.method"], "_OTHER");
    assert_eq!(attrs["http.request.method_original"], "PURGE");
}

#[tokio::test]
async fn hostile_traceparents_start_a_fresh_trace_and_never_fail_the_request() {
    let (exporter, _guard) = otel();
    let eight_kib = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01{}", "-x".repeat(4096));
    let cases = [
        format!("ff-{PARENT_TRACE}-{PARENT_SPAN}-01"), // wrong version
        format!("00-{}-{PARENT_SPAN}-01", "0".repeat(32)), // all-zero trace id
        format!("00-{PARENT_TRACE}-{}-01", "0".repeat(16)), // all-zero span id
        format!("00-{}-{PARENT_SPAN}-01", &PARENT_TRACE[..30]), // short trace id
        format!("00-{PARENT_TRACE}-{PARENT_SPAN}1-01"), // long span id
        format!("00-{}-{PARENT_SPAN}-01", PARENT_TRACE.to_uppercase()), // uppercase hex
        format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01-extra"), // extra field
        eight_kib,                                     // 8 KiB
    ];
    for value in cases {
        exporter.reset();
        let req = Request::get("/users/1")
            .header("traceparent", value.as_str())
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, _) = send(app(), req).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1, "{value}");
        assert_eq!(spans[0].parent_span_id, SpanId::INVALID, "{value}");
        assert_ne!(
            spans[0].span_context.trace_id().to_string(),
            PARENT_TRACE,
            "{value}"
        );
        assert_ne!(
            spans[0].span_context.trace_id(),
            TraceId::INVALID,
            "{value}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_traceparent_bytes_never_fail_the_request(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let Ok(value) = http::HeaderValue::from_bytes(&bytes) else { return Ok(()) };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (exporter, _guard) = otel();
        let req = Request::get("/users/1")
            .header("traceparent", value)
            .header("tracestate", http::HeaderValue::from_bytes(&bytes).unwrap())
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, _) = rt.block_on(send(app(), req));
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(exporter.get_finished_spans().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn an_outbound_call_made_inside_the_request_carries_its_trace() {
    let (exporter, _guard) = otel();
    let seen = Arc::new(Mutex::new(None));
    let upstream = PropagateTraceContextLayer::new().layer(service_fn({
        let seen = Arc::clone(&seen);
        move |req: Request<()>| {
            *seen.lock().unwrap() = req.headers().get("traceparent").cloned();
            async { Ok::<_, Infallible>(Response::new(())) }
        }
    }));
    let app = ServiceBuilder::new()
        .layer(TraceContextLayer::new())
        .layer(LogLayer::new())
        .service(service_fn(move |_req: Request<()>| {
            let upstream = upstream.clone();
            async move {
                let call = Request::get("http://inventory.internal/stock")
                    .body(())
                    .unwrap();
                upstream.oneshot(call).await?;
                Ok::<_, Infallible>(Response::new(String::from("ok")))
            }
        }));
    let req = Request::get("/orders")
        .header("traceparent", PARENT)
        .body(())
        .unwrap();
    app.oneshot(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();

    let header = seen
        .lock()
        .unwrap()
        .clone()
        .expect("a traceparent on the outbound call");
    let header = header.to_str().unwrap();
    assert!(
        header.starts_with(&format!("00-{PARENT_TRACE}-")),
        "{header}"
    );
    let spans = exporter.get_finished_spans().unwrap();
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(client.name, "GET");
    assert!(
        header.contains(&client.span_context.span_id().to_string()),
        "{header}"
    );
}

#[tokio::test]
async fn a_call_from_a_spawned_task_that_carries_the_request_context_stays_in_the_trace() {
    let (exporter, _guard) = otel();
    let seen = Arc::new(Mutex::new(None));
    let upstream = PropagateTraceContextLayer::new().layer(service_fn({
        let seen = Arc::clone(&seen);
        move |req: Request<()>| {
            let headers = (
                req.headers().get("traceparent").cloned(),
                req.headers().get("tracestate").cloned(),
            );
            *seen.lock().unwrap() = Some(headers);
            async { Ok::<_, Infallible>(Response::new(())) }
        }
    }));
    let app = ServiceBuilder::new()
        .layer(TraceContextLayer::new())
        .layer(LogLayer::new().create_context(true))
        .service(service_fn(move |req: Request<()>| {
            let upstream = upstream.clone();
            async move {
                let cx = req.try_context().cloned().unwrap();
                // A new task: no span is current there, and no OpenTelemetry context.
                tokio::spawn(async move {
                    let mut call = Request::get("http://inventory.internal/stock")
                        .body(())
                        .unwrap();
                    call.extensions_mut().insert(cx);
                    upstream.oneshot(call).await
                })
                .await
                .unwrap()?;
                Ok::<_, Infallible>(Response::new(String::from("ok")))
            }
        }));
    let req = Request::get("/orders")
        .header("traceparent", PARENT)
        .header("tracestate", "vendor=abc,other=1")
        .body(())
        .unwrap();
    app.oneshot(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();

    let (traceparent, tracestate) = seen.lock().unwrap().clone().unwrap();
    let traceparent = traceparent.expect("a traceparent on the outbound call");
    let traceparent = traceparent.to_str().unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{PARENT_TRACE}-")),
        "{traceparent}"
    );
    assert_eq!(tracestate.unwrap(), "vendor=abc,other=1");
    let spans = exporter.get_finished_spans().unwrap();
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    assert_eq!(
        client.span_context.trace_id(),
        server.span_context.trace_id()
    );
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert!(
        traceparent.contains(&client.span_context.span_id().to_string()),
        "{traceparent}"
    );
}

/// The `error.type` of the server span and of the duration metric of one request.
#[cfg(feature = "metrics")]
async fn error_types<F, Fut>(handler: F, cancel: bool) -> (Option<String>, Option<String>)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<String>, &'static str>> + Send + 'static,
{
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::{
        InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
        data::{AggregatedMetrics, MetricData},
    };
    let (spans, _guard) = otel();
    let metrics = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    let app = ServiceBuilder::new()
        .layer(TraceContextLayer::new())
        .layer(middleware_std::metrics::HttpMetricsLayer::new(
            &provider.meter("test"),
        ))
        .layer(LogLayer::new())
        .service(service_fn(move |req: Request<()>| {
            let handler = handler.clone();
            async move {
                if cancel {
                    req.try_context().unwrap().cancel();
                    std::future::pending::<()>().await;
                }
                handler().await
            }
        }));
    let call = app.oneshot(Request::get("/orders").body(()).unwrap());
    if cancel {
        // Dropped after its context was cancelled explicitly.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(10), call).await;
    } else if let Ok(res) = call.await {
        res.into_body().collect().await.unwrap();
    }

    let span = spans.get_finished_spans().unwrap();
    let span_type = attributes(&span[0]).get("error.type").cloned();
    provider.force_flush().unwrap();
    let mut metric_type = None;
    for rm in metrics.get_finished_metrics().unwrap() {
        for m in rm
            .scope_metrics()
            .flat_map(opentelemetry_sdk::metrics::data::ScopeMetrics::metrics)
        {
            if m.name() != "http.server.request.duration" {
                continue;
            }
            if let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() {
                for p in h.data_points() {
                    metric_type = p
                        .attributes()
                        .find(|kv| kv.key.as_str() == "error.type")
                        .map(|kv| kv.value.to_string());
                }
            }
        }
    }
    (span_type, metric_type)
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn a_request_has_one_error_type_on_its_span_and_its_metric() {
    let failed = || async { Err("db down") };
    let (span, metric) = error_types(failed, false).await;
    assert_eq!(span.as_deref(), Some("_OTHER"));
    assert_eq!(span, metric);

    let broken = || async {
        let mut res = Response::new(String::from("oops"));
        *res.status_mut() = StatusCode::BAD_GATEWAY;
        Ok(res)
    };
    let (span, metric) = error_types(broken, false).await;
    assert_eq!(span.as_deref(), Some("502"));
    assert_eq!(span, metric);

    let ok = || async { Ok(Response::new(String::from("ok"))) };
    let (span, metric) = error_types(ok, true).await;
    assert_eq!(span.as_deref(), Some("cancelled"));
    assert_eq!(span, metric);
}

#[tokio::test]
async fn the_json_access_record_carries_trace_id_and_span_id() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let buf = Buf::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(buf.clone()),
        );
    let _guard = tracing::subscriber::set_default(subscriber);
    let req = Request::get("/users/7")
        .header("traceparent", PARENT)
        .body(axum::body::Body::empty())
        .unwrap();
    send(app(), req).await;

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let span = &exporter.get_finished_spans().unwrap()[0];
    assert_eq!(record["fields"]["message"], "request finished");
    assert_eq!(record["fields"]["trace_id"], PARENT_TRACE);
    assert_eq!(
        record["fields"]["span_id"],
        span.span_context.span_id().to_string()
    );
}

#[tokio::test]
async fn without_an_opentelemetry_layer_the_record_has_no_trace_fields() {
    let buf = Buf::default();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(buf.clone()),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let req = Request::get("/users/7")
        .header("traceparent", PARENT)
        .body(axum::body::Body::empty())
        .unwrap();
    let (_, body) = send(app(), req).await;
    assert_eq!(body, "", "no TraceIds without a span context");
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("trace_id"), "{text}");
}

#[tokio::test]
async fn the_layers_keep_the_conformance_contract() {
    check_conformance!(Conformance::new(TraceContextLayer::new()).with_request(|| {
        Request::get("/")
            .header("traceparent", PARENT)
            .body(String::new())
            .unwrap()
    }))
    .await;
    check_conformance!(Conformance::new(PropagateTraceContextLayer::new())).await;
}
