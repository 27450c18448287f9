use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use middleware_core::testing::Conformance;
use proptest::prelude::*;
use tower::{ServiceExt, service_fn};

use super::*;

const SECRET: &str = "hunter2-Sup3rS3cretValue-0123456789";

fn request(headers: &[(&str, &[u8])], uri: &str) -> Request<()> {
    let mut req = Request::get(uri).body(()).unwrap();
    for (name, value) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    req
}

fn dump(headers: &[(&str, &[u8])], uri: &str) -> String {
    request_head(&request(headers, uri), &Redaction::new())
}

#[test]
fn every_credential_header_is_redacted() {
    for name in [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
        "x-csrf-token",
        "x-xsrf-token",
    ] {
        let text = dump(&[(name, b"pw")], "/");
        assert_eq!(
            text,
            format!("GET / HTTP/1.1\n{name}: [redacted]"),
            "{name}"
        );
    }
}

#[test]
fn headers_the_context_declared_sensitive_are_redacted_in_requests_and_responses() {
    let cx = Context::new();
    cx.mark_sensitive_header(HeaderName::from_static("x-partner-pin"));
    let mut req = request(&[("x-partner-pin", b"1234")], "/");
    req.extensions_mut().insert(cx.clone());
    assert!(!request_head(&req, &Redaction::new()).contains("1234"));

    let mut res = Response::new(());
    res.headers_mut()
        .insert("x-partner-pin", HeaderValue::from_static("1234"));
    let text = response_head(&res, Some(&cx), &Redaction::new());
    assert_eq!(text, "HTTP/1.1 200 OK\nx-partner-pin: [redacted]");
}

#[test]
fn configured_headers_and_query_keys_are_redacted() {
    let redaction = Redaction::new()
        .header(HeaderName::from_static("x-pin"))
        .query_key("Session");
    let req = request(&[("x-pin", b"1234")], "/a?session=s1&SESSION=s2&page=3");
    assert_eq!(
        request_head(&req, &redaction),
        "GET /a?session=[redacted]&SESSION=[redacted]&page=3 HTTP/1.1\nx-pin: [redacted]"
    );
}

#[test]
fn credential_looking_values_are_redacted_under_any_header_name() {
    for value in [
        "Bearer abc",
        "bearer abc",
        "  Basic dXNlcjpwYXNz",
        "Digest username=x",
        "token abc",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlQUJD",
        "session ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4 expires",
    ] {
        let text = dump(&[("x-debug", value.as_bytes())], "/");
        assert_eq!(text, "GET / HTTP/1.1\nx-debug: [redacted]", "{value}");
    }
}

#[test]
fn ordinary_values_and_ids_are_kept() {
    let text = dump(
        &[
            ("user-agent", b"curl/8.5.0"),
            ("x-request-id", b"0f8fad5b-d9cb-469f-a165-70867728950e"),
            ("accept", b"text/html, application/json;q=0.9"),
            ("x-scheme", b"Bearer"),
        ],
        "/items/0f8fad5b-d9cb-469f-a165-70867728950e?page=2",
    );
    assert_eq!(
        text,
        "GET /items/0f8fad5b-d9cb-469f-a165-70867728950e?page=2 HTTP/1.1\n\
         user-agent: curl/8.5.0\n\
         x-request-id: 0f8fad5b-d9cb-469f-a165-70867728950e\n\
         accept: text/html, application/json;q=0.9\n\
         x-scheme: Bearer"
    );
}

#[test]
fn secret_query_values_are_redacted_however_the_key_is_spelled() {
    let text = dump(
        &[],
        "/cb?%74oken=abc&Access_Token=def&api%5Fkey=ghi&password&q=Bearer%20xyz&next=/a",
    );
    assert_eq!(
        text,
        "GET /cb?%74oken=[redacted]&Access_Token=[redacted]&api%5Fkey=[redacted]&password\
         &q=[redacted]&next=/a HTTP/1.1"
    );
}

#[test]
fn tokens_in_the_path_and_user_info_are_redacted() {
    let text = dump(
        &[],
        "http://alice:s3cret@api.example:8080/reset/Zx9Kq2Lm8Np4Rt6Vw1Yb3Cd5/confirm",
    );
    assert_eq!(
        text,
        "GET /reset/[redacted]/confirm HTTP/1.1\nhost: api.example:8080"
    );
    assert!(!text.contains("s3cret") && !text.contains("alice"));
}

