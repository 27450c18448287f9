//! Two services, one trace: W3C trace context across a real TCP hop, the access span as the
//! OpenTelemetry server span, and HTTP metrics by the semantic conventions on `/metrics`.
//!
//! Run it with `cargo run -p middleware-examples --example traced`; it exits by itself. It
//! starts two axum servers on 127.0.0.1 (ephemeral ports):
//!
//! - **B** (`inventory`): `GET /stock/{item}`;
//! - **A** (`orders`): `GET /orders/{id}` calls B through `PropagateTraceContextLayer` (a client
//!   span, `traceparent` injected) and `HttpClientMetricsLayer`; `GET /metrics` renders the
//!   process's metrics in the Prometheus text format (`opentelemetry-prometheus`).
//!
//! Each server runs `TraceContextLayer` (reads `traceparent`), `HttpMetricsLayer` and
//! `LogLayer` (its access span is the server span, named `{method} {route}`). `main` sends one
//! request to A carrying a caller's `traceparent`, prints the spans of the one trace that A and
//! B now share (each with its parent), and then A's `/metrics`.
//!
//! Spans go to the SDK's in-memory exporter so the example can print them; in production put
//! an OTLP exporter (`opentelemetry-otlp`) on the same `SdkTracerProvider`.
// An example talks to its user.
#![allow(clippy::print_stdout)]

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::{Path, State},
    routing::get,
};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use middleware_std::{
    logging::LogLayer,
    metrics::{HttpClientMetrics, HttpClientMetricsLayer, HttpMetricsLayer},
    otel::{PropagateTraceContext, PropagateTraceContextLayer, TraceContextLayer},
};
use opentelemetry::{
    metrics::{Meter, MeterProvider as _},
    trace::{SpanId, TracerProvider as _},
};
use opentelemetry_sdk::{
    metrics::SdkMeterProvider,
    trace::{InMemorySpanExporter, SdkTracerProvider},
};
use prometheus::{Encoder as _, TextEncoder};
use tower::{ServiceBuilder, ServiceExt as _};
use tracing_subscriber::layer::SubscriberExt as _;

type Upstream = HttpClientMetrics<PropagateTraceContext<Client<HttpConnector, Empty<Bytes>>>>;

/// A caller's trace: the request to A continues it.
const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[derive(Clone)]
struct OrdersState {
    inventory: SocketAddr,
    upstream: Upstream,
    registry: prometheus::Registry,
}

/// B: the inventory service.
fn inventory(meter: &Meter) -> Router {
    Router::new()
        .route(
            "/stock/{item}",
            get(|Path(item): Path<u32>| async move { format!("item {item}: 3 in stock") }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(TraceContextLayer::new())
                .layer(HttpMetricsLayer::new(meter))
                .layer(LogLayer::new()),
        )
}

/// A: the orders service, which calls B.
fn orders(meter: &Meter, state: OrdersState) -> Router {
    Router::new()
        .route("/orders/{id}", get(order))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(TraceContextLayer::new())
                .layer(HttpMetricsLayer::new(meter))
                .layer(LogLayer::new()),
        )
}

async fn order(Path(id): Path<u32>, State(state): State<OrdersState>) -> (StatusCode, String) {
    let uri = format!("http://{}/stock/{id}", state.inventory);
    let call = Request::get(uri)
        .body(Empty::new())
        .expect("a valid request");
    match state.upstream.oneshot(call).await {
        Ok(res) => {
            let body = res
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes);
            let text = body.map_or_else(
                |e| e.to_string(),
                |b| String::from_utf8_lossy(&b).into_owned(),
            );
            (StatusCode::OK, format!("order {id}: {text}"))
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

async fn metrics(State(state): State<OrdersState>) -> (StatusCode, String) {
    let mut text = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut text) {
        Ok(()) => (StatusCode::OK, String::from_utf8_lossy(&text).into_owned()),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let addr = listener.local_addr().expect("a bound listener");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn get_text(
    http: &Client<HttpConnector, Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> String {
    let res = http.request(req).await.expect("the server answers");
    let body = res
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Traces: tracing spans -> tracing-opentelemetry -> the SDK -> an in-memory exporter.
    let spans = InMemorySpanExporter::default();
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("traced"))),
    )?;
    // Metrics: the SDK with a Prometheus registry as its reader.
    let registry = prometheus::Registry::new();
    let reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()?;
    let meter_provider = SdkMeterProvider::builder().with_reader(reader).build();
    let meter = meter_provider.meter("traced");

    let b = serve(inventory(&meter)).await;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let upstream = ServiceBuilder::new()
        .layer(HttpClientMetricsLayer::new(&meter))
        .layer(PropagateTraceContextLayer::new())
        .service(client.clone());
    let state = OrdersState {
        inventory: b,
        upstream,
        registry,
    };
    let a = serve(orders(&meter, state)).await;
    println!("A (orders) on http://{a}, B (inventory) on http://{b}");

    let req = Request::get(format!("http://{a}/orders/42"))
        .header("traceparent", CALLER)
        .body(Empty::new())?;
    println!("GET /orders/42 -> {}", get_text(&client, req).await);

    // The server spans end with their response bodies: wait for all three.
    let mut finished = Vec::new();
    for _ in 0..200 {
        finished = spans.get_finished_spans()?;
        if finished.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    finished.sort_by_key(|s| s.start_time);
    let trace = &CALLER[3..35];
    println!("\ntrace {trace}:");
    for span in &finished {
        let parent = if span.parent_span_id == SpanId::INVALID {
            String::from("-")
        } else {
            span.parent_span_id.to_string()
        };
        println!(
            "  {:<18} {:<7?} span {} parent {}{}  same trace: {}",
            span.name,
            span.span_kind,
            span.span_context.span_id(),
            parent,
            if span.parent_span_is_remote {
                " (remote)"
            } else {
                ""
            },
            span.span_context.trace_id().to_string() == trace,
        );
    }
    let one_trace = finished.len() == 3
        && finished
            .iter()
            .all(|s| s.span_context.trace_id().to_string() == trace);

    let metrics = get_text(
        &client,
        Request::get(format!("http://{a}/metrics")).body(Empty::new())?,
    )
    .await;
    println!("\nGET /metrics (excerpt):");
    for line in metrics.lines().filter(|l| {
        l.starts_with("# TYPE http_")
            || l.starts_with("http_server_request_duration_seconds_count")
            || l.starts_with("http_client_request_duration_seconds_count")
            || l.starts_with("http_server_active_requests")
    }) {
        println!("  {line}");
    }

    tracer_provider.shutdown()?;
    meter_provider.shutdown()?;
    if !one_trace || !metrics.contains("http_server_request_duration_seconds_count") {
        return Err("the services did not share one trace, or /metrics is missing a series".into());
    }
    Ok(())
}
