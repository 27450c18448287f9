//! std layers sandwiched between tower-http layers, served over real TCP (HTTP/1.1 and HTTP/2):
//! each side sees the other's requests and responses, short-circuits included.
#![allow(missing_docs)]

mod std_support;

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use middleware_std::{
    RequestExt,
    auth::{AuthLayer, Principal},
    timeout::TimeoutLayer,
};
use std_support::{BOUND, PROTOS, client, get, send, serve, unique_id};
use tower::{ServiceBuilder, service_fn};
use tower_http::{
    catch_panic::CatchPanicLayer as TowerCatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer as TowerRequestId},
    set_header::{SetRequestHeaderLayer, SetResponseHeaderLayer},
};

const X_OUTER: HeaderName = HeaderName::from_static("x-outer");
const X_INNER: HeaderName = HeaderName::from_static("x-inner");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_auth_between_two_tower_http_layers_short_circuits_and_admits() {
    let app = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            X_OUTER,
            HeaderValue::from_static("tower-http"),
        ))
        .layer(AuthLayer::bearer("t0ken", Principal::new("svc")).with_realm("sandwich"))
        .layer(SetRequestHeaderLayer::overriding(
            X_INNER,
            HeaderValue::from_static("tower-http"),
        ))
        .service(service_fn(|req: Request<Incoming>| async move {
            let who = req
                .try_context()
                .and_then(|cx| cx.get::<Principal>())
                .map_or("nobody", Principal::id)
                .to_owned();
            let inner = req.headers().get(X_INNER).is_some();
            let sensitive = req.headers()[header::AUTHORIZATION].is_sensitive();
            let body = format!("{who} inner={inner} sensitive={sensitive}");
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }));
    let server = serve(app).await;

    for proto in PROTOS {
        let client = client(proto);
        let (parts, body) = send(&client, get(&server.url("/"), &unique_id("sandwich"))).await;
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{proto:?}");
        assert_eq!(
            parts.headers[header::WWW_AUTHENTICATE],
            r#"Bearer realm="sandwich""#
        );
        // The outer tower-http layer saw our short-circuit response.
        assert_eq!(parts.headers[X_OUTER], "tower-http");
        assert!(String::from_utf8_lossy(&body).contains(r#""status":401"#));

        let mut req = get(&server.url("/"), &unique_id("sandwich"));
        req.headers_mut()
            .insert(header::AUTHORIZATION, "Bearer t0ken".parse().unwrap());
        let (parts, body) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::OK, "{proto:?}");
        assert_eq!(parts.headers[X_OUTER], "tower-http");
        // The inner tower-http layer ran after ours, and the handler got the principal and a
        // credentials header marked sensitive.
        assert_eq!(body, "svc inner=true sensitive=true");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_timeout_between_tower_http_request_id_and_catch_panic() {
    let app = ServiceBuilder::new()
        .layer(TowerRequestId::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .layer(TowerCatchPanicLayer::new())
        .service(service_fn(|req: Request<Incoming>| async move {
            match req.uri().path() {
                "/slow" => tokio::time::sleep(BOUND).await,
                "/panic" => panic!("inner panic on purpose"),
                _ => {}
            }
            let budget = req
                .try_context()
                .and_then(middleware_std::Context::remaining);
            let body = format!("budget set: {}", budget.is_some());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }));
    let server = serve(app).await;

    for proto in PROTOS {
        let client = client(proto);
        let (parts, body) = send(&client, get(&server.url("/ok"), "from-client")).await;
        assert_eq!(parts.status, StatusCode::OK, "{proto:?}");
        assert_eq!(parts.headers["x-request-id"], "from-client");
        assert_eq!(body, "budget set: true");

        // Our 503 goes out through tower-http's request-id propagation.
        let (parts, _) = send(&client, get(&server.url("/slow"), "slow-one")).await;
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE, "{proto:?}");
        assert_eq!(parts.headers["x-timeout-phase"], "request");
        assert_eq!(parts.headers["x-request-id"], "slow-one");

        // tower-http's 500 comes back through our timeout layer unchanged.
        let (parts, _) = send(&client, get(&server.url("/panic"), "panic-one")).await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR, "{proto:?}");
        assert_eq!(parts.headers["x-request-id"], "panic-one");

        // A request without an id gets tower-http's UUID, on every answer.
        let req = Request::get(server.url("/slow"))
            .body(std_support::empty())
            .unwrap();
        let (parts, _) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(parts.headers["x-request-id"].len(), 36);
    }
}

/// tower-http's `CorsLayer` needs a `Default` response body (it answers a preflight with an
/// empty one); every std body wrapper passes `Default` through, so `CorsLayer` wraps the whole
/// std stack, every protection layer included, in one `ServiceBuilder`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_through_our_whole_stack() {
    use middleware_std::{
        body_limit::{LimitedBody, RequestBodyLimitLayer},
        limit::ConcurrencyLimitLayer,
        rate_limit::{Policy, RateLimitLayer},
        stack::StackLayer,
    };
    use tower_http::cors::{Any, CorsLayer};

    let stack = StackLayer::new(Duration::from_secs(5))
        .concurrency_limit(ConcurrencyLimitLayer::new(64))
        .rate_limit(RateLimitLayer::new(Policy::per_minute(1000)).per_header(X_INNER))
        .body_limit(RequestBodyLimitLayer::new(1024))
        .request_body_deadlines();
    let app = ServiceBuilder::new()
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([http::Method::GET, http::Method::POST]),
        )
        .layer(stack)
        .layer(AuthLayer::bearer("t0ken", Principal::new("svc")))
        .service(service_fn(
            |_: Request<middleware_std::timeout::TimeoutBody<LimitedBody<Incoming>>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("handled"))))
            },
        ));
    let server = serve(app).await;

    for proto in PROTOS {
        let client = client(proto);
        // A preflight: answered by CORS with its empty default body, never reaching auth.
        let req = Request::builder()
            .method(http::Method::OPTIONS)
            .uri(server.url("/"))
            .header(header::ORIGIN, "https://example.com")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(X_INNER, "tenant")
            .body(std_support::empty())
            .unwrap();
        let (parts, body) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::OK, "{proto:?}");
        assert_eq!(parts.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(
            parts.headers[header::ACCESS_CONTROL_ALLOW_METHODS]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(body.is_empty());

        // A simple request goes through the whole stack: our id and timing, CORS's header.
        let mut req = get(&server.url("/"), &unique_id("cors"));
        req.headers_mut()
            .insert(header::AUTHORIZATION, "Bearer t0ken".parse().unwrap());
        req.headers_mut()
            .insert(header::ORIGIN, "https://example.com".parse().unwrap());
        req.headers_mut().insert(X_INNER, "tenant".parse().unwrap());
        let (parts, body) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::OK, "{proto:?}");
        assert_eq!(parts.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(parts.headers.contains_key("x-request-id"));
        assert!(parts.headers.contains_key("server-timing"));
        assert_eq!(body, "handled");

        // Our 401 also passes out through CORS.
        let mut req = get(&server.url("/"), &unique_id("cors"));
        req.headers_mut()
            .insert(header::ORIGIN, "https://example.com".parse().unwrap());
        req.headers_mut().insert(X_INNER, "tenant".parse().unwrap());
        let (parts, _) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{proto:?}");
        assert_eq!(parts.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }
}
