//! The observability layers of issue 16 (features `otel` and `metrics`) on top of the std stack,
//! each line next to the same stack without them. Every request carries a valid `traceparent`
//! (set by the same small layer on all three lines, so only the observability work differs).
//!
//! - `ours-std-stack-tp`: `ours-std-stack` (`StackLayer` + bearer auth), the requests carrying a
//!   `traceparent`: the baseline of the two lines below.
//! - `ours-std-stack-otel`: `TraceContextLayer` and `HttpMetricsLayer` outside the same stack,
//!   **no exporter attached**: the meter is the API's no-op one (no meter provider installed)
//!   and no `tracing-opentelemetry` layer is in a subscriber. What the layers cost when the
//!   features are compiled in and wired but nothing collects: the `traceparent` parse, the
//!   metric attributes, the body wrapper.
//! - `ours-std-stack-otel-sdk`: the same stack with the **SDK and a no-op exporter**: a
//!   `tracing` subscriber with `tracing-opentelemetry`'s layer over an `SdkTracerProvider`
//!   with a batch span processor whose exporter drops every batch, and an `SdkMeterProvider`
//!   whose periodic reader (60 s) hands its collections to an exporter that drops them (the SDK
//!   aggregates every measurement). The access span
//!   becomes an OpenTelemetry server span, child of the remote parent, and the access event is
//!   emitted to the subscriber (which formats nothing). What a production setup costs in
//!   process, less the exporter's network work.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::body::Body;
use http::{HeaderValue, Request};
use middleware_std::{metrics::HttpMetricsLayer, otel::TraceContextLayer};
use opentelemetry::{metrics::MeterProvider as _, trace::TracerProvider as _};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    metrics::{
        PeriodicReader, SdkMeterProvider, Temporality, data::ResourceMetrics,
        exporter::PushMetricExporter,
    },
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use tokio::runtime::Runtime;
use tower::{ServiceBuilder, util::MapRequestLayer};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::{Runner, Variant, ours_std_stack, variant};

/// Each observability line next to the stack without it.
pub const PAIRS: [(&str, &str); 2] = [
    ("ours-std-stack-otel", "ours-std-stack-tp"),
    ("ours-std-stack-otel-sdk", "ours-std-stack-tp"),
];

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn with_traceparent(mut req: Request<Body>) -> Request<Body> {
    req.headers_mut()
        .insert("traceparent", HeaderValue::from_static(TRACEPARENT));
    req
}

fn traceparent() -> MapRequestLayer<fn(Request<Body>) -> Request<Body>> {
    MapRequestLayer::new(with_traceparent as fn(_) -> _)
}

/// An exporter that drops every batch of spans or metrics (counting the spans, for the
/// tests: one atomic add per batch).
#[derive(Debug, Default)]
struct NoopExporter(Arc<AtomicUsize>);

impl SpanExporter for NoopExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.fetch_add(batch.len(), Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

impl PushMetricExporter for NoopExporter {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let _ = metrics;
        std::future::ready(Ok(()))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// The three lines.
pub fn variants() -> Vec<Variant> {
    lines(&Arc::default()).0
}

/// The three lines, the SDK line's spans counted into `exported`; and its tracer provider.
fn lines(exported: &Arc<AtomicUsize>) -> (Vec<Variant>, SdkTracerProvider) {
    let noop_meter = opentelemetry::global::meter("bench");
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(NoopExporter::default()).build())
        .build();
    let sdk_meter = meter_provider.meter("bench");
    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(NoopExporter(Arc::clone(exported)))
        .build();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench"))),
    );
    let sdk = variant(
        "ours-std-stack-otel-sdk",
        "ours-std-stack-otel with the SDK: tracing-opentelemetry over an SdkTracerProvider (batch processor, no-op exporter), an SdkMeterProvider (periodic reader, no-op exporter)",
        ServiceBuilder::new()
            .layer(traceparent())
            .layer(TraceContextLayer::new())
            .layer(HttpMetricsLayer::new(&sdk_meter))
            .service(ours_std_stack()),
    );
    let lines = vec![
        variant(
            "ours-std-stack-tp",
            "ours-std-stack, requests carrying a traceparent (the baseline of the otel lines)",
            ServiceBuilder::new()
                .layer(traceparent())
                .service(ours_std_stack()),
        ),
        variant(
            "ours-std-stack-otel",
            "TraceContextLayer + HttpMetricsLayer over ours-std-stack, no exporter: the API's no-op meter, no OpenTelemetry subscriber",
            ServiceBuilder::new()
                .layer(traceparent())
                .layer(TraceContextLayer::new())
                .layer(HttpMetricsLayer::new(&noop_meter))
                .service(ours_std_stack()),
        ),
        Variant {
            runner: Box::new(WithSubscriber {
                inner: sdk.runner,
                dispatch,
                _providers: (tracer_provider.clone(), meter_provider),
            }),
            ..sdk
        },
    ];
    (lines, tracer_provider)
}

