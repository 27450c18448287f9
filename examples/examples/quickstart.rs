//! The quickstart: an axum app behind the whole std stack — request id, `Server-Timing`, one
//! access record per request, panic recovery, a budget — plus Bearer auth on one route, with a
//! graceful shutdown.
//!
//! Run it with `cargo run -p middleware-examples --example quickstart` and paste the curl lines
//! it prints (to stderr). It serves on 127.0.0.1:3000 (`PORT` overrides):
//!
//! - `GET /` answers 200;
//! - `GET /private` wants `Authorization: Bearer <token>` (the token is `DEMO_TOKEN`, default
//!   `demo-token`) and greets the principal the auth layer put into the request's context;
//!   anything else gets 401 with a `WWW-Authenticate: Bearer realm="quickstart"` challenge;
//! - `GET /slow` sleeps 5 s under the 1 s budget: 503 after about a second, and its access
//!   record says `outcome="timeout"` and `cancel_cause="deadline"`;
//! - `GET /panic` panics: 500 whose problem-details body carries the request id, and the server
//!   keeps serving;
//! - anything else is a 404 rendered as RFC 9457 problem details.
//!
//! Every response, the ones the layers make included, carries `x-request-id` and
//! `server-timing`. Every request writes exactly one access record to stdout: a human-readable
//! line, or with `LOG_FORMAT=json` one JSON object per line, and then nothing else is written to
//! stdout. The banner, panic reports and shutdown notes go to stderr. Neither query strings nor
//! credentials are logged, and the banner never prints the token.
//!
//! Ctrl-C (or SIGTERM) stops accepting connections, lets requests in flight finish or run into
//! their budget, and exits within the budget plus one second.
// An example talks to its user: the banner and the shutdown notes go to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{io, net::SocketAddr, time::Duration};

use axum::{
    Router, body::Body, extract::ConnectInfo, middleware::map_request, response::Response,
    routing::get,
};
use http::{Request, StatusCode};
use middleware_std::{
    Context, Error,
    auth::{AuthLayer, Principal},
    catch_panic::{self, CatchPanicLayer},
    handler,
    logging::LogLayer,
    request_id::SetRequestIdLayer,
    timeout::TimeoutLayer,
    timing::ServerTimingLayer,
};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceBuilder;
use tracing_subscriber::{
    Layer as _, filter::Targets, fmt, layer::SubscriberExt, util::SubscriberInitExt,
};

/// Every request's budget: the longest a request may take, and so the longest a graceful
/// shutdown waits for one.
const BUDGET: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> io::Result<()> {
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json");
    init_logging(json);
    // Lets the panic log name the file and line, then prints the usual panic message (stderr).
    catch_panic::install_panic_hook();

    let port = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "PORT must be a port number")
        })?,
        Err(_) => 3000,
    };

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    print_banner(addr);

    // Outermost first. The request id is outermost, so every response carries it and every
    // layer inside finds it; timing and logging see the answers of the layers inside them
    // (a panic's 500, a timeout's 503, a 401), and the budget covers the handler.
    let app = routes().layer(
        ServiceBuilder::new()
            .layer(map_request(client_address))
            .layer(SetRequestIdLayer::new())
            .layer(ServerTimingLayer::new())
            .layer(LogLayer::new())
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::new(BUDGET)),
    );
    serve(listener, app).await
}

/// The routes. The std layers wrap the whole router in `main`; `/private` brings its own auth
/// layer through its handler attribute.
fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/private", get(private))
        .route("/slow", get(slow))
        .route("/panic", get(panics))
        .fallback(not_found)
}

async fn index() -> &'static str {
    "hello from middleware-std: try /private, /slow and /panic\n"
}

/// The bearer token: `DEMO_TOKEN`, or `demo-token`.
fn demo_token() -> String {
    std::env::var("DEMO_TOKEN").unwrap_or_else(|_| String::from("demo-token"))
}

/// Only callers with the token get in; the `auth` layer of the attribute puts the principal
/// into the context, and the macro checks at compile time that a layer provides it.
#[handler(auth = AuthLayer::bearer(demo_token(), Principal::new("demo-user").with_role("reader"))
    .with_realm("quickstart"))]
async fn private(principal: Principal) -> String {
    let roles: Vec<&str> = principal.roles().collect();
    format!("hello, {} (roles: {})\n", principal.id(), roles.join(", "))
}

/// Sleeps 5 s under the 1 s budget. At the deadline the timeout layer cancels the request's
/// context (cause `deadline`, which the access record reports), drops this future and answers
/// 503.
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "finally\n"
}

async fn panics() -> &'static str {
    panic!("the /panic route panics on purpose")
}

/// Unknown paths get problem details carrying the request id, like every error here.
async fn not_found(cx: Context) -> Response {
    cx.render_error(&Error::new(StatusCode::NOT_FOUND).with_detail("no such route"))
        .map(Body::from)
}

/// Access records (the `middleware_std::logging` target) go to stdout, human-readable or JSON;
/// everything else (panic reports, warnings) goes to stderr.
fn init_logging(json: bool) {
    let access = Targets::new().with_target("middleware_std::logging", tracing::Level::TRACE);
    let other = Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target(
            "middleware_std::logging",
            tracing::level_filters::LevelFilter::OFF,
        );
    let stdout = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .with_writer(io::stdout)
            .boxed()
    } else {
        fmt::layer()
            .with_target(false)
            .with_writer(io::stdout)
            .boxed()
    };
    tracing_subscriber::registry()
        .with(stdout.with_filter(access))
        .with(fmt::layer().with_writer(io::stderr).with_filter(other))
        .init();
}

fn print_banner(addr: SocketAddr) {
    let base = format!("http://{addr}");
    // The token is never printed: the curl line reads it from the shell.
    let bearer = r#"-H "Authorization: Bearer ${DEMO_TOKEN:-demo-token}""#;
    eprintln!("listening on {base} (Ctrl-C stops it gracefully)");
    eprintln!("  GET /          200               curl -i {base}/");
    eprintln!("  GET /private   200 with a token  curl -i {bearer} {base}/private");
    eprintln!("                 401 without       curl -i {base}/private");
    eprintln!("  GET /slow      503 after ~1 s    curl -i {base}/slow");
    eprintln!("  GET /panic     500, keeps going  curl -i {base}/panic");
    eprintln!("  anything else  404               curl -i {base}/nope");
    eprintln!("access records go to stdout (LOG_FORMAT=json for JSON lines)");
}

/// Serves `app` with `axum::serve` until Ctrl-C or SIGTERM, then shuts down gracefully: new
/// connections are refused, requests in flight finish (each within its budget), and the server
/// gives up on connections still open after the budget plus one second.
async fn serve(listener: TcpListener, app: Router) -> io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(wait_for(stopped.clone()));
    let limit = BUDGET + Duration::from_secs(1);
    let give_up = async {
        wait_for(stopped).await;
        eprintln!("shutting down: waiting for requests in flight");
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        result = server => result,
        () = give_up => {
            eprintln!("gave up on connections still open after {limit:?}");
            Ok(())
        }
    }
}

/// Completes once `stopped` turns true (or its sender is gone).
async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

/// The access log reads the client address from a plain `SocketAddr` extension; axum's
/// `ConnectInfo` wraps it.
async fn client_address(mut req: Request<Body>) -> Request<Body> {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(addr);
    }
    req
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                eprintln!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
