//! The outbound stack: an inbound request whose handler calls a flaky upstream through retries,
//! a per-attempt timeout, a circuit breaker, lifecycle timings and redacted dumps.
//!
//! Run it with `cargo run -p middleware-examples --example client`; it exits by itself in about
//! a second. It starts two servers on 127.0.0.1 (ephemeral ports):
//!
//! - an **upstream** that misbehaves on purpose: `/flaky` answers `503` twice, then `200`;
//!   `/slow` takes 2 s; `/down` always answers `500`;
//! - a **front** server (the service you write): `Server-Timing` on the way out, and a handler
//!   for `GET /checkout` that calls the upstream through the outbound stack, outermost first:
//!
//!   1. `RetryLayer`: idempotent calls retried on `502`/`503`/`504` and transport errors, with
//!      jittered backoff, within the caller's deadline and a shared retry budget (an open
//!      breaker is not worth retrying: the example's policy says so);
//!   2. `CallTimeoutLayer`: each attempt capped at 300 ms in a child scope, so a capped attempt
//!      never shortens or cancels the inbound request;
//!   3. `BreakerLayer`: three consecutive failures open the circuit, and an open circuit answers
//!      at once without touching the upstream;
//!   4. `LifecycleLayer` over hyper-util's client built with a `TimedConnector`: per attempt, a
//!      new or reused connection, and the time to write, to the first byte and to the body's
//!      end, as `Server-Timing` marks and through a callback that prints them;
//!   5. `DumpLayer`: each attempt's request and response heads, redacted (the call carries an
//!      `authorization` header and an `api_key` query parameter, which never reach the output).
//!
//! `main` then sends one request to the front server and prints its answer: the handler's
//! report of what happened to each call, and the `Server-Timing` header with the outbound
//! marks. The per-attempt lines (`attempt`, `dump`) are printed as they happen.
// An example talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    convert::Infallible,
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use middleware_std::{
    BoxError, Context, RequestExt,
    breaker::{BreakerConfig, BreakerLayer, BreakerOpenError, CircuitBreaker, Transition},
    call_timeout::{CallTimeoutError, CallTimeoutLayer},
    dump::{DumpLayer, Redaction},
    lifecycle::{ConnectionKind, LifecycleLayer, TimedConnector, Timings},
    retry::{Backoff, RetryLayer},
    timing::ServerTimingLayer,
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneSyncService};
use tracing_subscriber::{
    Layer as _, filter::filter_fn, layer::SubscriberExt, util::SubscriberInitExt,
};

/// The credential the front server sends upstream; the dumps must never show it.
const SECRET: &str = "sk_live_9fQ2xR7bT4mW8kZ1";

type Outbound = BoxCloneSyncService<Request<Empty<Bytes>>, Response<Bytes>, BoxError>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The dumps are `DEBUG` events of `middleware_std::dump`; print those, and nothing else.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stdout)
                .with_target(false)
                .without_time()
                .with_filter(filter_fn(|meta| meta.target() == "middleware_std::dump")),
        )
        .init();

    let hits = Arc::new(AtomicUsize::new(0));
    let upstream = serve(upstream(Arc::clone(&hits))).await?;
    let front = serve(front(outbound(), upstream, hits)).await?;
    println!("upstream on {upstream}, front server on {front}\n");

    let res = Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>()
        .get(format!("http://{front}/checkout").parse()?)
        .await?;
    let status = res.status();
    let timing = res
        .headers()
        .get("server-timing")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await?.to_bytes();
    println!("\nGET /checkout answered {status}");
    print!("{}", String::from_utf8_lossy(&body));
    println!("server-timing: {timing}");
    Ok(())
}

/// The outbound stack around hyper-util's client, outermost first.
fn outbound() -> Outbound {
    let breaker = CircuitBreaker::new(
        BreakerConfig::new()
            .consecutive_failures(3)
            .cool_down(Duration::from_secs(30)),
    )
    .on_state_change(|_key: &str, change: Transition| {
        println!("  breaker: {:?} -> {:?}", change.from, change.to);
    });
    let client = Client::builder(TokioExecutor::new())
        .build::<_, Empty<Bytes>>(TimedConnector::new(HttpConnector::new()));
    let stack = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(Backoff::new(
                    Duration::from_millis(10),
                    Duration::from_millis(50),
                ))
                .policy(
                    |_req: &Request<Empty<Bytes>>, outcome: Result<&Response<_>, &BoxError>| {
                        match outcome {
                            // An open circuit refuses at once: retrying it only spends the budget.
                            Err(err) => !err.is::<BreakerOpenError>(),
                            Ok(res) => matches!(
                                res.status(),
                                StatusCode::BAD_GATEWAY
                                    | StatusCode::SERVICE_UNAVAILABLE
                                    | StatusCode::GATEWAY_TIMEOUT
                            ),
                        }
                    },
                ),
        )
        .layer(CallTimeoutLayer::new(Duration::from_millis(300)))
        .layer(BreakerLayer::new(breaker))
        .layer(LifecycleLayer::new().on_timings(print_timings))
        .layer(
            DumpLayer::new()
                .label("upstream")
                .redaction(Redaction::new().query_key("api_key")),
        )
        .service(client)
        // Collect each answer, so the timings and the dump see the whole body.
        .and_then(collect);
    BoxCloneSyncService::new(stack)
}

