//! Shared by the `std_*` end-to-end tests: a hyper-util server on an ephemeral port that counts
//! its connections, hyper-util clients for HTTP/1.1 and HTTP/2, the std stack, the same routes
//! as an axum router and as a plain `service_fn`, and an access-log capture.
#![allow(dead_code, unreachable_pub)] // each test file uses a different part of this module

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use axum::{Extension, Router, routing};
use bytes::Bytes;
use http::{Request, Response, StatusCode, response::Parts};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use middleware_std::{
    CancelCause, Context, Error, RequestExt, ResponseBody,
    auth::{AuthLayer, Principal},
    catch_panic::CatchPanicLayer,
    logging::LogLayer,
    request_id::SetRequestIdLayer,
    timeout::{RequestBodyTimeoutLayer, TimeoutBody, TimeoutLayer},
    timing::ServerTimingLayer,
};
use tokio::{net::TcpListener, sync::mpsc};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The longest any single step may take before a test fails instead of hanging.
pub const BOUND: Duration = Duration::from_secs(10);

/// The whole-request budget of the std stack: `/slow` always runs into it.
pub const BUDGET: Duration = Duration::from_millis(150);

/// The request-body idle deadline of the std stack.
pub const BODY_IDLE: Duration = Duration::from_millis(100);

/// The bearer token of `/private` and `/admin`.
pub const TOKEN: &str = "s3cret-t0ken";

// ---------------------------------------------------------------------------------------------
// Servers

/// A server on 127.0.0.1 with an ephemeral port; aborted on drop.
pub struct Server {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `svc` over HTTP/1.1 and HTTP/2 (hyper-util's auto builder), putting the peer address
/// into each request's extensions.
pub async fn serve<S, B>(svc: S) -> Server
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let svc = svc.clone();
            let service = service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(peer);
                svc.clone().oneshot(req)
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    });
    Server {
        addr,
        accepted,
        task,
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

pub const PROTOS: [Proto; 2] = [Proto::Http1, Proto::Http2];

pub type ClientBody = BoxBody<Bytes, Infallible>;

/// hyper-util's pooled client; HTTP/2 with prior knowledge for [`Proto::Http2`].
pub fn client(proto: Proto) -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(proto == Proto::Http2)
        .build_http()
}

/// A bodiless request with a request id chosen by the test (so its access record can be found).
pub fn get(url: &str, id: &str) -> Request<ClientBody> {
    Request::get(url)
        .header("x-request-id", id)
        .body(empty())
        .unwrap()
}

pub fn empty() -> ClientBody {
    Full::new(Bytes::new()).boxed()
}

/// Sends `req` and reads the whole response, within [`BOUND`].
pub async fn send(
    client: &Client<HttpConnector, ClientBody>,
    req: Request<ClientBody>,
) -> (Parts, Bytes) {
    let res = tokio::time::timeout(BOUND, client.request(req))
        .await
        .expect("no response in time")
        .expect("transport error");
    let (parts, body) = res.into_parts();
    let body = tokio::time::timeout(BOUND, body.collect())
        .await
        .expect("no body in time")
        .expect("body error")
        .to_bytes();
    (parts, body)
}

/// A unique request id per call: `t<counter>-<label>`; no id is a prefix of another.
pub fn unique_id(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("t{:05}-{label}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// A request body whose frames the test sends, so it can stall on purpose.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

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

// ---------------------------------------------------------------------------------------------
// The std stack and the two apps

/// The std stack in the recommended order, outermost first, around `inner`.
pub fn std_stack<S, B>(
    inner: S,
) -> impl Service<
    Request<Incoming>,
    Response = Response<impl Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static
where
    S: Service<Request<TimeoutBody<Incoming>>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::new())
        .layer(ServerTimingLayer::new())
        .layer(LogLayer::new())
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::new(BUDGET).inbound_grpc_timeout())
        .layer(RequestBodyTimeoutLayer::idle(BODY_IDLE))
        .service(inner)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    Axum,
    Hyper,
}

pub const APPS: [App; 2] = [App::Axum, App::Hyper];

/// What handlers report to the test: the request id and the cancellation cause seen when the
/// `/slow` handler's future was dropped.
pub type Dropped = mpsc::UnboundedReceiver<(String, Option<CancelCause>)>;

#[derive(Clone)]
struct Probe(mpsc::UnboundedSender<(String, Option<CancelCause>)>);

/// Reports the context's cancellation cause when the handler future holding it is dropped.
struct ReportOnDrop {
    cx: Context,
    probe: Probe,
}

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        let id = self.cx.request_id().map(|id| id.as_str().to_owned());
        let _ = self.probe.0.send((id.unwrap_or_default(), self.cx.cause()));
    }
}

/// Starts `app` behind the std stack.
pub async fn start(app: App) -> (Server, Dropped) {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe(tx);
    let server = match app {
        App::Axum => serve(std_stack(axum_app(probe))).await,
        App::Hyper => serve(std_stack(hyper_app(probe))).await,
    };
    (server, rx)
}

