//! Lifecycle timings over real TCP: hyper-util's legacy client built over `TimedConnector`,
//! behind `LifecycleLayer`, against a local server. A first call makes a connection, a second
//! one reuses it, and the marks reach the inbound request's `Server-Timing`.
#![allow(missing_docs)]

mod std_support;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use middleware_std::{
    Context, RequestExt,
    lifecycle::{ConnectInfo, ConnectionKind, LifecycleLayer, TimedConnector, Timings},
    timing::ServerTimingLayer,
};
use std_support::{BOUND, Server, serve};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_call_makes_a_connection_and_a_second_one_reuses_it() {
    let upstream = upstream().await;
    let seen = Arc::new(Mutex::new(Vec::<Timings>::new()));
    let sink = Arc::clone(&seen);
    let client = ServiceBuilder::new()
        .layer(LifecycleLayer::new().on_timings(move |t: &Timings| {
            sink.lock().unwrap().push(t.clone());
        }))
        .service(timed_client());
    let cx = Context::new();
    let mut connections = Vec::new();
    for _ in 0..2 {
        let res = tokio::time::timeout(
            BOUND,
            client.clone().oneshot(get(&upstream.url("/slow"), &cx)),
        )
        .await
        .unwrap()
        .unwrap();
        connections.push(res.extensions().get::<ConnectInfo>().unwrap().clone());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello");
        // hyper-util's pool takes a connection back once its task has seen the response end,
        // a moment after the body did: a call sent at once could find it still busy.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(upstream.accepted(), 1, "one TCP connection");
    assert!(connections[0].same_connection(&connections[1]));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let ConnectionKind::New { connect } = seen[0].connection() else {
        panic!("the first call made the connection: {seen:?}");
    };
    assert!(connect > Duration::ZERO);
    assert_eq!(seen[1].connection(), ConnectionKind::Reused);
    for timings in &seen {
        assert!(timings.is_complete(), "{timings:?}");
        let wrote = timings
            .wrote_request()
            .expect("the connection saw the write");
        let first = timings.first_byte().unwrap();
        let end = timings.body_end().unwrap();
        assert!(wrote <= first && first <= end, "{timings:?}");
        assert!(
            first >= Duration::from_millis(20),
            "the server waits 20 ms: {timings:?}"
        );
    }
    let names: Vec<String> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(
        names,
        [
            "client.connect",
            "client.write",
            "client.first_byte",
            "client.body",
            "client.reused",
            "client.write",
            "client.first_byte",
            "client.body"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_marks_reach_the_inbound_server_timing_header() {
    let upstream = upstream().await;
    let url = upstream.url("/slow");
    let client = ServiceBuilder::new()
        .layer(LifecycleLayer::new())
        .service(timed_client());
    let inbound = ServiceBuilder::new()
        .layer(ServerTimingLayer::new())
        .service(service_fn(move |req: Request<Incoming>| {
            let cx = req
                .try_context()
                .expect("the timing layer made one")
                .clone();
            let (client, url) = (client.clone(), url.clone());
            async move {
                let res = client.oneshot(get(&url, &cx)).await.unwrap();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                Ok::<_, Infallible>(Response::new(Full::new(body)))
            }
        }));
    let front = serve(inbound).await;
    let res = tokio::time::timeout(
        BOUND,
        Client::builder(TokioExecutor::new())
            .build_http::<Empty<Bytes>>()
            .get(front.url("/").parse().unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    let header = res.headers()["server-timing"].to_str().unwrap().to_owned();
    for name in [
        "client.connect;dur=",
        "client.write;dur=",
        "client.first_byte;dur=",
        "client.body;dur=",
    ] {
        assert!(header.contains(name), "{name} in {header}");
    }
}

// ---- fixtures

async fn upstream() -> Server {
    serve(service_fn(|_req: Request<Incoming>| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("hello")))
    }))
    .await
}

fn timed_client() -> Client<TimedConnector<HttpConnector>, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build(TimedConnector::new(HttpConnector::new()))
}

fn get(url: &str, cx: &Context) -> Request<Empty<Bytes>> {
    let mut req = Request::get(url).body(Empty::new()).unwrap();
    req.extensions_mut().insert(cx.clone());
    req
}
