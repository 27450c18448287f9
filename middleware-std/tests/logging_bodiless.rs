//! Responses without a body on the wire (to HEAD; 1xx, 204, 304) end at the head: hyper never
//! polls their body, and that is not a client going away. In process, and over real TCP.
#![cfg(feature = "logging")]
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
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use middleware_std::{Context, RequestExt, logging::LogLayer};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test]
async fn a_head_response_is_logged_completed_without_its_body_read() {
    let (_guard, text) = subscriber();
    let seen = Arc::new(Mutex::new(None));
    let res = app(&seen, StatusCode::OK)
        .oneshot(request(Method::HEAD))
        .await
        .unwrap();
    // What hyper does with the body of a response to HEAD: drop it unpolled.
    drop(res);
    let text = text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(" INFO "), "{text}");
    assert!(text.contains("outcome=\"completed\""), "{text}");
    assert!(text.contains("http.response.body.size=0"), "{text}");
    assert_eq!(context(&seen).cause(), None, "the request was cancelled");
}

#[tokio::test]
async fn a_head_response_cancels_nothing_while_nothing_is_logged() {
    // No subscriber on this thread: the layer keeps only its client-gone watch.
    let seen = Arc::new(Mutex::new(None));
    let res = app(&seen, StatusCode::OK)
        .oneshot(request(Method::HEAD))
        .await
        .unwrap();
    drop(res);
    assert_eq!(context(&seen).cause(), None, "the request was cancelled");
}

#[tokio::test]
async fn bodiless_statuses_are_logged_completed_without_their_body_read() {
    for status in [
        StatusCode::SWITCHING_PROTOCOLS,
        StatusCode::NO_CONTENT,
        StatusCode::NOT_MODIFIED,
    ] {
        let (_guard, text) = subscriber();
        let seen = Arc::new(Mutex::new(None));
        let res = app(&seen, status)
            .oneshot(request(Method::GET))
            .await
            .unwrap();
        drop(res);
        let text = text();
        assert_eq!(text.lines().count(), 1, "{status}: {text}");
        assert!(text.contains("outcome=\"completed\""), "{status}: {text}");
        assert_eq!(context(&seen).cause(), None, "{status}: cancelled");
    }
}

#[tokio::test]
async fn a_get_whose_body_is_dropped_is_still_a_disconnect() {
    let (_guard, text) = subscriber();
    let seen = Arc::new(Mutex::new(None));
    let res = app(&seen, StatusCode::OK)
        .oneshot(request(Method::GET))
        .await
        .unwrap();
    drop(res);
    let text = text();
    assert!(text.contains("outcome=\"disconnected\""), "{text}");
    assert_eq!(
        context(&seen).cause(),
        Some(middleware_std::CancelCause::Dropped)
    );
}

#[tokio::test]
async fn a_head_request_over_tcp_is_logged_completed() {
    let (_guard, text) = subscriber();
    let seen = Arc::new(Mutex::new(None));
    let router = axum::Router::new().route(
        "/health",
        axum::routing::get({
            let seen = Arc::clone(&seen);
            move |req: axum::extract::Request| {
                *seen.lock().unwrap() = req.try_context().cloned();
                async { axum::body::Body::new(Unsized::default()) }
            }
        }),
    );
    let app = router.layer(LogLayer::new().create_context(true));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // A blocking client on another thread (bounded by socket timeouts); the server runs on
    // this test's runtime meanwhile.
    let client = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"HEAD /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
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

    // The connection task logs once it has written the head; wait for it (bounded).
    let logged = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let text = text();
            if text.contains("request finished") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the request was logged in time");
    server.abort();
    assert_eq!(logged.lines().count(), 1, "{logged}");
    assert!(logged.contains("outcome=\"completed\""), "{logged}");
    assert!(logged.contains("http.request.method=HEAD "), "{logged}");
    assert_eq!(context(&seen).cause(), None, "the request was cancelled");
}

// ----- fixtures -----

/// The logging layer around a handler that answers `status` with a body that has data and
/// cannot tell its end in advance, and keeps the request's context.
fn app(
    seen: &Arc<Mutex<Option<Context>>>,
    status: StatusCode,
) -> impl tower::Service<
    Request<String>,
    Response = Response<impl Body<Data = Bytes, Error: std::fmt::Debug>>,
    Error = Infallible,
> {
    let seen = Arc::clone(seen);
    LogLayer::new()
        .create_context(true)
        .layer(service_fn(move |req: Request<String>| {
            *seen.lock().unwrap() = req.try_context().cloned();
            async move {
                let mut res = Response::new(Unsized::default());
                *res.status_mut() = status;
                Ok::<_, Infallible>(res)
            }
        }))
}

fn request(method: Method) -> Request<String> {
    Request::builder()
        .method(method)
        .uri("/health")
        .body(String::new())
        .unwrap()
}

fn context(seen: &Arc<Mutex<Option<Context>>>) -> Context {
    seen.lock()
        .unwrap()
        .clone()
        .expect("the layer made a context")
}

/// One data frame, then the end, which it cannot announce in advance (like a stream).
#[derive(Default)]
struct Unsized {
    done: bool,
}

impl Body for Unsized {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if std::mem::replace(&mut self.done, true) {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"ok")))))
        }
    }
}
