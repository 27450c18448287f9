//! A client that goes away in the middle of its request body, over real TCP on 127.0.0.1: the
//! request's context is cancelled with cause `dropped` (so work spawned for the request can
//! stop), whether the client closes the socket, resets it, or resets its HTTP/2 stream; a
//! client that sends its whole body is never cancelled.
//!
//! The server: a context made by an outer layer (`HookLayer(EnsureContext)`, or the whole
//! `StackLayer`), then `RequestBodyTimeoutLayer` with deadlines far longer than any wait here
//! (so a cause seen within the bound cannot be a deadline), then a handler that watches
//! `cancelled()` in a spawned task and reads the body.

mod std_support;

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use middleware_std::{
    CancelCause, EnsureContext, HookLayer, RequestExt,
    stack::StackLayer,
    timeout::{RequestBodyTimeoutLayer, TimeoutBody},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, oneshot},
};
use tower::{ServiceBuilder, service_fn};

use std_support::{Server, serve};

/// How long the test waits for the server to report, before failing instead of hanging.
const BOUND: Duration = Duration::from_secs(5);

/// The request-body deadlines: far past [`BOUND`], so they never fire in these tests.
const BODY_IDLE: Duration = Duration::from_secs(60);
const BODY_TOTAL: Duration = Duration::from_secs(120);

/// The declared body length, and how much of it an aborting client sends.
const LENGTH: usize = 1000;
const SENT: usize = 100;

/// What the server reports, in order: the handler started reading the body; the body ended
/// (its length, or the error as text); the request's cancellation cause (`None`: the handler
/// finished and the context was never cancelled).
#[derive(Debug)]
enum Event {
    Reading,
    Read(Result<usize, String>),
    Watched(Option<CancelCause>),
}

type Events = mpsc::UnboundedReceiver<Event>;

/// The handler: reports, watches the context, reads the body, answers `200` with the length
/// or `400` with the body's error.
fn handler(
    tx: mpsc::UnboundedSender<Event>,
) -> impl tower::Service<
    Request<TimeoutBody<Incoming>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: Request<TimeoutBody<Incoming>>| {
        let tx = tx.clone();
        async move {
            let cx = req
                .try_context()
                .cloned()
                .expect("an outer layer made the context");
            // Dropped when this handler's future ends, however it ends.
            let (done, finished) = oneshot::channel::<()>();
            let watcher_tx = tx.clone();
            tokio::spawn(async move {
                let cause = tokio::select! {
                    cause = cx.cancelled() => Some(cause),
                    _ = finished => cx.cause(),
                };
                let _ = watcher_tx.send(Event::Watched(cause));
            });
            let _done = done;
            let _ = tx.send(Event::Reading);
            let read = req.into_body().collect().await;
            let (status, text) = match read {
                Ok(body) => {
                    let len = body.to_bytes().len();
                    let _ = tx.send(Event::Read(Ok(len)));
                    (StatusCode::OK, len.to_string())
                }
                Err(err) => {
                    let _ = tx.send(Event::Read(Err(err.to_string())));
                    (StatusCode::BAD_REQUEST, String::from("incomplete body"))
                }
            };
            let mut res = Response::new(Full::new(Bytes::from(text)));
            *res.status_mut() = status;
            Ok(res)
        }
    })
}

/// The handler behind only what this fix needs: a context and the request-body layer.
async fn minimal_server() -> (Server, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let svc = ServiceBuilder::new()
        .layer(HookLayer::new(EnsureContext))
        .layer(RequestBodyTimeoutLayer::new(BODY_IDLE, BODY_TOTAL))
        .service(handler(tx));
    (serve(svc).await, rx)
}

/// The handler behind the whole recommended stack (request id, logging, timing, panic
/// recovery, budget) and the request-body layer.
async fn stack_server() -> (Server, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let svc = ServiceBuilder::new()
        .layer(StackLayer::new(BODY_TOTAL))
        .layer(RequestBodyTimeoutLayer::new(BODY_IDLE, BODY_TOTAL))
        .service(handler(tx));
    (serve(svc).await, rx)
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(BOUND, events.recv())
        .await
        .expect("the server did not report in time")
        .expect("the server's reporter is gone")
}

