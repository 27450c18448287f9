//! Server-side protection over real TCP on 127.0.0.1: the request body limit (a declared length
//! over the limit, a chunked body past it, bodies that lie about their length, HTTP/1.1 and
//! HTTP/2), the concurrency limit under 64-way concurrency, and the keyed rate limit keyed by
//! the peer address the accept loop records.

mod std_support;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use middleware_std::{
    body_limit::{LengthLimitError, LimitedBody, RequestBodyLimitLayer},
    limit::ConcurrencyLimitLayer,
    rate_limit::{Policy, RateLimitLayer},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Semaphore, mpsc},
};
use tower::{ServiceBuilder, service_fn};

use std_support::{BOUND, ChannelBody, PROTOS, Proto, Server, client, empty, send, serve};

/// The body limit of the body-limit server.
const LIMIT: u64 = 1024;

/// What the handler made of the body: the bytes it read, or whether the read failed on the
/// limit (`true`) or otherwise (`false`).
type Seen = mpsc::UnboundedReceiver<Result<usize, bool>>;

/// The body limit around a handler that reads the whole body, reports it, and answers `200`
/// with the length or `400` on a body error.
async fn body_limit_server() -> (Server, Seen) {
    let (tx, rx) = mpsc::unbounded_channel();
    let svc = ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(LIMIT))
        .service(service_fn(move |req: Request<LimitedBody<Incoming>>| {
            let tx = tx.clone();
            async move {
                let (status, seen) = match req.into_body().collect().await {
                    Ok(body) => (StatusCode::OK, Ok(body.to_bytes().len())),
                    Err(err) => (StatusCode::BAD_REQUEST, Err(err.is::<LengthLimitError>())),
                };
                let _ = tx.send(seen);
                let mut res = Response::new(Full::new(Bytes::from(format!("{seen:?}"))));
                *res.status_mut() = status;
                Ok::<_, Infallible>(res)
            }
        }));
    (serve(svc).await, rx)
}

/// Writes `request` on a fresh connection, then reads until the server closes it; returns what
/// was read. Fails if the server keeps the connection open past [`BOUND`].
async fn raw_exchange(server: &Server, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut read = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut read))
        .await
        .expect("the server kept the connection open")
        .ok();
    String::from_utf8_lossy(&read).into_owned()
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_and_the_connection_closes() {
    let (server, mut seen) = body_limit_server().await;
    let request = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{}",
        LIMIT * 100,
        "x".repeat(4096),
    );
    let response = raw_exchange(&server, request.as_bytes()).await;
    assert_eq!(status_line(&response), "HTTP/1.1 413 Payload Too Large");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(seen.try_recv().is_err(), "the handler never ran");
}

