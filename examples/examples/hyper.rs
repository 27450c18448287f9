//! Plain hyper, no framework: the std stack around a `service_fn` router, served by hyper-util
//! (HTTP/1.1 and HTTP/2 on one port) with a graceful shutdown.
//!
//! Run it with `cargo run -p middleware-examples --example hyper` (127.0.0.1:3002, `PORT`
//! overrides) and try:
//!
//! ```text
//! curl -i localhost:3002/
//! curl -i --http2-prior-knowledge localhost:3002/
//! curl -i -H 'x-api-key: ops-key' localhost:3002/ops
//! curl -i -d 'hello' localhost:3002/echo
//! curl -i -H 'grpc-timeout: 100m' localhost:3002/slow   # the caller's 100 ms beat our 1 s
//! ```
//!
//! What it shows:
//!
//! - the std layers in `ServiceBuilder` around a `service_fn`, the request body's type changing
//!   on the way in (`TimeoutBody<Incoming>`, from the request-body deadline layer);
//! - per-route layers without a router: `/ops` is a second service with API-key auth in front,
//!   dispatched to from the `service_fn`;
//! - a caller shortening the budget with `grpc-timeout` (`inbound_grpc_timeout`);
//! - `Server-Timing` with a handler mark and `x-response-time`;
//! - hyper-util's `GracefulShutdown`: on Ctrl-C, no new connections, requests in flight finish
//!   (within their 1 s budget), then the process exits.
// An example talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use middleware_std::{
    Context, Error, RequestExt, ResponseBody,
    auth::{AuthLayer, Principal},
    catch_panic::CatchPanicLayer,
    logging::LogLayer,
    request_id::SetRequestIdLayer,
    timeout::{RequestBodyTimeoutLayer, TimeoutBody, TimeoutLayer},
    timing::ServerTimingLayer,
};
use tokio::net::TcpListener;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

const BUDGET: Duration = Duration::from_secs(1);

type Body = TimeoutBody<Incoming>;
/// Fixed bodies (`ResponseBody::full`) and the `/ops` service's body wrapped by its auth layer
/// share one type.
type Reply = Response<ResponseBody<Full<Bytes>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();

    let port = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(3002);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);

    let app = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new())
        .layer(ServerTimingLayer::new().response_time_header(true))
        .layer(LogLayer::new())
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::new(BUDGET).inbound_grpc_timeout())
        // Inside the budget: a client that stalls while sending its body gets 408.
        .layer(RequestBodyTimeoutLayer::idle(Duration::from_millis(500)))
        .service(service_fn(route));

    let graceful = GracefulShutdown::new();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    eprintln!("accept failed: {err}");
                    continue;
                }
            },
            _ = &mut ctrl_c => break,
        };
        // The access log reads the client address from a `SocketAddr` extension.
        let app = app.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(peer);
            app.clone().oneshot(req)
        });
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(err) = watcher.watch(conn).await {
                eprintln!("connection from {peer} ended: {err}");
            }
        });
    }

    drop(listener);
    eprintln!("shutting down: {} connection(s) open", graceful.count());
    let limit = BUDGET + Duration::from_secs(1);
    if tokio::time::timeout(limit, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("gave up on connections still open after {limit:?}");
    }
    Ok(())
}

/// The router: a `match` on the path.
async fn route(mut req: Request<Body>) -> Result<Reply, Infallible> {
    let cx = req.context().clone();
    let res = match req.uri().path() {
        "/" => Response::new(ResponseBody::full("hello from plain hyper\n")),
        "/ops" => {
            // A per-route layer: the auth layer wraps this route's own service.
            let ops = AuthLayer::api_key(
                HeaderName::from_static("x-api-key"),
                "ops-key",
                Principal::new("ops"),
            )
            .layer(service_fn(ops));
            return ops.oneshot(req).await;
        }
        "/echo" => {
            let started = tokio::time::Instant::now();
            match req.into_body().collect().await {
                Ok(body) => {
                    cx.mark("read_body", started.elapsed());
                    Response::new(ResponseBody::full(body.to_bytes()))
                }
                // The request-body layer answers 408 itself; this response is dropped.
                Err(_) => Response::new(ResponseBody::empty()),
            }
        }
        "/slow" => {
            let left = cx.remaining();
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::new(ResponseBody::full(format!(
                "done; the budget was {left:?}\n"
            )))
        }
        _ => problem(&cx, StatusCode::NOT_FOUND),
    };
    Ok(res)
}

async fn ops(req: Request<Body>) -> Result<Response<Full<Bytes>>, Infallible> {
    let cx = req.try_context().expect("the request-id layer made one");
    let who = cx.get::<Principal>().map_or("?", Principal::id);
    Ok(Response::new(Full::from(format!("hello {who}\n"))))
}

fn problem(cx: &Context, status: StatusCode) -> Reply {
    ResponseBody::response(cx.render_error(&Error::new(status)))
}
