//! A request-id layer inside the log and panic-recovery layers (the order of `Router::layer`
//! calls is the reverse of `ServiceBuilder`'s): the access record keeps the id, and the
//! mistake is named in one warning per process, not one per request.
//!
//! One test per warning: each warns once per process (this test binary).
#![cfg(all(
    feature = "logging",
    feature = "catch-panic",
    feature = "request-id",
    feature = "axum"
))]
#![allow(missing_docs)]

use std::{
    io,
    sync::{Arc, Mutex},
};

use axum::{Router, routing::get};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use middleware_std::{
    catch_panic::CatchPanicLayer, logging::LogLayer, request_id::SetRequestIdLayer,
};
use tower::ServiceExt;

const WARNING: &str = "`SetRequestIdLayer` runs inside";

#[tokio::test]
async fn a_log_layer_outside_the_request_id_keeps_the_id_and_warns_once() {
    let logs = capture();
    // `Router::layer`: the last call is the outermost, so the log runs before the id exists.
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(SetRequestIdLayer::new())
        .layer(LogLayer::new());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let res = app
            .clone()
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        res.into_body().collect().await.unwrap();
        ids.push(id);
    }
    let text = logs.text();
    let records: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("request finished"))
        .collect();
    assert_eq!(records.len(), 3, "{text}");
    for (record, id) in records.iter().zip(&ids) {
        assert!(
            record.contains(&format!("request_id={id}")),
            "the access record lost the id {id}: {record}"
        );
    }
    assert_eq!(text.matches(WARNING).count(), 1, "{text}");
    assert!(
        text.contains("`LogLayer`") && text.contains("Router::layer"),
        "the warning names the outer layer and the fix: {text}"
    );
}

#[tokio::test]
async fn a_panic_layer_outside_the_request_id_warns_once() {
    let logs = capture();
    let app = Router::new()
        .route("/", get(boom))
        .layer(SetRequestIdLayer::new())
        .layer(CatchPanicLayer::new());
    for _ in 0..3 {
        let res = app
            .clone()
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    let text = logs.text();
    assert_eq!(text.matches(WARNING).count(), 1, "{text}");
    assert!(text.contains("`CatchPanicLayer`"), "{text}");
}

// ----- fixtures -----

async fn boom() -> &'static str {
    panic!("handler bug")
}

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
