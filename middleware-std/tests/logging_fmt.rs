//! The access log through `tracing-subscriber`'s plain-text formatter: hostile input never
//! forges a line, and the allocation cost of the layer itself.
#![cfg(feature = "logging")]
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::pin,
    sync::{Arc, Mutex},
    task::{Context as TaskContext, Poll, Waker},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use middleware_std::{RequestExt, logging::LogLayer};
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};

#[tokio::test]
async fn hostile_input_gives_one_line_per_event() {
    let (writer, text) = buffer();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = LogLayer::new()
        .log_query(true)
        .log_headers(true)
        .capture_response_body(64)
        .layer(service_fn(|req: Request<String>| async move {
            if req.uri().path() == "/err" {
                return Err("\r\n2026-01-01T00:00:00Z  INFO forged: admin logged in\n");
            }
            let mut res = Response::new(String::from("line\r\nINFO forged\x1b[2J\x1b]0;title\x07"));
            res.headers_mut().insert(
                "x-echo",
                HeaderValue::from_bytes(b"\xc2\x85NEL\xe2\x80\xa8LS\xff").unwrap(),
            );
            Ok(res)
        }));
    for path in ["/ok?q=%0d%0a\u{2028}", "/err"] {
        let mut req = Request::get(path)
            .header(
                "user-agent",
                HeaderValue::from_bytes(b"a\tb\xe2\x80\xae").unwrap(),
            )
            .body(String::new())
            .unwrap();
        req.context();
        if let Ok(res) = app.clone().oneshot(req).await {
            res.into_body().collect().await.unwrap();
        }
    }
    let text = text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("outcome=\"completed\""), "{text}");
    assert!(lines[1].contains("outcome=\"error\""), "{text}");
    for line in &lines {
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || ('\u{2028}'..='\u{202e}').contains(&c)),
            "{line:?}"
        );
        assert!(!line.contains('\u{85}'), "{line:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_header_value_or_body_stays_on_one_line(
        // Every byte `http` accepts in a header value: tab, visible ASCII, obs-text.
        value in proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..64),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let value = HeaderValue::from_bytes(&value).unwrap();
        let (writer, text) = buffer();
        let subscriber = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = LogLayer::new()
            .log_headers(true)
            .capture_response_body(64)
            .layer(service_fn(move |_: Request<String>| {
                let body = Bytes::from(body.clone());
                async move { Ok::<_, Infallible>(Response::new(http_body_util::Full::new(body))) }
            }));
        let req = Request::get("/").header("x-anything", value).body(String::new()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let res = app.oneshot(req).await.unwrap();
            res.into_body().collect().await.unwrap();
        });
        let text = text();
        prop_assert_eq!(text.lines().count(), 1, "{}", text);
        let line = text.strip_suffix('\n').unwrap();
        prop_assert!(!line.chars().any(char::is_control), "{:?}", line);
    }
}

#[test]
fn the_layer_allocates_nothing_per_request_without_options() {
    // No subscriber: what remains is the layer's own cost.
    assert_eq!(per_request(Bare, plain), 0);
    assert_eq!(per_request(LogLayer::new().layer(Bare), plain), 0);
    // A context made outside is cloned, not re-created.
    let with_cx = per_request(Bare, with_context);
    assert_eq!(
        per_request(LogLayer::new().layer(Bare), with_context) - with_cx,
        0
    );
    // Options that need no subscriber to pay off cost nothing either while nobody listens.
    let all = LogLayer::new().log_query(true).log_headers(true);
    assert_eq!(per_request(all.layer(Bare), with_context) - with_cx, 0);
}

#[test]
fn creating_the_context_costs_what_core_says() {
    let layer = LogLayer::new().create_context(true);
    // The context (2) and, in a request whose extension map is still empty, the map (2).
    assert_eq!(per_request(layer.layer(Bare), plain), 4);
}

// ----- fixtures -----

/// A writer into a shared buffer, and a reader of what was written.
fn buffer() -> (impl Fn() -> Buf + Clone + 'static, impl Fn() -> String) {
    let buf = Buf(Arc::default());
    let read = buf.clone();
    (
        move || buf.clone(),
        move || String::from_utf8(read.0.lock().unwrap().clone()).unwrap(),
    )
}

#[derive(Clone)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const REQUESTS: u64 = 100;

/// `200` with an empty body; allocates nothing.
#[derive(Clone, Copy)]
struct Bare;

impl Service<Request<String>> for Bare {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        std::future::ready(Ok(Response::new(String::new())))
    }
}

fn plain() -> Request<String> {
    Request::new(String::new())
}

fn with_context() -> Request<String> {
    let mut req = Request::new(String::new());
    req.context();
    req
}

/// Allocations per request through `svc` (counted per thread by `allocation-counter`).
fn per_request<S>(mut svc: S, make: impl Fn() -> Request<String>) -> u64
where
    S: Service<Request<String>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = TaskContext::from_waker(Waker::noop());
    let mut one = || {
        let req = make();
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut future = pin!(svc.call(req));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(res) => drop(res.expect("request failed")),
            Poll::Pending => panic!("the request did not complete in one poll"),
        }
    };
    one(); // warm-up: lazily initialised statics are not per-request costs
    let info = allocation_counter::measure(|| {
        for _ in 0..REQUESTS {
            one();
        }
    });
    assert_eq!(info.count_current, 0, "a request leaked memory");
    assert_eq!(info.count_total % REQUESTS, 0, "uneven: {info:?}");
    info.count_total / REQUESTS
}
