//! The access log through `tracing-subscriber`'s plain-text formatter: hostile input never
//! forges a line, and the allocation cost of the layer itself.
#![cfg(feature = "logging")]
#![allow(missing_docs)]

#[path = "log_support/mod.rs"]
mod log_support;
use log_support::Buf;
use std::{convert::Infallible, future::Future, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use middleware_core::testing::{Bare, allocations_per_request};
use middleware_std::{RequestExt, logging::LogLayer};
use proptest::prelude::*;
use tower::{Layer, ServiceExt, service_fn};

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

/// The fields of a plain-text log line as a reader (or a logfmt parser) sees them: a field
/// starts after whitespace (any whitespace: an ideographic space reads as a space), or after
/// the `{` that opens the span (`request{`); it is `key=value` or `key="..."` (backslash
/// escapes inside the quotes); the span closes with `}:`.
fn fields(line: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && !chars[i].is_whitespace()
            && chars[i] != '='
            && chars[i] != '"'
            && chars[i] != '{'
        {
            i += 1;
        }
        if i < chars.len() && chars[i] == '{' {
            // A span name: its first field follows.
            i += 1;
            continue;
        }
        let key: String = chars[start..i].iter().collect();
        if i >= chars.len() || chars[i] != '=' {
            // A bare word, or a quoted string that is not a value: skip it.
            if i < chars.len() && chars[i] == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            continue;
        }
        i += 1; // '='
        let mut value = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    value.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    value.push(chars[i]);
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                value.push(chars[i]);
                i += 1;
            }
        }
        // The last field of the span: `...}:`.
        if value.ends_with("}:") {
            value.truncate(value.len() - 2);
        }
        out.push((key, value));
    }
    out
}

/// One request through the layer (all options on) into a plain-text line: a 403, with the
/// given path and user agent, and an error-free body.
fn forbidden_line(path: &str, user_agent: &[u8]) -> Option<String> {
    let uri: http::Uri = path.parse().ok()?;
    let (writer, text) = buffer();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = LogLayer::new()
        .log_query(true)
        .log_headers(true)
        .capture_request_body(64)
        .capture_response_body(64)
        .layer(service_fn(|_: Request<_>| async {
            let mut res = Response::new(String::from("no \u{3000}status=200"));
            *res.status_mut() = http::StatusCode::FORBIDDEN;
            Ok::<_, Infallible>(res)
        }));
    let req = Request::get(uri)
        .header("user-agent", HeaderValue::from_bytes(user_agent).ok()?)
        .header("x-client", HeaderValue::from_bytes(user_agent).ok()?)
        .body(String::from("body \u{2028}outcome=\"completed\""))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let res = app.oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    });
    Some(text())
}

/// What must hold of a line, whatever the client sent: one line; no whitespace but the ASCII
/// space, no invisible (format) character; the status fields read `403`, once on the span and
/// once on the event; each field name once (twice for the status) and no other field.
fn assert_unforgeable(text: &str) {
    assert_eq!(text.lines().count(), 1, "{text}");
    let line = text.strip_suffix('\n').unwrap();
    for c in line.chars() {
        assert!(
            c == ' ' || !(c.is_whitespace() || c.is_control() || is_format(c)),
            "{c:?} in {line:?}"
        );
    }
    let fields = fields(line);
    let statuses: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "http.response.status_code")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(statuses, ["403", "403"], "{line}");
    let mut keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "duration_ms",
        "headers_ms",
        "http.request.body",
        "http.request.body.size",
        "http.request.headers",
        "http.request.method",
        "http.response.body",
        "http.response.body.size",
        "http.response.headers",
        "http.response.status_code",
        "http.response.status_code",
        "outcome",
        "url.path",
    ];
    if line.contains("url.query=") {
        expected.push("url.query");
    }
    // Issue 16: the scheme and the (escaped, quoted) user agent; the OpenTelemetry span name
    // and kind with the `otel` feature.
    expected.extend(["url.scheme", "user_agent.original"]);
    if cfg!(feature = "otel") {
        expected.extend(["otel.kind", "otel.name"]);
    }
    expected.sort_unstable();
    assert_eq!(keys, expected, "{line}");
    let outcome: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "outcome")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(outcome, ["completed"], "{line}");
}

/// The format characters a test looks for (a subset of `Cf` is enough to catch a leak).
fn is_format(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{e0001}'..='\u{e007f}')
}

