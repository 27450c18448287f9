//! The outbound side over real TCP: a hyper-util client behind `SetRequestIdLayer`,
//! `TimeoutLayer` and `PropagateDeadlineLayer` calls a server behind the std stack. The request
//! id is forwarded, the remaining budget crosses the hop (and only shrinks), the server enforces
//! it, and a spent budget is never sent.
#![allow(missing_docs)]

mod std_support;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use middleware_std::{
    Context, RequestExt, RequestId,
    request_id::SetRequestIdLayer,
    timeout::{PropagateDeadlineLayer, TimeoutLayer},
};
use std_support::{BOUND, ClientBody, PROTOS, client, empty, serve};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// A server that reports the request id, the `grpc-timeout` it received and the budget its
/// handler has, in microseconds: `id grpc-timeout remaining_us`. `/slow` outlives any budget.
async fn reporting_server(received: Arc<AtomicUsize>) -> std_support::Server {
    let app = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new())
        .layer(TimeoutLayer::new(Duration::from_secs(5)).inbound_grpc_timeout())
        .service(service_fn(move |req: Request<Incoming>| {
            received.fetch_add(1, Ordering::SeqCst);
            async move {
                let cx = req.try_context().expect("the layers made one").clone();
                if req.uri().path() == "/slow" {
                    tokio::time::sleep(BOUND).await;
                }
                let id = cx.request_id().map_or("-", RequestId::as_str);
                let header = req
                    .headers()
                    .get("grpc-timeout")
                    .map_or("-", |v| v.to_str().unwrap());
                let left = cx.remaining().unwrap_or_default().as_micros();
                let body = format!("{id} {header} {left}");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            }
        }));
    serve(app).await
}

/// A caller's context: an id and a budget.
fn caller(id: &str, budget: Duration) -> Context {
    let cx = Context::new();
    cx.set_request_id(RequestId::try_from(id).unwrap()).unwrap();
    cx.set_timeout(budget);
    cx
}

fn call(url: String, cx: &Context) -> Request<ClientBody> {
    let mut req = Request::get(url).body(empty()).unwrap();
    req.extensions_mut().insert(cx.clone());
    req
}

/// `grpc-timeout` in microseconds (the encoder picks the unit).
fn grpc_timeout_us(value: &str) -> u128 {
    let (number, unit) = value.split_at(value.len() - 1);
    let number: u128 = number.parse().unwrap();
    match unit {
        "n" => number / 1000,
        "u" => number,
        "m" => number * 1000,
        "S" => number * 1_000_000,
        "M" => number * 60_000_000,
        "H" => number * 3_600_000_000,
        _ => panic!("unit {unit}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_and_a_shrinking_budget_cross_the_hop() {
    let received = Arc::new(AtomicUsize::new(0));
    let server = reporting_server(Arc::clone(&received)).await;
    for proto in PROTOS {
        let outbound = ServiceBuilder::new()
            .layer(SetRequestIdLayer::new())
            .layer(TimeoutLayer::gateway(Duration::from_secs(2)))
            .layer(PropagateDeadlineLayer::new())
            .service(client(proto));

        let cx = caller("caller-7", Duration::from_millis(800));
        let res = outbound
            .clone()
            .oneshot(call(server.url("/report"), &cx))
            .await
            .unwrap();
        let after_us = cx.remaining().unwrap().as_micros();
        assert_eq!(res.status(), StatusCode::OK, "{proto:?}");
        assert_eq!(res.headers()["x-request-id"], "caller-7");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let fields: Vec<&str> = text.split(' ').collect();
        let [id, stamped, left] = fields[..] else {
            panic!("{text}")
        };
        assert_eq!(id, "caller-7", "the id was forwarded");
        let stamped = grpc_timeout_us(stamped);
        let left: u128 = left.parse().unwrap();
        // 800 ms at the caller ≥ what was stamped ≥ what the handler had ≥ what the caller has
        // once the answer is back.
        assert!(stamped <= 800_000, "{text}");
        assert!(left <= stamped, "{text}");
        assert!(after_us <= left, "{text} then {after_us}");
        assert!(stamped > 700_000, "{text}: the hop took 100 ms?");
    }
    assert_eq!(received.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_enforces_the_propagated_budget_and_a_spent_one_is_not_sent() {
    let received = Arc::new(AtomicUsize::new(0));
    let server = reporting_server(Arc::clone(&received)).await;
    for proto in PROTOS {
        let outbound = ServiceBuilder::new()
            .layer(SetRequestIdLayer::new())
            .layer(PropagateDeadlineLayer::new())
            .service(client(proto));

        // 100 ms for a handler that sleeps far longer: the server answers 503 at the propagated
        // deadline, or the client 504 at its own (the same instant, give or take the hop).
        let before = received.load(Ordering::SeqCst);
        let cx = caller("caller-slow", Duration::from_millis(100));
        let started = std::time::Instant::now();
        let res = outbound
            .clone()
            .oneshot(call(server.url("/slow"), &cx))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert!(
            [StatusCode::SERVICE_UNAVAILABLE, StatusCode::GATEWAY_TIMEOUT].contains(&res.status()),
            "{proto:?}: {}",
            res.status()
        );
        assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
        assert!(elapsed < BOUND, "{elapsed:?}");
        assert_eq!(received.load(Ordering::SeqCst), before + 1);

        // Spent: answered 504 at once, nothing sent.
        let cx = caller("caller-late", Duration::ZERO);
        let res = outbound
            .clone()
            .oneshot(call(server.url("/report"), &cx))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT, "{proto:?}");
        assert_eq!(received.load(Ordering::SeqCst), before + 1);
    }
}