#[test]
fn hostile_bytes_are_escaped_and_never_forge_a_line() {
    let text = dump(
        &[("x-a", b"a\tb\\c"), ("x-b", b"\xe2\x80\xa8x-forged: 1\xff")],
        "/p%0d%0aath?x=%0a",
    );
    assert_eq!(
        text,
        "GET /p%0d%0aath?x=%0a HTTP/1.1\n\
         x-a: a\\tb\\\\c\n\
         x-b: \\xe2\\x80\\xa8x-forged: 1\\xff"
    );
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn a_body_line_cannot_pass_for_a_header() {
    let mut out = String::new();
    render::write_body(&mut out, b"a\r\nfake: header\0\rx");
    assert_eq!(out, "  a\n  fake: header\\x00\\x0dx");
}

#[test]
fn a_long_value_is_cut_but_a_token_in_it_is_never_half_shown() {
    let mut value = "a ".repeat(600).into_bytes();
    value.extend_from_slice(SECRET.as_bytes());
    let text = dump(&[("x-long", &value)], "/");
    assert_eq!(text, "GET / HTTP/1.1\nx-long: [redacted]");

    let text = dump(&[("x-long", "ab ".repeat(500).as_bytes())], "/");
    assert!(text.ends_with("...(1500 bytes)"), "{text}");
}

#[test]
fn a_response_head_has_its_status_line_and_headers() {
    let res = Response::builder()
        .status(503)
        .header("retry-after", "2")
        .header("set-cookie", "sid=abc")
        .body(())
        .unwrap();
    assert_eq!(
        response_head(&res, None, &Redaction::new()),
        "HTTP/1.1 503 Service Unavailable\nretry-after: 2\nset-cookie: [redacted]"
    );
}

// ---- the layer

#[tokio::test(flavor = "current_thread")]
async fn the_layer_logs_request_and_response_heads_redacted() {
    let logs = Logs::capture();
    let svc =
        DumpLayer::new()
            .label("inbound")
            .layer(service_fn(|_req: Request<Full<Bytes>>| async {
                let res = Response::builder()
                    .header("set-cookie", format!("sid={SECRET}"))
                    .body(Full::<Bytes>::from("ok"))
                    .unwrap();
                Ok::<_, Infallible>(res)
            }));
    let req = Request::post("/login?token=abc")
        .header("authorization", format!("Bearer {SECRET}"))
        .body(Full::from("hello"))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    let text = logs.text();
    assert!(
        text.contains("POST /login?token=[redacted] HTTP/1.1"),
        "{text}"
    );
    assert!(text.contains("authorization: [redacted]"), "{text}");
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("label=\"inbound\"") || text.contains("label=inbound"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        !text.contains("hello"),
        "no body dumped unless asked: {text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_first_body_bytes_are_dumped_while_the_body_streams_through_unchanged() {
    let logs = Logs::capture();
    let svc =
        DumpLayer::new()
            .body_bytes(8)
            .layer(service_fn(|req: Request<Full<Bytes>>| async move {
                // The handler reads the request body through the dump.
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let mut chunks = Chunks::new(&[b"0123", b"4567\n89"]);
                chunks.0.push_back(body);
                Ok::<_, Infallible>(Response::new(chunks))
            }));
    let res = svc
        .oneshot(Request::new(Full::from("request-body")))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "01234567\n89request-body", "unchanged");
    let text = logs.text();
    assert!(
        !text.contains("request-"),
        "request bodies are not dumped: {text}"
    );
    assert!(text.contains("01234567"), "{text}");
    assert!(
        !text.contains("\n89"),
        "the ninth byte is not dumped: {text}"
    );
    assert!(
        text.contains("end=\"cut\"") || text.contains("end=cut"),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_body_wrapped_where_it_is_built_is_dumped_as_it_is_sent() {
    let logs = Logs::capture();
    let dump = DumpLayer::new().label("upstream").body_bytes(10);
    let body = dump.request_body(Chunks::new(&[
        b"{\"sku\": ",
        b"42, \"token\": \"Zq8Lr2Vx6Nk4Tb0Hw3Jc7Pm5\"}",
    ]));
    let sent = body.collect().await.unwrap().to_bytes();
    assert_eq!(
        sent, "{\"sku\": 42, \"token\": \"Zq8Lr2Vx6Nk4Tb0Hw3Jc7Pm5\"}",
        "unchanged"
    );
    let text = logs.text();
    assert!(text.contains("request body"), "{text}");
    assert!(text.contains("{\"sku\": 42"), "{text}");
    assert!(!text.contains("token"), "cut at 10 bytes: {text}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_body_reports_what_it_saw() {
    let logs = Logs::capture();
    let svc = DumpLayer::new().body_bytes(100).layer(service_fn(
        |_req: Request<Full<Bytes>>| async move {
            Ok::<_, Infallible>(Response::new(Chunks::new(&[b"partial", b"never read"])))
        },
    ));
    let res = svc.oneshot(Request::new(Full::default())).await.unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "partial");
    drop(body);
    let text = logs.text();
    assert!(text.contains("partial"), "{text}");
    assert!(text.contains("dropped"), "{text}");
    assert!(!text.contains("never read"), "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_is_rendered_when_the_events_are_disabled() {
    // No subscriber: the layer only checks and passes through.
    let svc =
        DumpLayer::new()
            .body_bytes(8)
            .layer(service_fn(|req: Request<Full<Bytes>>| async move {
                Ok::<_, Infallible>(Response::new(req.into_body()))
            }));
    let res = svc.oneshot(Request::new(Full::from("x"))).await.unwrap();
    assert!(format!("{:?}", res.body()).contains("dumping: false"));
}

#[tokio::test(flavor = "current_thread")]
async fn the_layer_records_its_own_time_when_asked() {
    let _logs = Logs::capture();
    let cx = Context::new();
    cx.request_layer_times();
    let mut req = Request::new(Full::<Bytes>::from("x"));
    req.extensions_mut().insert(cx.clone());
    let svc = DumpLayer::new().layer(service_fn(|req: Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(Response::new(req.into_body()))
    }));
    svc.oneshot(req).await.unwrap();
    let names: Vec<String> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(names, ["mw.dump"]);

    let quiet = Context::new();
    let mut req = Request::new(Full::<Bytes>::from("x"));
    req.extensions_mut().insert(quiet.clone());
    let svc = DumpLayer::new().layer(service_fn(|req: Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(Response::new(req.into_body()))
    }));
    svc.oneshot(req).await.unwrap();
    assert!(quiet.marks().is_empty(), "not asked, not recorded");
}

#[tokio::test(flavor = "current_thread")]
async fn the_layer_keeps_the_conformance_contract_with_bodies_dumped() {
    let _logs = Logs::capture();
    middleware_core::check_conformance!(Conformance::new(DumpLayer::new().body_bytes(16))).await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_layer_keeps_the_conformance_contract_heads_only() {
    middleware_core::check_conformance!(Conformance::new(DumpLayer::new())).await;
}

// ---- properties

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    // Every byte `http` accepts in a value: tab, printable ASCII, obs-text.
    proptest::collection::vec(
        prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff],
        0..40,
    )
}

proptest! {
    #[test]
    fn no_secret_ever_appears_in_a_dump_and_each_header_is_one_line(
        noise in proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", header_value()), 0..8),
        prefix in header_value(),
        suffix in header_value(),
        query_noise in "[a-zA-Z0-9=&%._-]{0,30}",
        scheme in prop_oneof![Just("Bearer "), Just("basic "), Just("TOKEN  ")],
    ) {
        let mut headers: Vec<(String, Vec<u8>)> = noise;
        headers.push(("authorization".into(), [&prefix[..], SECRET.as_bytes(), &suffix[..]].concat()));
        headers.push(("cookie".into(), format!("sid={SECRET}").into_bytes()));
        headers.push(("x-custom".into(), format!("{scheme}{SECRET}").into_bytes()));
        headers.push(("x-pin".into(), SECRET.as_bytes().to_vec()));
        // A token standing alone somewhere in an ordinary header, between hostile bytes.
        let mut loose = prefix;
        loose.push(b' ');
        loose.extend_from_slice(SECRET.as_bytes());
        loose.push(b' ');
        loose.extend_from_slice(&suffix);
        headers.push(("x-note".into(), loose));
        let uri = format!("/p?{query_noise}&token={SECRET}&access_token=x{SECRET}");
        let mut req = Request::get(uri.as_str()).body(()).unwrap();
        for (name, value) in &headers {
            req.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let cx = Context::new();
        cx.mark_sensitive_header(HeaderName::from_static("x-pin"));
        req.extensions_mut().insert(cx);
        let text = request_head(&req, &Redaction::new());
        prop_assert!(!text.contains(SECRET), "{}", text);
        prop_assert!(!text.contains("Sup3rS3cret"), "{}", text);
        prop_assert_eq!(text.lines().count(), 1 + headers.len(), "{}", text);
        prop_assert!(text.chars().all(|c| c == '\n' || (' '..='~').contains(&c)), "{}", text);
    }

    #[test]
    fn body_bytes_never_add_a_line_that_is_not_indented(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut out = String::new();
        render::write_body(&mut out, &bytes);
        for line in out.split('\n') {
            prop_assert!(line.starts_with("  "), "{:?}", out);
        }
        prop_assert!(out.chars().all(|c| c == '\n' || (' '..='~').contains(&c)), "{}", out);
    }
}

// ---- fixtures

/// A body that yields `chunks` one frame at a time.
#[derive(Debug, Default)]
struct Chunks(std::collections::VecDeque<Bytes>);

impl Chunks {
    fn new(chunks: &[&'static [u8]]) -> Self {
        Self(chunks.iter().map(|c| Bytes::from_static(c)).collect())
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures every event of this thread until the returned guard's `Logs` is dropped.
    fn capture() -> LogsGuard {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        LogsGuard {
            logs,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }
}

struct LogsGuard {
    logs: Logs,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogsGuard {
    fn text(&self) -> String {
        String::from_utf8(self.logs.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
