//! Panic recovery over real TCP when the application's error renderer panics too: the client
//! gets the fixed `500` (not a closed connection), the panic is logged once, and the request's
//! context is cancelled with `Panicked`.
#![cfg(all(feature = "catch-panic", feature = "axum"))]
#![allow(missing_docs)]

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, extract::Request, routing::get};
use bytes::Bytes;
use http::Response;
use middleware_std::{
    CancelCause, Context, Error, HookLayer, Renderer, RequestExt, catch_panic::CatchPanicLayer,
};
use tracing_subscriber::layer::SubscriberExt;

/// `ProblemDetails::fallback`'s body.
const FIXED_500: &str = r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#;

#[tokio::test]
async fn a_panicking_renderer_answers_the_fixed_500_over_tcp() {
    let (events, _guard) = capture();
    let seen: Arc<Mutex<Option<Context>>> = Arc::default();
    let app = Router::new()
        .route(
            "/",
            get({
                let seen = Arc::clone(&seen);
                move |req: Request| async move {
                    *seen.lock().unwrap() = req.try_context().cloned();
                    panic!("handler bug: db password is hunter2");
                    #[allow(unreachable_code)]
                    ""
                }
            }),
        )
        .layer(CatchPanicLayer::new())
        .layer(HookLayer::new(Renderer::new(
            |_: &Error, _: &Context| -> Response<Bytes> { panic!("renderer bug") },
        )));
    let addr = serve(app).await;

    let raw = tokio::time::timeout(Duration::from_secs(10), exchange(addr, "GET"))
        .await
        .expect("no answer in time");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    assert_eq!(body, FIXED_500);
    assert!(!raw.contains("hunter2"));

    let cx = seen.lock().unwrap().clone().expect("the handler ran");
    assert_eq!(cx.cause(), Some(CancelCause::Panicked));
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["message"], "request panicked");
    assert_eq!(events[0]["panic.site"], "response_future");
}

// ----- fixtures ------------------------------------------------------------------------------

/// Serves `app` on an ephemeral port of 127.0.0.1, on this (current-thread) runtime.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Sends one `method /` request with `Connection: close` from a blocking thread (so the server
/// keeps running on the test's thread, where its events are captured) and returns everything
/// the server sent until it closed. Every read is bounded.
async fn exchange(addr: SocketAddr, method: &'static str) -> String {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "{method} / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("the server hung");
        String::from_utf8(raw).unwrap()
    })
    .await
    .unwrap()
}

type Events = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// Captures the events of this thread.
fn capture() -> (Events, tracing::subscriber::DefaultGuard) {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&events)));
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (events, guard)
}

struct Capture(Events);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(BTreeMap<String, String>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
        }
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}
