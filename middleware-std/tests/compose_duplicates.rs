//! A per-route `LogLayer` or `ServerTimingLayer` under a global `StackLayer` (which has both):
//! one access record and one `Server-Timing` header per request, and one warning per process
//! naming the doubled layer.
//!
//! One test per warning: each warns once per process (this test binary).
#![cfg(all(
    feature = "logging",
    feature = "timing",
    feature = "catch-panic",
    feature = "timeout",
    feature = "request-id",
    feature = "axum"
))]
#![allow(missing_docs)]

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, routing::get};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use middleware_std::{logging::LogLayer, stack::StackLayer, timing::ServerTimingLayer};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test]
async fn a_route_log_layer_under_the_stack_writes_no_second_record() {
    let logs = capture();
    let app = Router::new()
        .route("/", get(|| async { "ok" }).layer(LogLayer::new()))
        .layer(StackLayer::new(Duration::from_secs(5)));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let res = app
            .clone()
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        ids.push(res.headers()["x-request-id"].to_str().unwrap().to_owned());
        res.into_body().collect().await.unwrap();
    }
    let text = logs.text();
    for id in &ids {
        let records = text
            .lines()
            .filter(|line| line.contains("request finished"))
            .filter(|line| line.contains(&format!("request_id={id}")))
            .count();
        assert_eq!(records, 1, "access records of {id}: {text}");
    }
    assert_eq!(
        text.matches("two `LogLayer`s on one request").count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn a_route_timing_layer_under_the_stack_writes_no_second_header() {
    let logs = capture();
    // The inner one asks for per-layer times: the outer one decides, so none are reported.
    let app = Router::new()
        .route(
            "/",
            get(|| async { "ok" }).layer(ServerTimingLayer::new().per_layer_times(true)),
        )
        .layer(StackLayer::new(Duration::from_secs(5)));
    for _ in 0..3 {
        let res = app
            .clone()
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let values: Vec<_> = res.headers().get_all("server-timing").iter().collect();
        assert_eq!(values.len(), 1, "{values:?}");
        let value = values[0].to_str().unwrap();
        assert_eq!(value.matches("total;dur=").count(), 1, "{value}");
        assert!(!value.contains("mw."), "{value}");
    }
    let text = logs.text();
    assert_eq!(
        text.matches("two `ServerTimingLayer`s on one request")
            .count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn the_stack_alone_warns_about_nothing() {
    let logs = capture();
    let app = ServiceBuilder::new()
        .layer(StackLayer::new(Duration::from_secs(5)))
        .service(
            Router::new()
                .route("/", get(|| async { "ok" }))
                .layer(middleware_std::catch_panic::CatchPanicLayer::new()),
        );
    let res = app
        .oneshot(Request::new(axum::body::Body::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();
    let text = logs.text();
    assert!(!text.contains("WARN"), "{text}");
    assert_eq!(text.matches("request finished").count(), 1, "{text}");
}

// ----- fixtures -----

/// Every event of this thread (the test's runtime is single-threaded), as `fmt` writes it.
struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8(self.buf.lock().unwrap().clone()).unwrap()
    }
}

fn capture() -> Logs {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Writer(Arc::clone(&buf));
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    Logs {
        buf,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

#[derive(Clone)]
struct Writer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