/// Reads a whole response body.
async fn collect<B>(res: Response<B>) -> Result<Response<Bytes>, BoxError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = res.into_parts();
    let body = body.collect().await.map_err(Into::into)?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// The lifecycle callback: one line per attempt.
fn print_timings(t: &Timings) {
    if t.first_byte().is_none() {
        println!("  attempt: no response (failed, or given up by the timeout)");
        return;
    }
    let mut line = String::from("  attempt:");
    match t.connection() {
        ConnectionKind::New { connect } => {
            let _ = write!(line, " new connection (connect {})", ms(connect));
        }
        ConnectionKind::Reused => line.push_str(" reused connection"),
        _ => line.push_str(" unknown connection"),
    }
    if let Some(wrote) = t.wrote_request() {
        let _ = write!(line, ", wrote {}", ms(wrote));
    }
    if let Some(first) = t.first_byte() {
        let _ = write!(line, ", first byte {}", ms(first));
    }
    if let Some(end) = t.body_end() {
        let _ = write!(line, ", body end {}", ms(end));
    }
    println!("{line}");
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// The front server: `Server-Timing` outside, the handler inside.
fn front(
    outbound: Outbound,
    upstream: SocketAddr,
    hits: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = BoxError> + Send + use<>>,
    Error = Infallible,
    Future = impl Send + use<>,
> + Clone
+ Send
+ use<> {
    ServiceBuilder::new()
        .layer(ServerTimingLayer::new())
        .service(service_fn(move |req: Request<Incoming>| {
            let cx = req
                .try_context()
                .expect("the timing layer made one")
                .clone();
            let (outbound, hits) = (outbound.clone(), Arc::clone(&hits));
            async move {
                cx.set_timeout(Duration::from_secs(5));
                let report = checkout(&outbound, upstream, &hits, &cx).await;
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(report)))
            }
        }))
}

/// The handler's work: five calls, each through the whole outbound stack.
async fn checkout(
    outbound: &Outbound,
    upstream: SocketAddr,
    hits: &AtomicUsize,
    cx: &Context,
) -> String {
    let mut report = String::new();
    let calls = [
        ("/flaky", "answers 503 twice, then 200"),
        ("/slow", "takes 2 s; each attempt is capped at 300 ms"),
        ("/down", "always 500"),
        ("/down", "always 500"),
        ("/down", "always 500"),
        ("/down", "the circuit is open now"),
    ];
    for (i, (path, what)) in calls.into_iter().enumerate() {
        println!("call {}: GET {path} ({what})", i + 1);
        let before = hits.load(Ordering::SeqCst);
        let started = Instant::now();
        let outcome = outbound.clone().oneshot(call(upstream, path, cx)).await;
        let reached = hits.load(Ordering::SeqCst) - before;
        let took = ms(started.elapsed());
        let result = match outcome {
            Ok(res) => format!("{} {}", res.status(), String::from_utf8_lossy(res.body())),
            Err(err) if err.is::<CallTimeoutError>() => format!("timed out ({err})"),
            Err(err) if err.is::<BreakerOpenError>() => format!("refused at once ({err})"),
            Err(err) => format!("error: {err}"),
        };
        let _ = writeln!(
            report,
            "call {}: GET {path} -> {result} in {took}; attempts that reached the upstream: {reached}",
            i + 1,
        );
    }
    let left = cx.remaining().unwrap_or_default();
    let _ = writeln!(
        report,
        "the inbound request kept its own budget: {} of 5s left, cancelled: {}",
        if left > Duration::from_secs(3) {
            "more than 3s"
        } else {
            "less than 3s"
        },
        cx.is_cancelled(),
    );
    report
}

/// An outgoing call carrying the inbound request's context, with a credential in a header and
/// in the query (the dump shows neither).
fn call(upstream: SocketAddr, path: &str, cx: &Context) -> Request<Empty<Bytes>> {
    let mut req = Request::get(format!("http://{upstream}{path}?api_key={SECRET}&page=1"))
        .header("authorization", format!("Bearer {SECRET}"))
        .body(Empty::new())
        .expect("a valid request");
    req.extensions_mut().insert(cx.clone());
    req
}

/// The upstream: flaky, slow or down, depending on the path. Counts every request it receives.
fn upstream(
    hits: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send + use<>,
> + Clone
+ Send
+ use<> {
    let flaky = Arc::new(AtomicUsize::new(0));
    service_fn(move |req: Request<Incoming>| {
        hits.fetch_add(1, Ordering::SeqCst);
        let flaky = Arc::clone(&flaky);
        async move {
            let (status, body) = match req.uri().path() {
                "/flaky" if flaky.fetch_add(1, Ordering::SeqCst) < 2 => {
                    (StatusCode::SERVICE_UNAVAILABLE, "busy")
                }
                "/flaky" => (StatusCode::OK, "order placed"),
                "/slow" => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    (StatusCode::OK, "too late")
                }
                "/down" => (StatusCode::INTERNAL_SERVER_ERROR, "down"),
                _ => (StatusCode::NOT_FOUND, "no such route"),
            };
            let mut res = Response::new(Full::from(body));
            *res.status_mut() = status;
            Ok::<_, Infallible>(res)
        }
    })
}

/// Serves `svc` on an ephemeral port of 127.0.0.1 until the process exits.
async fn serve<S, B>(svc: S) -> std::io::Result<SocketAddr>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
