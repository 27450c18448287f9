//! End to end over real TCP on 127.0.0.1 (ephemeral ports): streaming through every adapter
//! without buffering, and client disconnects firing the context's cancellation with cause
//! `dropped`.
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use middleware_core::{
    CancelCause, EnsureContext, HookLayer, Middleware, MiddlewareLayer, Next, Outcome, RequestExt,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};
use tower::{ServiceBuilder, service_fn};

/// A bound on every wait: a broken promise fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(10);

/// A response body fed chunk by chunk from a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// Passes through; stamps a header (an around-style middleware in the stack).
struct Stamp;

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let mut res = next.run(req).await?;
        res.headers_mut()
            .insert("x-stamp", http::HeaderValue::from_static("1"));
        Ok(res)
    }
}

/// Serves `svc` on an ephemeral port until the returned handle is dropped or aborted.
async fn serve<S, B>(svc: S) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_arrives_chunk_by_chunk_through_every_adapter() {
    // The handler hands its chunk sender to the test, which sends chunk n+1 only after the
    // client received chunk n: any layer that buffered the body would deadlock (and time out).
    let (senders_tx, mut senders_rx) = mpsc::channel::<mpsc::Sender<Bytes>>(4);
    let app = ServiceBuilder::new()
        .layer(HookLayer::new(EnsureContext))
        .layer(MiddlewareLayer::new(Stamp.then(Stamp)))
        .layer(HookLayer::new(()))
        .service(service_fn(move |_: Request<Incoming>| {
            let senders_tx = senders_tx.clone();
            async move {
                let (tx, rx) = mpsc::channel(1);
                senders_tx.send(tx).await.unwrap();
                Ok::<_, Infallible>(Response::new(ChannelBody(rx)))
            }
        }));
    let (addr, server) = serve(app).await;

    for http2 in [false, true] {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build_http::<Empty<Bytes>>();
        let request = client.request(
            Request::get(format!("http://{addr}/stream"))
                .body(Empty::new())
                .unwrap(),
        );
        let (res, chunks) = tokio::join!(
            async { tokio::time::timeout(BOUND, request).await.unwrap().unwrap() },
            async {
                tokio::time::timeout(BOUND, senders_rx.recv())
                    .await
                    .unwrap()
                    .unwrap()
            },
        );
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-stamp"], "1");
        let mut body = res.into_body();
        for i in 0..3 {
            let chunk = Bytes::from(format!("chunk {i}\n"));
            chunks.send(chunk.clone()).await.unwrap();
            let frame = tokio::time::timeout(BOUND, body.frame())
                .await
                .expect("chunk not delivered before the next one was produced")
                .unwrap()
                .unwrap();
            assert_eq!(frame.into_data().unwrap(), chunk);
        }
        drop(chunks);
        // The end of stream may come as an empty final frame before `None`.
        while let Some(frame) = tokio::time::timeout(BOUND, body.frame()).await.unwrap() {
            let frame = frame.unwrap();
            assert!(
                frame.data_ref().is_none_or(Bytes::is_empty),
                "unexpected frame {frame:?}"
            );
        }
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_request_cancels_with_dropped_and_stops_the_work() {
    let (report_tx, mut report_rx) = mpsc::channel::<CancelCause>(1);
    let work_done = Arc::new(Mutex::new(0u32));
    let app = ServiceBuilder::new()
        .layer(HookLayer::new(EnsureContext))
        .layer(MiddlewareLayer::new(Stamp))
        .service(service_fn({
            let work_done = Arc::clone(&work_done);
            move |mut req: Request<Incoming>| {
                let cx = req.context().clone();
                let report_tx = report_tx.clone();
                let work_done = Arc::clone(&work_done);
                // Spawned work: ticks until the request is cancelled.
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            cause = cx.cancelled() => {
                                report_tx.send(cause).await.unwrap();
                                return;
                            }
                            () = tokio::time::sleep(Duration::from_millis(5)) => {
                                *work_done.lock().unwrap() += 1;
                            }
                        }
                    }
                });
                std::future::pending::<Result<Response<Empty<Bytes>>, Infallible>>()
            }
        }));
    let (addr, server) = serve(app).await;

    let (started_tx, started_rx) = oneshot::channel::<()>();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // Let the handler start its work, then hang up.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _ = started_tx.send(());
    });
    started_rx.await.unwrap();
    drop(stream);

    let cause = tokio::time::timeout(BOUND, report_rx.recv())
        .await
        .expect("cancellation did not fire after the client left")
        .unwrap();
    assert_eq!(cause, CancelCause::Dropped);
    let ticks = *work_done.lock().unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        *work_done.lock().unwrap(),
        ticks,
        "the work kept going after cancellation"
    );
    server.abort();
}
