//! The access log never shows a credential an auth layer read, whichever side of the auth layer
//! it sits on and whatever the log layer was told to show (security review, defect 1: a key in
//! a custom header was logged, valid or not, with the log layer outside the auth layer).
#![cfg(all(feature = "auth", feature = "logging", feature = "request-id"))]
#![allow(missing_docs)]

#[path = "log_support/mod.rs"]
mod log_support;
use log_support::Buf;
use std::convert::Infallible;

use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::BodyExt;
use middleware_std::{
    auth::{AuthLayer, Principal},
    logging::LogLayer,
    request_id::SetRequestIdLayer,
};
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService};

const KEY: &str = "k3y-0f-the-t3nant";
const WRONG: &str = "wr0ng-gu3ss-k3y";

fn header() -> HeaderName {
    HeaderName::from_static("x-auth-token")
}

/// A log layer told to show the key header's value, as a user who allow-listed it would.
fn log() -> LogLayer {
    LogLayer::new()
        .log_headers(true)
        .log_query(true)
        .log_header_value(header())
}

fn auth() -> AuthLayer<middleware_std::auth::ApiKey> {
    AuthLayer::api_key(header(), KEY, Principal::new("tenant"))
}

type App = BoxCloneService<Request<String>, Response<String>, Infallible>;

fn finish<S, B>(svc: S) -> App
where
    S: tower::Service<Request<String>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    BoxCloneService::new(svc.map_response(|res: Response<B>| {
        let (parts, _body) = res.into_parts();
        Response::from_parts(parts, String::new())
    }))
}

fn handler() -> impl tower::Service<
    Request<String>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    })
}

/// The documented order: request id (which makes the context), log, auth.
fn log_outside() -> App {
    finish(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new())
            .layer(log())
            .layer(auth())
            .service(handler()),
    )
}

/// The other order: auth outside the log layer.
fn log_inside() -> App {
    finish(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new())
            .layer(auth())
            .layer(log())
            .service(handler()),
    )
}

async fn logged(app: App, key: &str) -> (StatusCode, String) {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let req = Request::get(format!("/items?page=1&api_key={key}"))
        .header(header(), key)
        .header("user-agent", "probe/1")
        .body(String::new())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    res.into_body().collect().await.unwrap();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (status, text)
}

#[tokio::test]
async fn a_key_in_a_custom_header_is_never_logged_with_the_log_layer_outside() {
    for (key, status) in [(KEY, StatusCode::OK), (WRONG, StatusCode::UNAUTHORIZED)] {
        let (got, text) = logged(log_outside(), key).await;
        assert_eq!(got, status);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("x-auth-token: [redacted]"), "{text}");
        assert!(!text.contains(key), "{key} logged: {text}");
        assert!(
            text.contains("probe/1"),
            "an allowed header is still shown: {text}"
        );
    }
}

#[tokio::test]
async fn a_key_in_a_custom_header_is_never_logged_with_the_log_layer_inside() {
    let (got, text) = logged(log_inside(), KEY).await;
    assert_eq!(got, StatusCode::OK);
    assert!(text.contains("x-auth-token: [redacted]"), "{text}");
    assert!(!text.contains(KEY), "{text}");
}

#[tokio::test]
async fn a_custom_key_header_is_redacted_by_default_even_without_auth() {
    // Nobody declared the header and nobody allow-listed it: its value is not shown.
    let app = finish(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new())
            .layer(LogLayer::new().log_headers(true))
            .service(handler()),
    );
    let (_, text) = logged(app, KEY).await;
    assert!(text.contains("x-auth-token: [redacted]"), "{text}");
    assert!(!text.contains(KEY), "{text}");
}
