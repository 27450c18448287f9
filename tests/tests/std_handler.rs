//! `#[handler]` end to end: annotated handlers mounted with axum's usual routing calls, served
//! over real TCP (HTTP/1.1 and HTTP/2), each with its own per-handler layers.
#![allow(missing_docs)]

mod std_support;

use std::time::Duration;

use axum::{
    Router,
    extract::{FromRef, Path, State},
    response::Html,
    routing::get,
};
use http::{StatusCode, header};
use middleware_std::{
    Context, Error, RequestId,
    auth::{AuthLayer, Principal},
    handler,
};
use std_support::{PROTOS, TOKEN, client, get as request, send, serve, unique_id};

/// A per-handler budget shorter than any the server has.
#[handler(timeout = "100ms")]
async fn slow(cx: Context) -> &'static str {
    assert!(
        cx.remaining()
            .is_some_and(|left| left <= Duration::from_millis(100))
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    "too late"
}

/// Auth from the attribute; the principal is a checked parameter.
#[handler(request_id, auth = AuthLayer::bearer(TOKEN, Principal::new("ada").with_role("admin")))]
async fn private(who: Principal, id: RequestId) -> String {
    format!("{} {id}", who.id())
}

/// Panic recovery from the attribute; the 500 carries the request id.
#[handler(request_id, catch_panic)]
async fn boom() -> &'static str {
    panic!("handler bug")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_handlers_keep_their_promises_over_tcp() {
    let app = Router::new()
        .route("/slow", get(slow))
        .route("/private", get(private))
        .route("/boom", get(boom));
    let server = serve(app).await;

    for proto in PROTOS {
        let client = client(proto);

        let started = std::time::Instant::now();
        let (parts, _) = send(&client, request(&server.url("/slow"), &unique_id("slow"))).await;
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE, "{proto:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{proto:?}");

        let id = unique_id("private");
        let (parts, _) = send(&client, request(&server.url("/private"), &id)).await;
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{proto:?}");
        assert!(parts.headers.contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(parts.headers["x-request-id"], id.as_str());

        let mut req = request(&server.url("/private"), &id);
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {TOKEN}").parse().unwrap(),
        );
        let (parts, body) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::OK, "{proto:?}");
        assert_eq!(body, format!("ada {id}"));

        let id = unique_id("boom");
        let (parts, body) = send(&client, request(&server.url("/boom"), &id)).await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR, "{proto:?}");
        assert!(String::from_utf8_lossy(&body).contains(&id), "{proto:?}");
        assert!(!String::from_utf8_lossy(&body).contains("handler bug"));
    }
}

/// The app's state, and the part of it one handler takes.
#[derive(Clone)]
struct AppState {
    shop: Shop,
}

#[derive(Clone)]
struct Shop(&'static str);

impl FromRef<AppState> for Shop {
    fn from_ref(state: &AppState) -> Self {
        state.shop.clone()
    }
}

/// axum's state, extractor and return type in an annotated handler; our error next to it.
#[handler(request_id)]
async fn item(State(shop): State<Shop>, Path(id): Path<u32>) -> Result<Html<String>, Error> {
    if id == 0 {
        return Err(Error::new(StatusCode::NOT_FOUND).with_detail("no item 0"));
    }
    Ok(Html(format!("<p>{} #{id}</p>", shop.0)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_axum_handlers_with_state_answer_problem_details_over_tcp() {
    let app = Router::new()
        .route("/items/{id}", get(item))
        .with_state(AppState { shop: Shop("tea") });
    let server = serve(app).await;

    for proto in PROTOS {
        let client = client(proto);

        let id = unique_id("item");
        let (parts, body) = send(&client, request(&server.url("/items/7"), &id)).await;
        assert_eq!(parts.status, StatusCode::OK, "{proto:?}");
        assert_eq!(
            parts.headers[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(body, "<p>tea #7</p>");

        // Our error, and axum's rejection of a bad path parameter: problem details, with the id.
        for (path, status) in [
            ("/items/0", StatusCode::NOT_FOUND),
            ("/items/seven", StatusCode::BAD_REQUEST),
        ] {
            let id = unique_id("item");
            let (parts, body) = send(&client, request(&server.url(path), &id)).await;
            assert_eq!(parts.status, status, "{proto:?} {path}");
            assert_eq!(
                parts.headers[header::CONTENT_TYPE],
                "application/problem+json"
            );
            assert!(
                String::from_utf8_lossy(&body).contains(&id),
                "{proto:?} {path}"
            );
        }
    }
}
