//! The metrics layers in an axum router (the route template as `http.route`, never the raw
//! path) and under the conformance kit.
#![cfg(all(feature = "metrics", feature = "axum"))]
#![allow(missing_docs)]

use axum::{Router, routing::get};
use http::Request;
use http_body_util::BodyExt;
use middleware_core::{check_conformance, testing::Conformance};
use middleware_std::metrics::{HttpClientMetricsLayer, HttpMetricsLayer};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
    data::{AggregatedMetrics, MetricData},
};
use tower::ServiceExt;

fn provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    (provider, exporter)
}

#[tokio::test]
async fn the_route_template_is_the_attribute_and_raw_paths_never_are() {
    let (provider, exporter) = provider();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .layer(HttpMetricsLayer::new(&provider.meter("test")));
    for id in ["1", "2", "s3cret-user-value"] {
        let req = Request::get(format!("/users/{id}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    provider.force_flush().unwrap();
    let metrics = exporter.get_finished_metrics().unwrap();
    let last = metrics.last().unwrap();
    let duration = last
        .scope_metrics()
        .flat_map(opentelemetry_sdk::metrics::data::ScopeMetrics::metrics)
        .find(|m| m.name() == "http.server.request.duration")
        .unwrap();
    let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = duration.data() else {
        panic!("not a histogram: {:?}", duration.data());
    };
    let points: Vec<_> = histogram.data_points().collect();
    assert_eq!(points.len(), 1, "one series for three paths: {points:?}");
    assert_eq!(points[0].count(), 3);
    let route = points[0]
        .attributes()
        .find(|kv| kv.key.as_str() == "http.route")
        .map(|kv| kv.value.to_string());
    assert_eq!(route.as_deref(), Some("/users/{id}"));
    assert!(!format!("{points:?}").contains("s3cret"));
    let bounds: Vec<f64> = points[0].bounds().collect();
    assert_eq!(bounds, middleware_std::metrics::DURATION_BUCKETS);
}

#[tokio::test]
async fn the_layers_keep_the_conformance_contract() {
    let (provider, _exporter) = provider();
    let meter = provider.meter("test");
    check_conformance!(Conformance::new(HttpMetricsLayer::new(&meter))).await;
    check_conformance!(Conformance::new(HttpClientMetricsLayer::new(&meter))).await;
}