/// Reads events until the watcher's; checks that the body failed before it (if `failed`) and
/// returns the cause.
async fn watched(events: &mut Events, failed: bool) -> Option<CancelCause> {
    let mut read = None;
    loop {
        match next(events).await {
            Event::Reading => panic!("a second request"),
            Event::Read(result) => read = Some(result),
            Event::Watched(cause) => {
                if failed {
                    // The cancellation fires while the body is read: the handler may still be
                    // running (and report the read) after the watcher heard it.
                    if read.is_none() {
                        match next(events).await {
                            Event::Read(result) => read = Some(result),
                            other => panic!("expected the read, got {other:?}"),
                        }
                    }
                    let read = read.expect("the handler read the body");
                    assert!(read.is_err(), "the body did not fail: {read:?}");
                }
                return cause;
            }
        }
    }
}

fn head(length: usize) -> String {
    format!("POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {length}\r\n\r\n")
}

/// Sends a head declaring [`LENGTH`] bytes and [`SENT`] of them, waits until the handler reads,
/// and hangs up: a plain close (FIN), or a reset (RST) when `reset`.
async fn hang_up_mid_body(server: &Server, events: &mut Events, reset: bool) {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head(LENGTH).as_bytes()).await.unwrap();
    stream.write_all(&[b'u'; SENT]).await.unwrap();
    assert!(matches!(next(events).await, Event::Reading));
    if reset {
        stream.set_zero_linger().unwrap();
    }
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_mid_body_cancels_the_request_with_dropped() {
    let (server, mut events) = minimal_server().await;
    hang_up_mid_body(&server, &mut events, false).await;
    assert_eq!(watched(&mut events, true).await, Some(CancelCause::Dropped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resets_mid_body_cancels_the_request_with_dropped() {
    let (server, mut events) = minimal_server().await;
    hang_up_mid_body(&server, &mut events, true).await;
    assert_eq!(watched(&mut events, true).await, Some(CancelCause::Dropped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_whole_stack_a_client_that_hangs_up_mid_body_is_cancelled_with_dropped() {
    let (server, mut events) = stack_server().await;
    for reset in [false, true] {
        hang_up_mid_body(&server, &mut events, reset).await;
        assert_eq!(
            watched(&mut events, true).await,
            Some(CancelCause::Dropped),
            "reset: {reset}"
        );
    }
}

/// [`SENT`] bytes, then an error: the HTTP/2 client resets the stream.
struct FailingBody {
    sent: bool,
}

impl Body for FailingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.sent {
            return Poll::Ready(Some(Err(io::Error::other("the client gives up"))));
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'u'; SENT])))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_reset_mid_body_cancels_the_request_with_dropped() {
    let (server, mut events) = minimal_server().await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::post(server.url("/upload"))
        .header("content-length", LENGTH)
        .body(FailingBody { sent: false })
        .unwrap();
    // The client sees its own body's error or the reset stream; the server's view is checked.
    let _ = tokio::time::timeout(BOUND, sender.send_request(req)).await;
    assert!(matches!(next(&mut events).await, Event::Reading));
    assert_eq!(watched(&mut events, true).await, Some(CancelCause::Dropped));
    // The connection itself stays up: only the stream was reset.
    assert!(!conn.is_finished());
    conn.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_upload_is_answered_and_never_cancelled() {
    for (server, mut events) in [minimal_server().await, stack_server().await] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(head(LENGTH).as_bytes()).await.unwrap();
        stream.write_all(&[b'u'; SENT]).await.unwrap();
        assert!(matches!(next(&mut events).await, Event::Reading));
        // The rest, after the handler started reading.
        stream.write_all(&[b'u'; LENGTH - SENT]).await.unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&answer).ends_with("\r\n\r\n1000") {
            let n = tokio::time::timeout(BOUND, stream.read(&mut chunk))
                .await
                .expect("no answer in time")
                .unwrap();
            assert_ne!(n, 0, "closed early: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&chunk[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200 "));
        match next(&mut events).await {
            Event::Read(read) => assert_eq!(read, Ok(LENGTH)),
            other => panic!("expected the read, got {other:?}"),
        }
        assert_eq!(watched(&mut events, false).await, None);
    }
}
