//! The server: hyper (HTTP/1.1) on 127.0.0.1, an ephemeral port, the std stack
//! ([`StackLayer`]: request id, access log, `Server-Timing`, panic recovery, budget) around a
//! router whose routes misbehave on purpose, with an [`AuthLayer`] on `/private` and a
//! request-body deadline on `/upload`.
//!
//! Server-side facts the client cannot see are counted here: admitted requests, handler
//! futures of `/slow` dropped (drop guards) and how late, cancellation causes seen by
//! `Context::cancelled()` watchers.

use std::{
    convert::Infallible,
    error::Error as StdError,
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    task::{Context as TaskContext, Poll, ready},
    time::{Duration, Instant},
};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use middleware_std::{
    CancelCause, Context, DropGuard, Error, RequestExt,
    auth::{AuthLayer, Principal},
    logging::LogLayer,
    stack::StackLayer,
    timeout::{RequestBodyTimeoutLayer, TimeoutBody, TimeoutLayer},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle, time::Sleep};
use tower::{Layer, ServiceExt, service_fn};

use super::{
    access::request_number,
    hostile::TOKEN,
    mix::{self, Route},
};

/// The text of every deliberate panic (the panic hook counts these instead of printing).
pub const PANIC_TEXT: &str = "reliability: deliberate panic";

/// Counters of what only the server sees.
#[derive(Debug)]
pub struct ServerStats {
    pub admitted: AtomicU64,
    pub slow_started: AtomicU64,
    pub slow_dropped: AtomicU64,
    pub slow_dropped_deadline: AtomicU64,
    pub slow_completed: AtomicU64,
    /// Largest lateness of a drop past the deadline, in µs, and drops later than the grace.
    pub slow_late_max_us: AtomicU64,
    pub slow_late_over: AtomicU64,
    /// Causes seen by the `cancelled()` watchers, per route: none, deadline, dropped, explicit.
    pub watched: [[AtomicU64; 4]; Route::ALL.len()],
    pub watchers_started: AtomicU64,
}

pub static STATS: ServerStats = ServerStats {
    admitted: AtomicU64::new(0),
    slow_started: AtomicU64::new(0),
    slow_dropped: AtomicU64::new(0),
    slow_dropped_deadline: AtomicU64::new(0),
    slow_completed: AtomicU64::new(0),
    slow_late_max_us: AtomicU64::new(0),
    slow_late_over: AtomicU64::new(0),
    watched: [const { [const { AtomicU64::new(0) }; 4] }; Route::ALL.len()],
    watchers_started: AtomicU64::new(0),
};

/// The inner service's error (the stack keeps the error type; the adapter to hyper renders it).
#[derive(Debug)]
pub struct AppError;

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deliberate inner service error")
    }
}

impl StdError for AppError {}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, AppError>> + Send>>;

fn route_of(cx: &Context) -> Option<Route> {
    cx.request_id()
        .and_then(|id| request_number(id.as_str()))
        .map(Route::of)
}

/// Spawns a watcher that waits for the request's cancellation (or for `done` to be dropped,
/// which the request's last owner holds) and records the cause under the request's route.
fn watch(cx: Context) -> oneshot::Sender<()> {
    let (done_tx, done_rx) = oneshot::channel::<()>();
    STATS.watchers_started.fetch_add(1, Relaxed);
    tokio::spawn(async move {
        let cause = tokio::select! {
            cause = cx.cancelled() => Some(cause),
            _ = done_rx => cx.cause(),
        };
        let column = match cause {
            None => 0,
            Some(CancelCause::Deadline) => 1,
            Some(CancelCause::Dropped) => 2,
            Some(_) => 3,
        };
        if let Some(route) = route_of(&cx) {
            STATS.watched[route.index()][column].fetch_add(1, Relaxed);
        }
    });
    done_tx
}

/// Serves the app on 127.0.0.1:0 on the current runtime. Returns the address and the accept
/// loop's handle (it never ends by itself).
pub async fn start() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");

    let private = AuthLayer::bearer(TOKEN, Principal::new("load-client").with_role("reader"))
        .with_realm("reliability")
        .layer(service_fn(private));
    let upload =
        RequestBodyTimeoutLayer::new(mix::BODY_IDLE, mix::BODY_TOTAL).layer(service_fn(upload));
    let router = service_fn(move |req: Request<Incoming>| -> BoxFuture {
        match req.uri().path() {
            "/ok" => Box::pin(async { Ok(Response::new(Body::from("ok"))) }),
            "/private" => {
                let res = private.clone().oneshot(req);
                Box::pin(async move { Ok(res.await?.map(Body::new)) })
            }
            "/upload" => {
                let res = upload.clone().oneshot(req);
                Box::pin(async move { Ok(res.await?.map(Body::new)) })
            }
            "/stream" => stream(req),
            "/slow" => Box::pin(slow(req)),
            "/hold" => Box::pin(hold(req)),
            "/panic/handler" => panic!("{PANIC_TEXT} in the handler call"),
            "/panic/poll" => Box::pin(async {
                tokio::task::yield_now().await;
                panic!("{PANIC_TEXT} in a later poll")
            }),
            "/panic/body" => Box::pin(async {
                Ok(Response::new(Body::new(PanicBody {
                    sent: false,
                    sleep: None,
                })))
            }),
            "/error" => Box::pin(async { Err(AppError) }),
            _ => {
                let cx = req.try_context().cloned().unwrap_or_default();
                Box::pin(async move {
                    let err = Error::new(StatusCode::NOT_FOUND).with_detail("no such route");
                    Ok(cx.render_error(&err).map(Body::from))
                })
            }
        }
    });
    let app = StackLayer::new(mix::BUDGET)
        .timeout(TimeoutLayer::new(mix::BUDGET).inbound_grpc_timeout())
        .log(LogLayer::new().log_headers(true))
        .layer(router);

    let handle = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    STATS.admitted.fetch_add(1, Relaxed);
                    req.extensions_mut().insert(peer);
                    let res = app.clone().oneshot(req);
                    async move {
                        if let Ok(res) = res.await {
                            Ok::<_, Infallible>(res.map(Body::new))
                        } else {
                            // What axum's `HandleErrorLayer` would do: the error becomes a 500.
                            let mut res = Response::new(Body::from("inner service error"));
                            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            Ok(res)
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, handle)
}

