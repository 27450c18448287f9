//! A streaming response cut by the request budget, over real TCP on 127.0.0.1: the client must
//! see a failure, never a clean `200` with a short body.
//!
//! The handler streams [`ROWS`] rows, one every [`ROW_EVERY`], and stops when the request's
//! context is cancelled (the documented pattern: `cx.cancelled()`). The budget
//! ([`BUDGET`]) runs out after three rows. Behind the budget layer the cut body ends with an
//! error (`BodyTimeoutError::is_budget`), so hyper aborts the connection (HTTP/1.1) or resets the
//! stream (HTTP/2), and the expiry is reported to the request with phase `response_body`. Two
//! servers: an axum router under the whole `StackLayer`, and a plain tower `service_fn` under
//! `TimeoutLayer` alone; both protocols; with a budget long enough, the same stream ends
//! cleanly with all its rows (so the failure above is the budget's doing).

mod std_support;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Body as AxumBody, routing};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use middleware_std::{Context, RequestExt, TimeoutPhase, stack::StackLayer, timeout::TimeoutLayer};
use tokio::sync::mpsc;
use tower::{ServiceBuilder, service_fn};

use std_support::{BOUND, ChannelBody, PROTOS, Proto, Server, client, empty, serve};

/// How many rows the handler means to send.
const ROWS: usize = 10;
/// The pause before each row.
const ROW_EVERY: Duration = Duration::from_millis(100);
/// The request budget: three rows and a half.
const BUDGET: Duration = Duration::from_millis(350);
/// A budget long enough for all the rows.
const AMPLE: Duration = Duration::from_secs(5);

/// The contexts of the requests served, to read what the budget reported.
type Seen = Arc<Mutex<Vec<Context>>>;

/// Starts the producer for the request whose context is `cx`: a row every [`ROW_EVERY`] until
/// [`ROWS`] rows are out or the request is cancelled; the body ends when it stops.
fn stream_rows(cx: Context, seen: &Seen) -> ChannelBody {
    seen.lock().unwrap().push(cx.clone());
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for row in 0..ROWS {
            tokio::select! {
                _ = cx.cancelled() => return,
                () = tokio::time::sleep(ROW_EVERY) => {}
            }
            if tx.send(Bytes::from(format!("row {row}\n"))).await.is_err() {
                return;
            }
        }
    });
    ChannelBody(rx)
}

/// An axum router under the whole recommended stack.
async fn axum_server(budget: Duration) -> (Server, Seen) {
    let seen = Seen::default();
    let router = Router::new()
        .route(
            "/rows",
            routing::get({
                let seen = Arc::clone(&seen);
                move |req: Request<AxumBody>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let cx = req.try_context().expect("the stack made one").clone();
                        Response::new(AxumBody::new(stream_rows(cx, &seen)))
                    }
                }
            }),
        )
        .layer(StackLayer::new(budget));
    (serve(router).await, seen)
}

/// A plain tower service under the budget layer alone.
async fn tower_server(budget: Duration) -> (Server, Seen) {
    let seen = Seen::default();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(budget))
        .service(service_fn({
            let seen = Arc::clone(&seen);
            move |req: Request<Incoming>| {
                let cx = req.try_context().expect("the budget made one").clone();
                let body = stream_rows(cx, &seen);
                async move { Ok::<_, Infallible>(Response::new(body)) }
            }
        }));
    (serve(svc).await, seen)
}

/// What the client saw: the status, the rows received, and whether the body ended cleanly.
#[derive(Debug)]
struct Fetched {
    status: StatusCode,
    rows: usize,
    clean: bool,
}

/// Fetches `/rows` and reads the body to its end or its failure, within [`BOUND`].
async fn fetch(server: &Server, proto: Proto) -> Fetched {
    let client = client(proto);
    let req = Request::get(server.url("/rows")).body(empty()).unwrap();
    tokio::time::timeout(BOUND, async move {
        let res = client.request(req).await.expect("the head arrives");
        let status = res.status();
        let mut body = res.into_body();
        let mut bytes = Vec::new();
        let clean = loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) => break false,
                None => break true,
            }
        };
        let rows = String::from_utf8_lossy(&bytes).lines().count();
        Fetched {
            status,
            rows,
            clean,
        }
    })
    .await
    .expect("the response did not end within the bound")
}

/// The one request's expiry report.
fn reported(seen: &Seen) -> Option<middleware_std::Expiry> {
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one request served");
    seen[0].expiry()
}

async fn assert_cut(server: Server, seen: &Seen, proto: Proto, what: &str) {
    let got = fetch(&server, proto).await;
    assert_eq!(
        got.status,
        StatusCode::OK,
        "{what} {proto:?}: the head was sent"
    );
    assert!(
        !got.clean,
        "{what} {proto:?}: a body cut by the budget ended cleanly: {got:?}"
    );
    assert!(got.rows < ROWS, "{what} {proto:?}: {got:?}");
    let expiry = reported(seen).expect("the expiry is reported");
    assert_eq!(
        expiry.phase(),
        TimeoutPhase::ResponseStream,
        "{what} {proto:?}"
    );
    assert!(
        !expiry.is_by_client(),
        "{what} {proto:?}: the server's budget"
    );
}

async fn assert_whole(server: Server, seen: &Seen, proto: Proto, what: &str) {
    let got = fetch(&server, proto).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.clean, "{what} {proto:?}: {got:?}");
    assert_eq!(got.rows, ROWS, "{what} {proto:?}");
    assert_eq!(reported(seen), None, "{what} {proto:?}: nothing expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_the_budget_fails_at_the_client_behind_the_stack() {
    for proto in PROTOS {
        let (server, seen) = axum_server(BUDGET).await;
        assert_cut(server, &seen, proto, "StackLayer").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_the_budget_fails_at_the_client_behind_the_timeout_layer() {
    for proto in PROTOS {
        let (server, seen) = tower_server(BUDGET).await;
        assert_cut(server, &seen, proto, "TimeoutLayer").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_within_the_budget_arrives_whole() {
    for proto in PROTOS {
        let (server, seen) = axum_server(AMPLE).await;
        assert_whole(server, &seen, proto, "StackLayer").await;
        let (server, seen) = tower_server(AMPLE).await;
        assert_whole(server, &seen, proto, "TimeoutLayer").await;
    }
}
