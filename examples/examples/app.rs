//! A small orders API built with `#[handler]` throughout: axum's extractors and return types,
//! the router's state, per-handler layers (auth, a budget, a third-party layer that provides a
//! context value), our `Error` as RFC 9457 problem details, and axum's rejections answered the
//! same way.
//!
//! Run it with `cargo run -p middleware-examples --example app`: it builds the app, sends it a
//! scripted tour of requests in process (no socket), prints each answer and checks it, then
//! exits.
//!
//! What it shows:
//!
//! - `State<AppState>` and a `FromRef` part of it (`State<Db>`) as handler parameters, the
//!   handlers mounted with `get(name)` on a `Router` with state;
//! - return types: `Json<T>`, `(StatusCode, Json<T>)`, `Html<_>`, `Result<Json<T>, Error>`,
//!   `Result<StatusCode, Error>`;
//! - per-handler layers in `#[handler(..)]`: Bearer auth (the `Principal` parameter is checked
//!   against it at compile time), a `"0.1s"` budget, and a derived layer that declares the
//!   `Tenant` it provides (`#[middleware(provides(Tenant))]`), read with `Ctx<Tenant>`;
//! - the request id, set by a global layer, in every problem-details body: our errors and
//!   axum's rejections (bad JSON, a bad path parameter) alike.
// An example talks to its user.
#![allow(clippy::print_stdout)]

use std::{
    collections::BTreeMap,
    ops::ControlFlow,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{FromRef, Path, State},
    response::Html,
    routing::get,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use middleware_std::{
    Error, Hook, Layer, RequestExt, RequestId, ResponseBody,
    auth::{AuthLayer, Bearer, Principal},
    axum::Ctx,
    handler,
    logging::LogLayer,
    request_id::SetRequestIdLayer,
};
use serde::{Deserialize, Serialize};
use tower::{ServiceBuilder, ServiceExt};

/// What the handlers share: the orders, and the shop's name.
#[derive(Clone)]
struct AppState {
    db: Db,
    shop: &'static str,
}

/// The orders, by id.
#[derive(Clone, Default)]
struct Db(Arc<Mutex<BTreeMap<u32, Order>>>);

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl Db {
    fn orders(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Order>> {
        self.0.lock().expect("no panics while the lock is held")
    }
}

#[derive(Clone, Serialize)]
struct Order {
    id: u32,
    item: String,
    by: String,
}

#[derive(Deserialize)]
struct NewOrder {
    item: String,
}

/// The caller's tenant, from the `x-tenant` header.
#[derive(Clone)]
struct Tenant(String);

/// Puts the caller's [`Tenant`] in the request's context, and says so to `#[handler]`.
#[derive(Clone, Layer)]
#[middleware(hook, provides(Tenant))]
struct TenantLayer;

impl Hook for TenantLayer {
    type State = ();

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        let tenant = req
            .headers()
            .get("x-tenant")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("public")
            .to_owned();
        req.context().insert(Tenant(tenant));
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

fn writers() -> AuthLayer<Bearer> {
    AuthLayer::bearer("writer-token", Principal::new("ada").with_role("writer"))
}

/// The shop's front page.
#[handler]
async fn index(State(state): State<AppState>) -> Html<String> {
    Html(format!("<h1>{}</h1>", state.shop))
}

/// Every order.
#[handler]
async fn list(State(db): State<Db>) -> Json<Vec<Order>> {
    Json(db.orders().values().cloned().collect())
}

/// Places an order: a writer's token, and JSON with a non-empty item.
#[handler(auth = writers())]
async fn create(
    State(db): State<Db>,
    who: Principal,
    Json(new): Json<NewOrder>,
) -> Result<(StatusCode, Json<Order>), Error> {
    if new.item.trim().is_empty() {
        return Err(Error::new(StatusCode::UNPROCESSABLE_ENTITY).with_detail("the item is empty"));
    }
    let mut orders = db.orders();
    let id = orders.keys().next_back().map_or(1, |last| last + 1);
    let order = Order {
        id,
        item: new.item,
        by: who.id().to_owned(),
    };
    orders.insert(id, order.clone());
    Ok((StatusCode::CREATED, Json(order)))
}

/// One order, or a 404 problem.
#[handler]
async fn find(State(db): State<Db>, Path(id): Path<u32>) -> Result<Json<Order>, Error> {
    db.orders()
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| Error::new(StatusCode::NOT_FOUND).with_detail(format!("no order {id}")))
}

/// Cancels an order: a writer's token.
#[handler(auth = writers())]
async fn cancel(State(db): State<Db>, Path(id): Path<u32>) -> Result<StatusCode, Error> {
    match db.orders().remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(Error::new(StatusCode::NOT_FOUND).with_detail(format!("no order {id}"))),
    }
}

/// Who is asking, from the tenant layer and the request id layer.
#[handler(layer(TenantLayer))]
async fn whoami(Ctx(tenant): Ctx<Tenant>, #[from_outer] id: RequestId) -> String {
    format!("tenant {} (request {id})", tenant.0)
}

/// A report that takes longer than its budget: a 503.
#[handler(timeout = "0.1s")]
async fn report() -> &'static str {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    "never"
}

fn app() -> Router {
    let state = AppState {
        db: Db::default(),
        shop: "Tea & Cake",
    };
    Router::new()
        .route("/", get(index))
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(find).delete(cancel))
        .route("/whoami", get(whoami))
        .route("/report", get(report))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new())
                .layer(LogLayer::new()),
        )
}

/// Sends one request and prints the answer; returns the status and the body.
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let line = format!("{} {}", req.method(), req.uri());
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("in-memory bodies do not fail")
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    println!("{line:<28} {status}  {body}");
    (status, body)
}

fn request(method: &str, uri: &str, token: bool, json: Option<&'static str>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-request-id", format!("tour-{}", uri.len()));
    if token {
        req = req.header(header::AUTHORIZATION, "Bearer writer-token");
    }
    let body = match json {
        Some(json) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(json)
        }
        None => Body::empty(),
    };
    req.body(body).expect("a valid request")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = app();
    let tour: [(Request<Body>, StatusCode); 11] = [
        (request("GET", "/", false, None), StatusCode::OK),
        (
            request("POST", "/orders", true, Some(r#"{"item":"tea"}"#)),
            StatusCode::CREATED,
        ),
        (
            request("POST", "/orders", false, Some(r#"{"item":"cake"}"#)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            request("POST", "/orders", true, Some(r#"{"item":" "}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // axum's rejections, as problem details with the request id.
        (
            request("POST", "/orders", true, Some(r#"{"item":"#)),
            StatusCode::BAD_REQUEST,
        ),
        (
            request("GET", "/orders/one", false, None),
            StatusCode::BAD_REQUEST,
        ),
        (request("GET", "/orders", false, None), StatusCode::OK),
        (request("GET", "/orders/1", false, None), StatusCode::OK),
        (
            request("DELETE", "/orders/1", true, None),
            StatusCode::NO_CONTENT,
        ),
        (
            request("GET", "/orders/1", false, None),
            StatusCode::NOT_FOUND,
        ),
        (request("GET", "/whoami", false, None), StatusCode::OK),
    ];
    for (req, expected) in tour {
        let (status, body) = send(&app, req).await;
        assert_eq!(status, expected, "{body}");
        if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
            assert!(body.contains(r#""request_id":"tour-"#), "{body}");
        }
    }
    let (status, _) = send(&app, request("GET", "/report", false, None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    println!("the tour went as expected");
}
