//! Redacted dumps over real TCP with hostile bytes on both sides: an upstream that answers with
//! odd and secret-bearing headers (dumped around hyper-util's client), and a client that sends
//! them to a server (dumped around the handler). No secret ever reaches the log, and a dumped
//! head has exactly one line per header.
#![cfg(feature = "dump")]
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use middleware_std::dump::{DumpLayer, Redaction, response_head};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

const SECRET: &str = "Zq8Lr2Vx6Nk4Tb0Hw3Jc7Pm5";

/// A response no well-behaved server sends: obs-text, a Unicode line separator, secrets under
/// ordinary names, a header line folded with a tab.
fn hostile_response() -> Vec<u8> {
    let mut res = Vec::new();
    res.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n");
    res.extend_from_slice(format!("set-cookie: sid={SECRET}; HttpOnly\r\n").as_bytes());
    res.extend_from_slice(format!("x-session: {SECRET}\r\n").as_bytes());
    res.extend_from_slice(format!("www-authenticate: Basic {SECRET}\r\n").as_bytes());
    res.extend_from_slice(b"x-odd: \xe2\x80\xa8x-forged: 1\t\xff\xfe\\n\r\n");
    res.extend_from_slice(b"x-quote: \"a\" 'b' <c>\r\n\r\nok");
    res
}

#[tokio::test(flavor = "current_thread")]
async fn a_hostile_upstream_answer_is_dumped_one_line_per_header_without_its_secrets() {
    let logs = Logs::capture();
    let addr = raw_server(hostile_response()).await;
    let client = ServiceBuilder::new()
        .layer(DumpLayer::new().body_bytes(64))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let req = Request::get(format!("http://{addr}/a?access_token={SECRET}&page=2"))
        .header("authorization", format!("Bearer {SECRET}"))
        .header("cookie", format!("sid={SECRET}"))
        .body(Empty::new())
        .unwrap();
    let res = client.oneshot(req).await.unwrap();

    // The function, on the head as hyper parsed it: one line per header, nothing unescaped.
    let text = response_head(&res, None, &Redaction::new());
    assert_eq!(text.lines().count(), 1 + res.headers().len(), "{text}");
    assert!(
        text.contains("x-odd: \\xe2\\x80\\xa8x-forged: 1\\t\\xff\\xfe\\\\n"),
        "{text}"
    );
    assert!(
        text.chars().all(|c| c == '\n' || (' '..='~').contains(&c)),
        "{text}"
    );

    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
    let log = logs.text();
    assert!(
        log.contains("GET /a?access_token=[redacted]&page=2 HTTP/1.1"),
        "{log}"
    );
    assert!(log.contains("set-cookie: [redacted]"), "{log}");
    assert!(log.contains("x-session: [redacted]"), "{log}");
    assert!(log.contains("www-authenticate: [redacted]"), "{log}");
    assert!(log.contains("response body"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    assert!(!log.contains('\u{2028}'), "{log}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_hostile_client_request_is_dumped_without_its_secrets() {
    let logs = Logs::capture();
    let app = ServiceBuilder::new()
        .layer(DumpLayer::new().label("inbound"))
        .service(service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok")))
        }));
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
            .await;
    });

    let mut req = Vec::new();
    req.extend_from_slice(
        format!("GET /reset/{SECRET}?Token={SECRET}&q=%0d%0aSet-Cookie:x HTTP/1.1\r\n").as_bytes(),
    );
    req.extend_from_slice(b"host: example\r\n");
    req.extend_from_slice(format!("x-api-key: {SECRET}\r\n").as_bytes());
    req.extend_from_slice(format!("proxy-authorization: Digest {SECRET}\r\n").as_bytes());
    req.extend_from_slice(format!("x-forwarded-for: 1.2.3.4, {SECRET}\r\n").as_bytes());
    req.extend_from_slice(b"user-agent: \xc0\xaf\xff\t\"\\\r\nconnection: close\r\n\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&req).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200 OK"));

    let log = logs.text();
    assert!(
        log.contains("GET /reset/[redacted]?Token=[redacted]&q=%0d%0aSet-Cookie:x HTTP/1.1"),
        "{log}"
    );
    assert!(log.contains("x-api-key: [redacted]"), "{log}");
    assert!(log.contains("proxy-authorization: [redacted]"), "{log}");
    assert!(log.contains("x-forwarded-for: [redacted]"), "{log}");
    assert!(
        log.contains("user-agent: \\xc0\\xaf\\xff\\t\"\\\\"),
        "{log}"
    );
    assert!(!log.contains(SECRET), "{log}");
}

// ---- fixtures

/// Answers the first request on its first connection with `response`, byte for byte.
async fn raw_server(response: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            head.extend_from_slice(&buf[..n]);
        }
        stream.write_all(&response).await.unwrap();
        // Keep the connection open until the client is done.
        let _ = stream.read(&mut buf).await;
    });
    addr
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

struct Capture {
    logs: Logs,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    /// Captures this thread's events (the tests run on a current-thread runtime).
    fn capture() -> Capture {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        Capture {
            logs,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }
}

impl Capture {
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