fn private_auth() -> AuthLayer<middleware_std::auth::Bearer> {
    AuthLayer::bearer(TOKEN, Principal::new("tester").with_role("reader")).with_realm("e2e")
}

fn greeting(cx: &Context) -> String {
    let who = cx.get::<Principal>().map_or("nobody", Principal::id);
    format!("hello {who}")
}

fn slow_work(cx: Context, probe: Probe) -> impl Future<Output = String> {
    let guard = ReportOnDrop { cx, probe };
    async move {
        tokio::time::sleep(BOUND).await;
        drop(guard);
        String::from("too late")
    }
}

fn problem(cx: &Context, status: StatusCode) -> Response<Bytes> {
    cx.render_error(&Error::new(status).with_detail("no such route"))
}

async fn panics() -> &'static str {
    panic!("handler panicked on purpose")
}

/// The routes as an axum router; per-route auth with `MethodRouter::layer`.
fn axum_app(probe: Probe) -> Router {
    Router::new()
        .route(
            "/ok",
            routing::get(|Extension(cx): Extension<Context>| async move {
                cx.mark("handler", Duration::from_millis(2));
                "ok"
            }),
        )
        .route(
            "/private",
            routing::get(|Extension(cx): Extension<Context>| async move { greeting(&cx) })
                .layer(private_auth().require_role("reader")),
        )
        .route(
            "/admin",
            routing::get(|Extension(cx): Extension<Context>| async move { greeting(&cx) })
                .layer(private_auth().require_role("admin")),
        )
        .route(
            "/slow",
            routing::get(move |Extension(cx): Extension<Context>| slow_work(cx, probe.clone())),
        )
        .route("/panic", routing::get(panics))
        .route("/echo", routing::post(|body: Bytes| async move { body }))
        .fallback(|Extension(cx): Extension<Context>| async move {
            problem(&cx, StatusCode::NOT_FOUND).map(axum::body::Body::from)
        })
}

type HyperReply = Response<ResponseBody<Full<Bytes>>>;

/// The same routes as a plain `service_fn`; per-route auth by wrapping a route's service.
fn hyper_app(
    probe: Probe,
) -> impl Service<
    Request<TimeoutBody<Incoming>>,
    Response = HyperReply,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(move |mut req: Request<TimeoutBody<Incoming>>| {
        let probe = probe.clone();
        async move {
            let cx = req.context().clone();
            let text = |text: String| Response::new(ResponseBody::full(text));
            let greet = service_fn(|req: Request<TimeoutBody<Incoming>>| async move {
                let cx = req.try_context().expect("context").clone();
                Ok::<_, Infallible>(Response::new(Full::from(greeting(&cx))))
            });
            let res = match (req.method().as_str(), req.uri().path()) {
                ("GET", "/ok") => {
                    cx.mark("handler", Duration::from_millis(2));
                    text("ok".into())
                }
                ("GET", "/private") => {
                    let svc = private_auth().require_role("reader").layer(greet);
                    return svc.oneshot(req).await;
                }
                ("GET", "/admin") => {
                    let svc = private_auth().require_role("admin").layer(greet);
                    return svc.oneshot(req).await;
                }
                ("GET", "/slow") => text(slow_work(cx, probe).await),
                ("GET", "/panic") => panic!("handler panicked on purpose"),
                ("POST", "/echo") => match req.into_body().collect().await {
                    Ok(body) => Response::new(ResponseBody::full(body.to_bytes())),
                    Err(_) => Response::new(ResponseBody::empty()),
                },
                _ => ResponseBody::response(problem(&cx, StatusCode::NOT_FOUND)),
            };
            Ok(res)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Access-log capture

/// Everything the global subscriber wrote, for this test binary.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer(Arc::clone(&buffer));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buffer
    })
}

/// Installs the capturing subscriber (once per test binary); call before the first request.
pub fn capture_logs() {
    log_buffer();
}

/// Everything captured so far.
pub fn all_logs() -> String {
    let bytes = log_buffer().lock().unwrap().clone();
    String::from_utf8(bytes).expect("the formatter writes UTF-8")
}

/// The captured access records (`request finished` events) of the request with id `id`.
fn records_of(id: &str) -> Vec<String> {
    let field = format!("request_id={id}");
    all_logs()
        .lines()
        .filter(|line| line.contains("request finished"))
        .filter(|line| {
            line.match_indices(&field)
                .any(|(at, _)| matches!(line.as_bytes().get(at + field.len()), Some(b' ' | b'}')))
        })
        .map(str::to_owned)
        .collect()
}

/// The access record of the request with id `id`, waiting (within [`BOUND`]) for the server to
/// write it: it is written once the response body has been sent, which may be just after the
/// client has read it. Panics unless there is exactly one.
pub async fn access_record(id: &str) -> String {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let lines = records_of(id);
        match lines.len() {
            0 if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            1 => return lines.into_iter().next().unwrap(),
            n => panic!("{n} access records for {id}: {lines:#?}"),
        }
    }
}

/// How many access records mention request id `id`; call it once the test is done, to prove
/// that no second record followed the first.
pub fn access_records(id: &str) -> usize {
    records_of(id).len()
}

#[derive(Clone)]
struct Writer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