#[test]
fn unicode_spaces_in_the_path_cannot_forge_a_field() {
    let line = forbidden_line(
        "/admin\u{3000}http.response.status_code=200\u{200b}\u{a0}outcome=completed",
        b"curl/8 http.response.status_code=200",
    )
    .expect("http accepts the path");
    assert_unforgeable(&line);
    assert!(
        line.contains(r"url.path=/admin\u{3000}http.response.status_code=200\u{200b}\u{00a0}"),
        "{line}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_client_value_can_forge_a_field(
        path in proptest::collection::vec(prop_oneof![
            Just("a"), Just("/"), Just("="), Just("\""), Just("\\"), Just(" "), Just("{"),
            Just("}"), Just(":"), Just("\u{3000}"), Just("\u{a0}"), Just("\u{2028}"),
            Just("\u{200b}"), Just("\u{feff}"), Just("\u{202e}"), Just("\u{e0041}"),
            Just("http.response.status_code=200"), Just("outcome=completed"), Just("?"),
            Just("&"), Just("%20"),
        ], 0..12),
        agent in proptest::collection::vec(prop_oneof![
            Just("a"), Just(" "), Just("="), Just("\""), Just("\\"), Just("\u{3000}"),
            Just("\u{85}"), Just("\u{200b}"), Just("http.response.status_code=200"),
        ], 0..12),
    ) {
        let path = format!("/{}", path.concat());
        if let Some(line) = forbidden_line(&path, agent.concat().as_bytes()) {
            assert_unforgeable(&line);
        }
    }
}

#[test]
fn a_record_is_bounded_whatever_the_request() {
    let (writer, text) = buffer();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = LogLayer::new()
        .log_query(true)
        .log_headers(true)
        .layer(service_fn(|req: Request<String>| async move {
            let huge = req.uri().path().len() > 1000;
            if req.uri().path().starts_with("/err") {
                return Err("\u{3000}".repeat(100_000));
            }
            let mut res = Response::new(String::new());
            if huge {
                for i in 0..500 {
                    res.headers_mut().append(
                        http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                        HeaderValue::from_static("v"),
                    );
                }
            }
            Ok(res)
        }));
    let cases: Vec<(String, &str)> = vec![
        (format!("/{}", "a".repeat(61_000)), "path"),
        (format!("/{}", "%00\u{3000}".repeat(10_000)), "escaped path"),
        (format!("/?q={}", "\u{3000}".repeat(20_000)), "query"),
        (format!("/err{}", "b".repeat(2000)), "error"),
    ];
    for (path, what) in &cases {
        let mut req = Request::get(path.as_str()).body(String::new()).unwrap();
        // 64 KiB of headers: huge values, many headers.
        let value = HeaderValue::from_bytes("\u{3000}x".repeat(8_000).as_bytes()).unwrap();
        req.headers_mut().insert("user-agent", value.clone());
        req.headers_mut().insert("x-custom", value);
        for i in 0..400 {
            req.headers_mut().append(
                http::HeaderName::from_bytes(format!("accept-{}{i}", "n".repeat(60)).as_bytes())
                    .unwrap(),
                HeaderValue::from_static("text/html"),
            );
        }
        if let Ok(res) = app.clone().oneshot(req).await_blocking() {
            drop(res);
        }
        let text = text();
        let line = text.lines().last().unwrap();
        assert!(line.len() < 16 * 1024, "{what}: {} bytes", line.len());
        assert!(line.contains("...[truncated]"), "{what}: {line}");
    }
    assert_eq!(text().lines().count(), cases.len());
}

/// Runs a future to its end on a fresh current-thread runtime.
trait AwaitBlocking: Future + Sized {
    fn await_blocking(self) -> Self::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(self)
    }
}

impl<F: Future> AwaitBlocking for F {}

#[test]
fn the_layer_allocates_nothing_per_request_without_options() {
    // No subscriber: what remains is the layer's own cost.
    assert_eq!(allocations_per_request(Bare::new(), plain), 0);
    assert_eq!(
        allocations_per_request(LogLayer::new().layer(Bare::new()), plain),
        0
    );
    // A context made outside is cloned, not re-created.
    let with_cx = allocations_per_request(Bare::new(), with_context);
    assert_eq!(
        allocations_per_request(LogLayer::new().layer(Bare::new()), with_context) - with_cx,
        0
    );
    // Options that need no subscriber to pay off cost nothing either while nobody listens.
    let all = LogLayer::new().log_query(true).log_headers(true);
    assert_eq!(
        allocations_per_request(all.layer(Bare::new()), with_context) - with_cx,
        0
    );
}

#[test]
fn creating_the_context_costs_what_core_says() {
    let layer = LogLayer::new().create_context(true);
    // The context (2) and, in a request whose extension map is still empty, the map (2).
    assert_eq!(allocations_per_request(layer.layer(Bare::new()), plain), 4);
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

fn plain() -> Request<String> {
    Request::new(String::new())
}

fn with_context() -> Request<String> {
    let mut req = Request::new(String::new());
    req.context();
    req
}
