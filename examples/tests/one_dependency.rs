//! The macros through the facade an application depends on: this package lists
//! `middleware-std` and no `middleware-core`, and `#[derive(Layer)]`, `#[middleware_fn]` (around
//! and before) and `#[handler]` work here without `crate = "middleware_std"` (before, each use
//! failed with errors about a missing `middleware_core`).
#![allow(missing_docs)]

use std::{convert::Infallible, ops::ControlFlow};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use middleware_std::{
    Hook, Layer, Middleware, MiddlewareLayer, Next, Outcome, ResponseBody, handler, middleware_fn,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// An around-style layer, derived.
#[derive(Clone, Layer)]
struct Stamp {
    value: &'static str,
}

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let mut res = next.run(req).await?;
        res.headers_mut()
            .insert("x-stamp", HeaderValue::from_static(self.value));
        Ok(res)
    }
}

/// A hook, derived.
#[derive(Clone, Layer)]
#[middleware(hook)]
struct NeedsTenant;

impl Hook for NeedsTenant {
    type State = ();

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        if req.headers().contains_key("x-tenant") {
            ControlFlow::Continue(())
        } else {
            let mut res = Response::new(Bytes::from_static(b"no tenant"));
            *res.status_mut() = StatusCode::BAD_REQUEST;
            ControlFlow::Break(res)
        }
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

/// An around-style middleware from an async fn.
#[middleware_fn]
async fn around<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let mut res = next.run(req).await?;
    res.headers_mut()
        .insert("x-around", HeaderValue::from_static("1"));
    Ok(res)
}

/// A handler with a per-handler layer.
#[handler(timeout = "1s")]
async fn hello() -> String {
    String::from("hello")
}

fn request(tenant: bool) -> Request<String> {
    let mut req = Request::get("/").body(String::new()).unwrap();
    if tenant {
        req.headers_mut()
            .insert("x-tenant", HeaderValue::from_static("acme"));
    }
    req
}

#[tokio::test]
async fn derived_layers_and_middleware_fns_work_through_middleware_std() {
    let app = ServiceBuilder::new()
        .layer(Stamp::new("yes"))
        .layer(NeedsTenant)
        .layer(MiddlewareLayer::new(around()))
        .service(service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }));

    let res = app.clone().oneshot(request(true)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-stamp"], "yes");
    assert_eq!(res.headers()["x-around"], "1");

    let res = app.oneshot(request(false)).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.headers()["x-stamp"],
        "yes",
        "the outer layer still runs"
    );
}

#[tokio::test]
async fn handlers_work_through_middleware_std() {
    let res = hello.service().oneshot(request(false)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
