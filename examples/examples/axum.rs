//! An axum app: plain async handlers with state, std layers for the whole router and for single
//! routes, and a tower-http layer in the same stack.
//!
//! Run it with `cargo run -p middleware-examples --example axum` (127.0.0.1:3001, `PORT`
//! overrides) and try:
//!
//! ```text
//! curl -i localhost:3001/notes
//! curl -i -H 'Authorization: Bearer writer-token' -d 'buy milk' localhost:3001/notes
//! curl -i -u admin:admin-password localhost:3001/admin/stats
//! curl -i localhost:3001/report          # 503 after 200 ms: its own, tighter budget
//! ```
//!
//! What it shows:
//!
//! - global layers around the router: request id, `Server-Timing` with per-layer times, the
//!   access log (fed the client address from axum's `ConnectInfo`), panic recovery and a 2 s
//!   budget, with tower-http's `SetResponseHeaderLayer` among them;
//! - per-route layers: Bearer auth with a required role on `POST /notes` only
//!   (`MethodRouter::layer`), Basic auth on a nested `/admin` router (`Router::route_layer`),
//!   and a 200 ms budget on `/report` that tightens the global one (deadlines only tighten);
//! - state (`State<AppState>`) next to the request's context (the `Context` extractor): handlers
//!   read the principal from it and record `Server-Timing` marks on it;
//! - graceful shutdown on Ctrl-C with `axum::serve`.
//!
//! The credentials are hard-coded to keep the example short; a real app reads them from its
//! configuration.
// An example talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::map_request,
    routing::get,
};
use middleware_std::{
    Context,
    auth::{AuthLayer, Principal},
    catch_panic::CatchPanicLayer,
    logging::LogLayer,
    request_id::SetRequestIdLayer,
    timeout::TimeoutLayer,
    timing::ServerTimingLayer,
};
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

/// What the handlers share.
#[derive(Clone, Default)]
struct AppState {
    notes: Arc<Mutex<Vec<String>>>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();

    let port = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(3001);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);

    let app = app().into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // Every request has a budget, so the requests in flight finish within 2 s.
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("shutting down");
        })
        .await
}

/// The global layers, outermost first, around the whole router: every route and the 404
/// fallback.
fn app() -> Router {
    routes().layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new())
            // A tower-http layer among ours.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(ServerTimingLayer::new().per_layer_times(true))
            .layer(map_request(client_address))
            .layer(LogLayer::new())
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::new(Duration::from_secs(2))),
    )
}

/// The routes, with the per-route layers.
fn routes() -> Router {
    let writers = AuthLayer::bearer("writer-token", Principal::new("ci").with_role("writer"))
        .with_realm("notes")
        .require_role("writer");
    let admins = AuthLayer::basic("admin", "admin-password")
        .with_user_as(
            "auditor",
            "auditor-password",
            Principal::new("auditor").with_role("audit"),
        )
        .with_realm("admin");

    let admin = Router::new()
        .route("/stats", get(stats))
        // Every route of this router, added above, needs Basic credentials.
        .route_layer(admins);

    Router::new()
        // Reading is public; writing needs a writer's token.
        .route(
            "/notes",
            get(list_notes).merge(axum::routing::post(add_note).layer(writers)),
        )
        .route(
            "/report",
            // Tighter than the global 2 s: the earliest deadline wins.
            get(report).layer(TimeoutLayer::new(Duration::from_millis(200))),
        )
        .nest("/admin", admin)
        .with_state(AppState::default())
}

/// The access log reads the client address from a plain `SocketAddr` extension.
async fn client_address(ConnectInfo(addr): ConnectInfo<SocketAddr>, mut req: Request) -> Request {
    req.extensions_mut().insert(addr);
    req
}

async fn list_notes(State(state): State<AppState>) -> String {
    let notes = state
        .notes
        .lock()
        .expect("no panics while the lock is held");
    if notes.is_empty() {
        return String::from("no notes yet\n");
    }
    notes.join("\n") + "\n"
}

async fn add_note(
    State(state): State<AppState>,
    cx: Context,
    note: String,
) -> (StatusCode, String) {
    let author = cx.get::<Principal>().map_or("?", Principal::id).to_owned();
    let started = tokio::time::Instant::now();
    let count = {
        let mut notes = state
            .notes
            .lock()
            .expect("no panics while the lock is held");
        notes.push(format!("{author}: {}", note.trim()));
        notes.len()
    };
    // Shows up in the `Server-Timing` header next to `total` and the `mw.*` layer times.
    cx.mark("store", started.elapsed());
    (StatusCode::CREATED, format!("note {count} saved\n"))
}

async fn stats(State(state): State<AppState>, cx: Context) -> String {
    let who = cx.get::<Principal>().map_or("?", Principal::id);
    let notes = state
        .notes
        .lock()
        .expect("no panics while the lock is held")
        .len();
    format!("hello {who}: {notes} notes\n")
}

/// Takes longer than its route's 200 ms budget: the per-route timeout answers 503.
async fn report(cx: Context) -> String {
    let budget = cx.remaining();
    tokio::time::sleep(Duration::from_millis(500)).await;
    format!("report done (budget was {budget:?})\n")
}
