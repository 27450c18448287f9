//! The three protection layers compose in axum: `Router::layer` and `Router::route_layer`, in
//! process with `oneshot`; every rejection is a response (no `HandleErrorLayer`).
#![cfg(all(
    feature = "axum",
    feature = "body-limit",
    feature = "limit",
    feature = "rate-limit"
))]

use std::{net::SocketAddr, time::Duration};

use axum::{Router, body::Body, extract::ConnectInfo, routing::post};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use middleware_std::{
    body_limit::RequestBodyLimitLayer,
    limit::ConcurrencyLimitLayer,
    rate_limit::{Policy, RateLimitLayer},
};
use tower::ServiceExt;

async fn echo(body: axum::body::Bytes) -> String {
    body.len().to_string()
}

fn app(limit: &ConcurrencyLimitLayer) -> Router {
    Router::new()
        .route("/echo", post(echo))
        .route_layer(RequestBodyLimitLayer::new(8))
        .layer(RateLimitLayer::new(Policy::per_minute(3)))
        .layer(limit.clone())
}

fn post_from(ip: [u8; 4], body: &'static str) -> Request<Body> {
    let mut req = Request::post("/echo").body(Body::from(body)).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 5000))));
    req
}

#[tokio::test]
async fn the_layers_compose_in_an_axum_router_and_every_rejection_is_a_response() {
    let limit = ConcurrencyLimitLayer::new(4).queue(4, Duration::from_secs(1));
    let app = app(&limit);

    let res = app
        .clone()
        .oneshot(post_from([10, 0, 0, 1], "1234"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("ratelimit"));
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "4");

    let res = app
        .clone()
        .oneshot(post_from([10, 0, 0, 1], "far too long"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()[header::CONNECTION], "close");
    // An unread response still holds its place in the concurrency limit (it is outside).
    assert_eq!(limit.in_flight(), 1);
    drop(res);
    assert_eq!(limit.in_flight(), 0);

    let res = app
        .clone()
        .oneshot(post_from([10, 0, 0, 1], "1"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    let res = app
        .clone()
        .oneshot(post_from([10, 0, 0, 1], "1"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    drop(res);

    let res = app.oneshot(post_from([10, 0, 0, 2], "1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    assert_eq!((limit.in_flight(), limit.waiting()), (0, 0));
}
