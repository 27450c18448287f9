//! Bodiless responses over real TCP: hyper never polls the body of a response to `HEAD` (nor
//! of a `204` or `304`), and axum empties it; the timing layer's end-of-body report must read
//! that as a normal end, not a client gone.
#![cfg(all(feature = "timing", feature = "axum"))]
#![allow(missing_docs)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, http::StatusCode, routing::get};
use middleware_std::timing::{BodyEnd, ServerTimingLayer, StreamEnd};

#[tokio::test]
async fn head_and_bodiless_statuses_end_complete_over_tcp() {
    let ends: Arc<Mutex<Vec<BodyEnd>>> = Arc::default();
    let app = Router::new()
        .route(
            "/",
            get(|| async { "hello, a body hyper will not send for HEAD" }),
        )
        .route(
            "/204",
            get(|| async { (StatusCode::NO_CONTENT, "ignored") }),
        )
        .route(
            "/304",
            get(|| async { (StatusCode::NOT_MODIFIED, "ignored") }),
        )
        .layer(ServerTimingLayer::new().on_body_end({
            let ends = Arc::clone(&ends);
            move |end: BodyEnd| ends.lock().unwrap().push(end)
        }));
    let addr = serve(app).await;

    for (method, path, status) in [
        ("HEAD", "/", "200"),
        ("GET", "/204", "204"),
        ("GET", "/304", "304"),
        ("GET", "/", "200"),
    ] {
        let want = ends.lock().unwrap().len() + 1;
        let raw = tokio::time::timeout(Duration::from_secs(10), exchange(addr, method, path))
            .await
            .expect("no answer in time");
        assert!(raw.starts_with(&format!("HTTP/1.1 {status} ")), "{raw}");
        assert!(
            raw.to_ascii_lowercase()
                .contains("server-timing: total;dur="),
            "{raw}"
        );
        // The report comes from the server task; give it a bounded moment after the close.
        for _ in 0..100 {
            if ends.lock().unwrap().len() >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let got: Vec<_> = ends
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.status.as_u16(), e.stream))
        .collect();
    assert_eq!(
        got,
        [
            (200, StreamEnd::Complete),
            (204, StreamEnd::Complete),
            (304, StreamEnd::Complete),
            (200, StreamEnd::Complete),
        ]
    );
}

// ----- fixtures ------------------------------------------------------------------------------

/// Serves `app` on an ephemeral port of 127.0.0.1.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One `method path` request with `Connection: close` from a blocking thread; everything the
/// server sent until it closed. Every read is bounded.
async fn exchange(addr: SocketAddr, method: &'static str, path: &'static str) -> String {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("the server hung");
        String::from_utf8(raw).unwrap()
    })
    .await
    .unwrap()
}
