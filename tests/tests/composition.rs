//! The same middleware values compose in a `tower::ServiceBuilder` between tower-http layers, in
//! an `axum::Router` (`layer` and `route_layer`), and around a hyper-util server over real TCP.
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    ops::ControlFlow,
    sync::{Arc, Mutex},
};

use axum::{Extension, Router, body::Body, routing::get};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header::HeaderName};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use middleware_core::{
    Context, Hook, HookLayer, Middleware, MiddlewareLayer, Next, Outcome, RequestExt, ResponseBody,
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_http::set_header::{SetRequestHeaderLayer, SetResponseHeaderLayer};

/// Records the context it sees and stamps the response.
#[derive(Clone)]
struct Probe {
    name: &'static str,
    seen: Arc<Mutex<Vec<(&'static str, Context)>>>,
}

impl Middleware for Probe {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let cx = req.context().clone();
        self.seen.lock().unwrap().push((self.name, cx));
        let mut res = next.run(req).await?;
        res.headers_mut()
            .append("x-probe", HeaderValue::from_static(self.name));
        Ok(res)
    }
}

/// Rejects requests without `x-key`; zero-allocation hook style.
struct RequireKey;

impl Hook for RequireKey {
    type State = ();

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        if req.headers().contains_key("x-key") {
            ControlFlow::Continue(())
        } else {
            let mut res = Response::new(Bytes::from_static(b"missing x-key"));
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            ControlFlow::Break(res)
        }
    }

    fn after<B>(&self, (): (), res: &mut Response<ResponseBody<B>>) {
        res.headers_mut()
            .insert("x-key-ok", HeaderValue::from_static("1"));
    }
}

fn probe(name: &'static str, seen: &Arc<Mutex<Vec<(&'static str, Context)>>>) -> Probe {
    Probe {
        name,
        seen: Arc::clone(seen),
    }
}

fn names(seen: &Mutex<Vec<(&'static str, Context)>>) -> Vec<&'static str> {
    seen.lock().unwrap().iter().map(|(n, _)| *n).collect()
}

fn all_same_request(seen: &Mutex<Vec<(&'static str, Context)>>) -> bool {
    let seen = seen.lock().unwrap();
    seen.iter().all(|(_, cx)| cx.same_request(&seen[0].1))
}

#[tokio::test]
async fn composes_between_tower_http_layers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            HeaderName::from_static("x-key"),
            HeaderValue::from_static("k"),
        ))
        .layer(MiddlewareLayer::new(probe("ours", &seen)))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-tower-http"),
            HeaderValue::from_static("1"),
        ))
        .layer(HookLayer::new(RequireKey))
        .service(service_fn(|req: Request<Full<Bytes>>| async move {
            assert!(
                req.try_context().is_some(),
                "the context crossed tower-http layers"
            );
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }));
    let res = svc.oneshot(Request::new(Full::default())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-probe"], "ours");
    assert_eq!(res.headers()["x-tower-http"], "1");
    assert_eq!(res.headers()["x-key-ok"], "1");
    assert_eq!(names(&seen), ["ours"]);
}

#[tokio::test]
async fn composes_in_an_axum_router_with_layer_and_route_layer() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler_saw = Arc::new(Mutex::new(None));
    let app = Router::new()
        .route(
            "/private",
            get({
                let handler_saw = Arc::clone(&handler_saw);
                move |Extension(cx): Extension<Context>| async move {
                    *handler_saw.lock().unwrap() = Some(cx);
                    "private"
                }
            }),
        )
        .route_layer(MiddlewareLayer::new(probe("route", &seen)))
        .route_layer(HookLayer::new(RequireKey))
        .route("/public", get(|| async { "public" }))
        .layer(MiddlewareLayer::new(probe("router", &seen)));

    let req = Request::get("/private")
        .header("x-key", "k")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let probes: Vec<_> = res.headers().get_all("x-probe").iter().collect();
    assert_eq!(probes, ["route", "router"]);
    assert_eq!(body_bytes(res.into_body()).await, "private");
    assert_eq!(names(&seen), ["router", "route"]);
    assert!(
        all_same_request(&seen),
        "one context per request through axum"
    );
    let handler_cx = handler_saw.lock().unwrap().take().expect("handler ran");
    assert!(handler_cx.same_request(&seen.lock().unwrap()[0].1));

    // The route layer guards only its route; the router layer sees everything.
    let res = app
        .clone()
        .oneshot(Request::get("/private").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .oneshot(Request::get("/public").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-probe"], "router");
}

#[tokio::test]
async fn serves_over_tcp_around_a_hyper_util_server() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = ServiceBuilder::new()
        .layer(MiddlewareLayer::new(
            probe("outer", &seen).then(probe("inner", &seen)),
        ))
        .layer(HookLayer::new(RequireKey))
        .service(service_fn(
            |req: Request<hyper::body::Incoming>| async move {
                let id = req
                    .try_context()
                    .map(|cx| cx.elapsed() < std::time::Duration::from_secs(5));
                assert_eq!(id, Some(true));
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"over tcp"))))
            },
        ));

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // Two connections: one for each protocol.
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                    .unwrap();
            });
        }
    });

    for http2 in [false, true] {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build_http::<Empty<Bytes>>();
        let req = Request::get(format!("http://{addr}/"))
            .header("x-key", "k")
            .body(Empty::new())
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let expected = if http2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        assert_eq!(res.version(), expected);
        let probes: Vec<_> = res.headers().get_all("x-probe").iter().collect();
        assert_eq!(probes, ["inner", "outer"]);
        assert_eq!(body_bytes(res.into_body()).await, "over tcp");
    }
    server.await.unwrap();
    assert_eq!(names(&seen), ["outer", "inner", "outer", "inner"]);
}

async fn body_bytes<B>(body: B) -> Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    body.collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn the_std_stack_fits_axum_router_layer() {
    use middleware_std::stack::StackLayer;
    fn assert_sync<T: Send + Sync>(_: &T) {}
    let stack = StackLayer::new(std::time::Duration::from_secs(1));
    assert_sync(&tower::Layer::layer(
        &stack,
        tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }),
    ));
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(stack);
    let res = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    assert!(res.headers().contains_key("server-timing"));
}