#[allow(clippy::needless_pass_by_value)] // a service fn owns its request
fn private(req: Request<Incoming>) -> BoxFuture {
    let who = req
        .try_context()
        .and_then(|cx| cx.get::<Principal>())
        .map(|p| p.id().to_owned());
    Box::pin(async move {
        let who = who.expect("the auth layer admitted the request with a principal");
        Ok(Response::new(Body::from(format!("hello {who}"))))
    })
}

fn upload(req: Request<TimeoutBody<Incoming>>) -> BoxFuture {
    let done = req.try_context().cloned().map(watch);
    Box::pin(async move {
        let _done = done;
        if let Ok(body) = req.into_body().collect().await {
            Ok(Response::new(Body::from(body.to_bytes().len().to_string())))
        } else {
            let mut res = Response::new(Body::from("incomplete body"));
            *res.status_mut() = StatusCode::BAD_REQUEST;
            Ok(res)
        }
    })
}

#[allow(clippy::needless_pass_by_value)] // a service fn owns its request
fn stream(req: Request<Incoming>) -> BoxFuture {
    let cx = req.try_context().cloned().unwrap_or_default();
    let done = watch(cx.clone());
    Box::pin(std::future::ready(Ok(Response::new(Body::new(
        StreamBody {
            guard: cx.drop_guard(),
            done,
            left: mix::CHUNKS,
            sleep: None,
        },
    )))))
}

/// Answers after 300 ms (well within the budget); the only clients of this route hang up
/// before that.
async fn hold(req: Request<Incoming>) -> Result<Response<Body>, AppError> {
    let _done = req.try_context().cloned().map(watch);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(Response::new(Body::from("held")))
}

/// Sleeps far past its budget; the probe counts how the future ends.
async fn slow(req: Request<Incoming>) -> Result<Response<Body>, AppError> {
    STATS.slow_started.fetch_add(1, Relaxed);
    let mut probe = SlowProbe {
        cx: req.try_context().cloned().unwrap_or_default(),
        completed: false,
    };
    tokio::time::sleep(mix::BUDGET * 5).await;
    probe.completed = true;
    Ok(Response::new(Body::from("too late")))
}

/// The drop guard of a `/slow` handler future.
struct SlowProbe {
    cx: Context,
    completed: bool,
}

impl Drop for SlowProbe {
    fn drop(&mut self) {
        if self.completed {
            STATS.slow_completed.fetch_add(1, Relaxed);
            return;
        }
        STATS.slow_dropped.fetch_add(1, Relaxed);
        if self.cx.cause() == Some(CancelCause::Deadline) {
            STATS.slow_dropped_deadline.fetch_add(1, Relaxed);
        }
        if let Some(deadline) = self.cx.deadline() {
            let late = Instant::now().saturating_duration_since(deadline);
            let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
            STATS.slow_late_max_us.fetch_max(us, Relaxed);
            if late > mix::SLOW_GRACE {
                STATS.slow_late_over.fetch_add(1, Relaxed);
            }
        }
    }
}

/// `left` chunks, one per millisecond. It holds a drop guard (so a client that hangs up
/// mid-body cancels the request with cause `dropped`, which the std stack's guards do not see
/// once the head is out) and the watcher's `done` sender; the guard is declared first, so it
/// fires before the watcher hears `done`.
struct StreamBody {
    guard: DropGuard,
    #[allow(dead_code)] // held for its drop
    done: oneshot::Sender<()>,
    left: u32,
    sleep: Option<Pin<Box<Sleep>>>,
}

static CHUNK_BYTES: [u8; mix::CHUNK] = [b'x'; mix::CHUNK];

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            this.guard.disarm();
            return Poll::Ready(None);
        }
        if let Some(sleep) = this.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
        }
        this.left -= 1;
        let next = tokio::time::Instant::now() + Duration::from_millis(1);
        match this.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().reset(next),
            None => this.sleep = Some(Box::pin(tokio::time::sleep_until(next))),
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK_BYTES)))))
    }
}

/// One chunk, then a panic a millisecond later (so hyper has flushed the head and the chunk:
/// the panic happens once the headers went out).
struct PanicBody {
    sent: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for PanicBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if !this.sent {
            this.sent = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))));
        }
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(1))));
        ready!(sleep.as_mut().poll(cx));
        panic!("{PANIC_TEXT} in the body stream")
    }
}