/// Runs a variant with `dispatch` as the thread's subscriber (the runtime is current-thread).
struct WithSubscriber {
    inner: Box<dyn Runner>,
    dispatch: Dispatch,
    /// Kept alive for the run: dropping a provider shuts its pipeline down.
    _providers: (SdkTracerProvider, SdkMeterProvider),
}

/// Runs `f` with `dispatch` as the thread's subscriber. The callsites' cached interest is
/// rebuilt on the way in and out: with one registered dispatcher, `tracing` caches each
/// callsite's interest from the subscriber current when it is first hit, so a callsite first
/// hit by another line (no subscriber: never) would stay off under this one.
fn scoped<T>(dispatch: &Dispatch, f: impl FnOnce() -> T) -> T {
    let out = tracing::dispatcher::with_default(dispatch, || {
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    tracing::callsite::rebuild_interest_cache();
    out
}

impl Runner for WithSubscriber {
    fn run(&mut self, rt: &Runtime, n: u64) -> Duration {
        let inner = &mut self.inner;
        scoped(&self.dispatch, || inner.run(rt, n))
    }

    fn allocs(&mut self, rt: &Runtime, n: u64) -> (u64, u64) {
        let inner = &mut self.inner;
        scoped(&self.dispatch, || inner.allocs(rt, n))
    }

    fn future_size(&mut self) -> usize {
        self.inner.future_size()
    }

    fn response_size(&self) -> usize {
        self.inner.response_size()
    }

    fn send(&mut self, rt: &Runtime, req: Request<Body>) -> u16 {
        let inner = &mut self.inner;
        scoped(&self.dispatch, || inner.send(rt, req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_otel_lines_answer_ok_and_pair_existing_variants() {
        let rt = crate::runtime();
        let _guard = rt.enter();
        let mut variants = variants();
        for v in &mut variants {
            assert_eq!(v.runner.send(&rt, crate::request()), 200, "{}", v.name);
        }
        let names: Vec<_> = variants.iter().map(|v| v.name).collect();
        for (a, b) in PAIRS {
            assert!(names.contains(&a) && names.contains(&b), "{a} / {b}");
        }
    }

    #[test]
    fn the_sdk_line_makes_one_server_span_per_request_and_the_others_none() {
        let rt = crate::runtime();
        let _guard = rt.enter();
        let exported = Arc::default();
        let (mut lines, provider) = lines(&exported);
        for line in &mut lines {
            line.runner.run(&rt, 3);
        }
        provider.force_flush().unwrap();
        assert_eq!(exported.load(Ordering::Relaxed), 3);
        let allocs: Vec<_> = lines
            .iter_mut()
            .map(|l| l.runner.allocs(&rt, 10).0)
            .collect();
        assert!(
            allocs[2] > allocs[1],
            "the SDK line does the SDK's work: {allocs:?}"
        );
    }
}