#[tokio::test]
async fn expect_100_continue_over_the_limit_gets_413_without_a_100() {
    let (server, _seen) = body_limit_server().await;
    let request = format!(
        "POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        LIMIT + 1,
    );
    let response = raw_exchange(&server, request.as_bytes()).await;
    assert_eq!(status_line(&response), "HTTP/1.1 413 Payload Too Large");
    assert!(!response.contains("100 Continue"), "{response}");
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_cut_413_and_the_connection_closes() {
    let (server, mut seen) = body_limit_server().await;
    let mut request = b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..8 {
        request.extend_from_slice(b"100\r\n");
        request.extend_from_slice(&[b'a'; 256]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = raw_exchange(&server, &request).await;
    assert_eq!(status_line(&response), "HTTP/1.1 413 Payload Too Large");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert_eq!(
        seen.recv().await,
        Some(Err(true)),
        "the read failed on the limit"
    );
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_is_read_whole_and_the_connection_is_kept() {
    let (server, mut seen) = body_limit_server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..2 {
        let request = format!(
            "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n400\r\n{}\r\n0\r\n\r\n",
            "b".repeat(1024),
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0; 4096];
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let response = String::from_utf8_lossy(&buf[..n]);
        assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
        assert_eq!(seen.recv().await, Some(Ok(1024)));
    }
}

#[tokio::test]
async fn a_body_longer_than_it_declares_never_gets_past_its_declared_length() {
    let (server, mut seen) = body_limit_server().await;
    // Declares 10, sends 2000: the handler sees 10 bytes; the rest is not a body at all (hyper
    // reads it as the start of a next request).
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n{}",
        "z".repeat(2000),
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert_eq!(seen.recv().await, Some(Ok(10)));
}

#[tokio::test]
async fn a_body_shorter_than_it_declares_fails_the_read_but_not_on_the_limit() {
    let (server, mut seen) = body_limit_server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\nonly this")
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let seen = tokio::time::timeout(BOUND, seen.recv()).await.unwrap();
    assert_eq!(seen, Some(Err(false)), "an incomplete body, not a limit");
}

#[tokio::test]
async fn http2_bodies_past_the_limit_are_413_without_a_connection_header() {
    let (server, mut seen) = body_limit_server().await;
    let client = client(Proto::Http2);

    // Declared too large.
    let req = Request::post(server.url("/"))
        .header(header::CONTENT_LENGTH, (LIMIT + 1).to_string())
        .body(Full::new(Bytes::from(vec![b'a'; usize::try_from(LIMIT).unwrap() + 1])).boxed())
        .unwrap();
    let (parts, _) = send(&client, req).await;
    assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(parts.headers.get(header::CONNECTION).is_none());

    // Streamed past the limit with no declared length.
    let (tx, rx) = mpsc::channel(16);
    let req = Request::post(server.url("/"))
        .body(BodyExt::boxed(ChannelBody(rx)))
        .unwrap();
    let sender = tokio::spawn(async move {
        for _ in 0..8 {
            if tx.send(Bytes::from(vec![b'c'; 256])).await.is_err() {
                break;
            }
        }
    });
    let (parts, _) = send(&client, req).await;
    assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(seen.recv().await, Some(Err(true)));
    sender.await.unwrap();

    // Within the limit, on the same connection.
    let req = Request::post(server.url("/"))
        .body(Full::new(Bytes::from_static(b"small")).boxed())
        .unwrap();
    let (parts, body) = send(&client, req).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "Ok(5)");
}

// ---------------------------------------------------------------------------------------------
// The concurrency limit

/// How many requests the concurrency tests send at once.
const CONCURRENCY: usize = 64;

/// A handler that records how many requests are inside it at once (and the peak), and waits at
/// `gate` (if any) before answering.
#[derive(Clone, Default)]
struct Inside {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

async fn limited_server(
    limit: &ConcurrencyLimitLayer,
    inside: &Inside,
    gate: Option<Arc<Semaphore>>,
) -> Server {
    let inside = inside.clone();
    let svc = ServiceBuilder::new()
        .layer(limit.clone())
        .service(service_fn(move |_: Request<Incoming>| {
            let inside = inside.clone();
            let gate = gate.clone();
            async move {
                let now = inside.now.fetch_add(1, Ordering::SeqCst) + 1;
                inside.peak.fetch_max(now, Ordering::SeqCst);
                match gate {
                    Some(gate) => gate.acquire().await.unwrap().forget(),
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
                inside.now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
            }
        }));
    serve(svc).await
}

#[tokio::test]
async fn the_concurrency_limit_holds_under_64_concurrent_requests_and_every_place_comes_back() {
    for proto in PROTOS {
        let limit = ConcurrencyLimitLayer::new(8).queue(CONCURRENCY, BOUND);
        let inside = Inside::default();
        let server = limited_server(&limit, &inside, None).await;
        let client = client(proto);
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let client = client.clone();
                let req = Request::get(server.url("/")).body(empty()).unwrap();
                tokio::spawn(async move { send(&client, req).await })
            })
            .collect();
        for task in tasks {
            let (parts, body) = task.await.unwrap();
            assert_eq!(parts.status, StatusCode::OK, "{proto:?}");
            assert_eq!(body, "done");
        }
        let peak = inside.peak.load(Ordering::SeqCst);
        assert!(peak <= 8 && peak > 0, "{proto:?}: peak {peak}");
        assert_eq!((limit.in_flight(), limit.waiting()), (0, 0), "{proto:?}");
    }
}

#[tokio::test]
async fn load_shedding_over_tcp_answers_503_at_once_and_admits_exactly_the_limit() {
    let limit = ConcurrencyLimitLayer::new(4);
    let inside = Inside::default();
    let gate = Arc::new(Semaphore::new(0));
    let server = limited_server(&limit, &inside, Some(Arc::clone(&gate))).await;
    let client = client(Proto::Http1);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    for _ in 0..CONCURRENCY {
        let client = client.clone();
        let done_tx = done_tx.clone();
        let req = Request::get(server.url("/")).body(empty()).unwrap();
        tokio::spawn(async move {
            let (parts, _) = send(&client, req).await;
            let _ = done_tx.send(parts);
        });
    }
    // Everything but the admitted four is answered while those four are still held.
    for _ in 0..CONCURRENCY - 4 {
        let parts = tokio::time::timeout(BOUND, done_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(parts.headers[header::RETRY_AFTER], "1");
    }
    assert_eq!(inside.now.load(Ordering::SeqCst), 4);
    assert_eq!(limit.in_flight(), 4);
    gate.add_permits(4);
    for _ in 0..4 {
        let parts = tokio::time::timeout(BOUND, done_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(parts.status, StatusCode::OK);
    }
    assert_eq!(inside.peak.load(Ordering::SeqCst), 4);
    // The last body frame is read by the client before the server's body is dropped.
    tokio::time::timeout(BOUND, async {
        while limit.in_flight() != 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("every place came back");
}

// ---------------------------------------------------------------------------------------------
// The rate limit

#[tokio::test]
async fn the_rate_limit_counts_per_peer_over_tcp_and_answers_429_with_the_headers() {
    for proto in PROTOS {
        let layer = RateLimitLayer::new(Policy::per_minute(3).named("tcp"));
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(|_: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
            }));
        let server = serve(svc).await;
        let client = client(proto);
        for remaining in [2, 1, 0] {
            let req = Request::get(server.url("/")).body(empty()).unwrap();
            let (parts, _) = send(&client, req).await;
            assert_eq!(parts.status, StatusCode::OK, "{proto:?}");
            assert_eq!(parts.headers["ratelimit-policy"], r#""tcp";q=3;w=60"#);
            let ratelimit = parts.headers["ratelimit"].to_str().unwrap();
            assert!(
                ratelimit.starts_with(&format!(r#""tcp";r={remaining};t="#)),
                "{ratelimit}"
            );
        }
        let req = Request::get(server.url("/")).body(empty()).unwrap();
        let (parts, _) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS, "{proto:?}");
        assert_eq!(parts.headers[header::RETRY_AFTER], "20");
        assert_eq!(parts.headers["ratelimit"], r#""tcp";r=0;t=20"#);
        assert_eq!(layer.store().len(), 1, "one peer, one key");
    }
}
