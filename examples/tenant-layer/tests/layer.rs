//! Behaviour, hostile input and the core conformance kit.
#![allow(missing_docs)]

use std::convert::Infallible;

use middleware_core::{
    RequestExt,
    http::{HeaderValue, Request, Response, StatusCode},
    testing::Conformance,
    tower_layer::Layer,
};
use middleware_tenant::{Tenant, TenantLayer};
use tower::{ServiceExt, service_fn};

fn echo() -> impl middleware_core::tower_service::Service<
    Request<String>,
    Response = Response<String>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<String>, Infallible>>,
> + Clone {
    service_fn(|req: Request<String>| {
        let tenant = req
            .try_context()
            .and_then(|cx| cx.get::<Tenant>())
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        std::future::ready(Ok(Response::new(tenant)))
    })
}

async fn send(layer: &TenantLayer, values: &[&[u8]]) -> (StatusCode, String) {
    let mut req = Request::new(String::new());
    for value in values {
        req.headers_mut()
            .append("x-tenant-id", HeaderValue::from_bytes(value).unwrap());
    }
    let res = layer.layer(echo()).oneshot(req).await.unwrap();
    let status = res.status();
    let body = http_body_util_collect(res.into_body()).await;
    (status, body)
}

async fn http_body_util_collect<B: middleware_core::http_body::Body>(body: B) -> String
where
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Ok(data) = frame.unwrap().into_data() {
            out.extend_from_slice(middleware_core::bytes::Buf::chunk(&data));
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_valid_tenant_reaches_the_handler() {
    let (status, body) = send(&TenantLayer::new(), &[b"acme-01"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "acme-01");
}

#[tokio::test]
async fn hostile_tenant_headers_are_400_never_5xx() {
    let long = vec![b'a'; 64];
    let cases: &[&[&[u8]]] = &[
        &[],
        &[b""],
        &[b"-acme"],
        &[b"acme-"],
        &[b"ACME"],
        &[b"ac me"],
        &[b"acme\t"],
        &[b"acme\"x"],
        &[b"../etc"],
        &[b"\xc3\xa9cole"],
        &[b"\xff"],
        // Control characters (ESC, DEL) never get this far: `http` rejects them.
        &[b"red;x=1"],
        &[&long],
        &[b"acme", b"globex"],
    ];
    for values in cases {
        let (status, body) = send(&TenantLayer::new(), values).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{values:?}");
        assert!(body.starts_with(r#"{"type":"about:blank""#), "{body}");
    }
    let ok = vec![b'a'; 63];
    assert_eq!(send(&TenantLayer::new(), &[&ok]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_allow_list_answers_403_for_others() {
    let layer = TenantLayer::new().allow(["acme"]);
    assert_eq!(send(&layer, &[b"acme"]).await.0, StatusCode::OK);
    assert_eq!(send(&layer, &[b"globex"]).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_default_tenant_fills_a_missing_header_only() {
    let layer = TenantLayer::new().default_tenant(Tenant::parse(b"public").unwrap());
    assert_eq!(
        send(&layer, &[]).await,
        (StatusCode::OK, "public".to_owned())
    );
    assert_eq!(send(&layer, &[b"BAD"]).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn passes_the_whole_conformance_kit_bodies_included() {
    middleware_core::check_conformance!(Conformance::new(TenantLayer::new()).with_request(|| {
        Request::builder()
            .header("x-tenant-id", "acme")
            .body(String::new())
            .unwrap()
    }))
    .await;
}

#[tokio::test]
async fn passes_the_core_conformance_kit() {
    Conformance::new(TenantLayer::new())
        .with_request(|| {
            Request::builder()
                .header("x-tenant-id", "acme")
                .body(String::new())
                .unwrap()
        })
        .run()
        .await;
}
