//! The quickstart: a hyper server with middleware written against `middleware-core`.
//!
//! Run it with `cargo run -p middleware-examples --example quickstart`, then try the curl lines
//! it prints. It serves on 127.0.0.1:3000 (set `PORT` to change that):
//!
//! - `GET /` answers 200;
//! - `GET /slow` sleeps 5 s under a 1 s budget and answers 503 after about a second: the budget
//!   middleware races the handler against the context's cancellation;
//! - anything else is a 404 rendered as RFC 9457 problem details.
//!
//! Every request prints exactly one access line to stdout; the banner goes to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example talks to its user

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, server::conn::auto, service::TowerToHyperService};
use middleware_std::{
    CancelCause, Error, HookLayer, Middleware, MiddlewareLayer, Next, Outcome, ProblemDetails,
    Renderer, RequestExt,
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, service_fn};

/// One access line per request: method, path (never the query), status, duration, and why the
/// request was cancelled if it was.
struct AccessLog;

impl Middleware for AccessLog {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let cx = req.context().clone();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let res = next.run(req).await;
        let status = res.as_ref().map_or(500, |r| r.status().as_u16());
        let cause = cx.cause().map_or("-", CancelCause::as_str);
        println!(
            "{method} {} {status} {:.1}ms cancelled={cause}",
            path.escape_debug(),
            cx.elapsed().as_secs_f64() * 1000.0,
        );
        res
    }
}

/// Gives every request a budget and answers 503 when it runs out before the handler does.
struct Budget(Duration);

impl Middleware for Budget {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let cx = req.context().clone();
        cx.set_timeout(self.0);
        tokio::select! {
            res = next.run(req) => res,
            cause = cx.cancelled() => {
                let detail = format!("request cancelled: {cause}");
                let status = if cause == CancelCause::Deadline {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                Ok(Error::new(status).with_detail(detail).into_response(&cx))
            }
        }
    }
}

async fn route(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let cx = req.context().clone();
    let res = match req.uri().path() {
        "/" => Response::new(Full::new(Bytes::from_static(b"hello from middleware-core\n"))),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::new(Full::new(Bytes::from_static(b"finally\n")))
        }
        _ => cx
            .render_error(&Error::new(StatusCode::NOT_FOUND).with_detail("no such route"))
            .map(Full::new),
    };
    Ok(res)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;

    let app = ServiceBuilder::new()
        .layer(HookLayer::new(Renderer::new(ProblemDetails)))
        .layer(MiddlewareLayer::new(
            AccessLog.then(Budget(Duration::from_secs(1))),
        ))
        .service(service_fn(route));

    eprintln!("listening on http://{addr}");
    eprintln!("  GET /       curl -i http://{addr}/");
    eprintln!("  GET /slow   curl -i http://{addr}/slow      (503 after ~1 s)");
    eprintln!("  GET /nope   curl -i http://{addr}/nope      (404 problem details)");

    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let builder = auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {err}");
            }
        });
    }
}
