//! Two services over real TCP on 127.0.0.1, A calls B: both server spans and A's client span
//! end up in one trace, parented hop by hop, and the caller's `traceparent` is the root.
#![allow(missing_docs)]

use std::{net::SocketAddr, time::Duration};

use axum::{Router, extract::State, routing::get};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use middleware_std::{
    logging::LogLayer,
    otel::{PropagateTraceContext, PropagateTraceContextLayer, TraceContextLayer},
};
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tower::{Layer, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

type HttpClient = PropagateTraceContext<Client<HttpConnector, Empty<Bytes>>>;

const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client() -> HttpClient {
    let client = Client::builder(TokioExecutor::new()).build_http();
    PropagateTraceContextLayer::new().layer(client)
}

/// B: answers with the `traceparent` it received.
fn service_b() -> Router {
    Router::new()
        .route(
            "/stock/{item}",
            get(|req: Request<axum::body::Body>| async move {
                req.headers()
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            }),
        )
        .layer(LogLayer::new())
        .layer(TraceContextLayer::new())
}

/// A: calls B inside its own request.
fn service_a(b: SocketAddr) -> Router {
    Router::new()
        .route(
            "/orders/{id}",
            get(move |State(client): State<HttpClient>| async move {
                let uri = format!("http://{b}/stock/42");
                let call = Request::get(uri).body(Empty::new()).unwrap();
                let res = client.oneshot(call).await.unwrap();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8(body.to_vec()).unwrap()
            }),
        )
        .with_state(client())
        .layer(LogLayer::new())
        .layer(TraceContextLayer::new())
}

#[tokio::test]
async fn a_call_from_a_to_b_over_tcp_is_one_trace() {
    // The current-thread runtime runs both servers' tasks on this thread, under this subscriber.
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("two-services")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let b = serve(service_b()).await;
    let a = serve(service_a(b)).await;
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = Request::get(format!("http://{a}/orders/7"))
        .header("traceparent", CALLER)
        .body(Empty::new())
        .unwrap();
    let res = http.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen_by_b = res.into_body().collect().await.unwrap().to_bytes();
    let seen_by_b = String::from_utf8(seen_by_b.to_vec()).unwrap();

    // The servers' spans end with their bodies, a moment after the client read them.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = exporter.get_finished_spans().unwrap();
        if spans.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let find = |name: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|s| s.name == name && s.span_kind == kind)
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
    };
    let a_server = find("GET /orders/{id}", SpanKind::Server);
    let a_client = find("GET", SpanKind::Client);
    let b_server = find("GET /stock/{item}", SpanKind::Server);

    let trace = "0af7651916cd43dd8448eb211c80319c";
    for span in [a_server, a_client, b_server] {
        assert_eq!(
            span.span_context.trace_id().to_string(),
            trace,
            "{}",
            span.name
        );
    }
    assert_eq!(a_server.parent_span_id.to_string(), "b7ad6b7169203331");
    assert_eq!(a_client.parent_span_id, a_server.span_context.span_id());
    assert_eq!(b_server.parent_span_id, a_client.span_context.span_id());
    assert!(b_server.parent_span_is_remote);
    assert_eq!(
        seen_by_b,
        format!("00-{trace}-{}-01", a_client.span_context.span_id())
    );
}
