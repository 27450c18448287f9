//! An outbound stack: hyper-util's client behind a request-id layer, a per-call timeout and
//! deadline propagation, calling a server started in the same process.
//!
//! Run it with `cargo run -p middleware-examples --example client`; it exits by itself. `main`
//! plays a service in the middle of handling a request: its [`Context`] has a request id and a
//! budget. It passes that context to each outgoing call (in the request's extensions), and the
//! outbound stack
//!
//! - forwards the request id (`SetRequestIdLayer` keeps the context's id and sets the header),
//! - caps the call (`TimeoutLayer::gateway`: 504 when the call takes too long),
//! - stamps what is left of the budget as `grpc-timeout` (`PropagateDeadlineLayer`), and does
//!   not send a call whose budget is already spent.
//!
//! The server accepts that header as its own, tighter budget (`inbound_grpc_timeout`), so the
//! output shows the budget shrinking across the hop: what the caller had, what it stamped, what
//! the server's handler saw. A handler that checks its budget can then refuse work it cannot
//! finish in time.
// An example talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use middleware_std::{
    Context, RequestExt, RequestId,
    request_id::SetRequestIdLayer,
    timeout::{PropagateDeadlineLayer, TimeoutLayer},
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let received = Arc::new(AtomicUsize::new(0));
    let addr = start_server(Arc::clone(&received)).await?;

    // The outbound stack, outermost first.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let outbound = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new())
        // Every call gets at most 2 s. Deadlines only tighten and the caller's context is shared,
        // so a cap shorter than the caller's budget would shorten the caller's deadline too.
        .layer(TimeoutLayer::gateway(Duration::from_secs(2)))
        .layer(PropagateDeadlineLayer::new())
        .map_request(|req: Request<Empty<Bytes>>| {
            let stamped = req.headers().get("grpc-timeout").cloned();
            println!("  client stamps    grpc-timeout: {stamped:?}");
            req
        })
        .service(client);

    // The request `main` is handling: an id, and 800 ms to answer.
    let cx = Context::new();
    cx.set_request_id(RequestId::try_from("checkout-42")?)
        .expect("a fresh context has no id");
    cx.set_timeout(Duration::from_millis(800));
    println!("caller: request id checkout-42, budget 800ms");

    // Some local work first: the budget is shared, so less is left for the call.
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("\n1. GET /report after 100 ms of local work");
    println!("  caller has       {:?} left", left(&cx));
    let res = outbound
        .clone()
        .oneshot(call(addr, "/report", &cx)?)
        .await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "  server answered  {status}: {}",
        String::from_utf8_lossy(&body).trim_end()
    );

    println!("\n2. GET /expensive (needs 1 s of budget)");
    let res = outbound
        .clone()
        .oneshot(call(addr, "/expensive", &cx)?)
        .await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "  server answered  {status}: {}",
        String::from_utf8_lossy(&body).trim_end()
    );

    println!("\n3. GET /report once the budget is spent");
    tokio::time::sleep(left(&cx)).await;
    let before = received.load(Ordering::SeqCst);
    let res = outbound.oneshot(call(addr, "/report", &cx)?).await?;
    let sent = received.load(Ordering::SeqCst) - before;
    println!(
        "  client answered  {} at once; requests that reached the server: {sent}",
        res.status()
    );
    Ok(())
}

/// An outgoing request carrying the caller's context.
fn call(addr: SocketAddr, path: &str, cx: &Context) -> Result<Request<Empty<Bytes>>, http::Error> {
    let mut req = Request::get(format!("http://{addr}{path}")).body(Empty::new())?;
    req.extensions_mut().insert(cx.clone());
    Ok(req)
}

fn left(cx: &Context) -> Duration {
    cx.remaining().unwrap_or_default()
}

/// A server that keeps a forwarded request id and accepts the caller's shorter budget.
async fn start_server(received: Arc<AtomicUsize>) -> std::io::Result<SocketAddr> {
    let app = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new())
        .layer(TimeoutLayer::new(Duration::from_secs(5)).inbound_grpc_timeout())
        .service(service_fn(move |req: Request<Incoming>| {
            received.fetch_add(1, Ordering::SeqCst);
            handle(req)
        }));

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                if let Err(err) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    eprintln!("connection error: {err}");
                }
            });
        }
    });
    Ok(addr)
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let cx = req.try_context().expect("the layers made a context");
    let id = cx.request_id().map_or("-", RequestId::as_str);
    let left = cx.remaining().unwrap_or_default();
    let text = match req.uri().path() {
        "/report" => {
            let header = req.headers().get("grpc-timeout");
            format!("request id {id}, got grpc-timeout {header:?}, handler has {left:?} left")
        }
        "/expensive" if left < Duration::from_secs(1) => {
            // Fail fast: starting work that cannot finish in time only wastes it.
            let body = format!("request id {id}: needs 1s, has {left:?}; not starting");
            let mut res = Response::new(Full::from(body));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Ok(res);
        }
        "/expensive" => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            format!("request id {id}: done")
        }
        _ => {
            let mut res = Response::new(Full::from("no such route"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            return Ok(res);
        }
    };
    Ok(Response::new(Full::from(text)))
}
