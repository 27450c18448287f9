//! Behaviour of `#[handler]`: the generated service runs the handler inside its layers, in the
//! written order, hands it the context values, and answers for it when it times out, is not
//! authenticated, or panics; it mounts on axum with `get(name)` and `route_service`.
#![allow(missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::Path,
    routing::{get, post},
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header, request::Parts};
use http_body_util::BodyExt;
use middleware_macros::handler;
use middleware_std::{
    Context, Error, RequestExt, RequestId,
    auth::{AuthLayer, Principal},
    catch_panic::CatchPanicLayer,
    logging::LogLayer,
    request_id::SetRequestIdLayer,
    timeout::TimeoutLayer,
    timing::ServerTimingLayer,
};
use tower::{Service, ServiceExt, limit::ConcurrencyLimitLayer};

async fn body_of<B>(res: Response<B>) -> Bytes
where
    B: axum::body::HttpBody<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    match res.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => panic!("body error: {}", error.into()),
    }
}

fn bearer(token: &str) -> Request<String> {
    Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

/// Sleeps for the number of milliseconds in the body.
#[handler(timeout = "250ms")]
async fn sleepy(#[body] body: String, deadline: Instant) -> String {
    let millis: u64 = body.parse().unwrap();
    tokio::time::sleep(Duration::from_millis(millis)).await;
    format!("{:?}", deadline.saturating_duration_since(Instant::now()))
}

#[tokio::test(start_paused = true)]
async fn timeout_answers_503_when_the_handler_overruns_its_budget() {
    let svc = sleepy.service();
    let res = svc
        .clone()
        .oneshot(Request::new(String::from("100")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let started = tokio::time::Instant::now();
    let res = svc
        .oneshot(Request::new(String::from("1000")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["x-timeout-phase"], "request");
    assert_eq!(started.elapsed(), Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_lets_a_quick_handler_answer_on_a_multi_thread_runtime() {
    let res = sleepy
        .service()
        .oneshot(Request::new(String::from("1")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Every std key with its own layer expression.
#[handler(
    request_id = SetRequestIdLayer::new().with_header(HeaderName::from_static("x-trace-id")),
    log = LogLayer::new().log_query(true),
    catch_panic = CatchPanicLayer::new(),
    timing = ServerTimingLayer::new(),
    timeout = TimeoutLayer::gateway(Duration::from_millis(10)),
)]
async fn configured(id: RequestId, deadline: Option<Instant>) -> String {
    assert!(deadline.is_some());
    tokio::time::sleep(Duration::from_secs(1)).await;
    id.to_string()
}

#[tokio::test(start_paused = true)]
async fn each_key_takes_a_configured_layer_expression() {
    let req = Request::builder()
        .header("x-trace-id", "t-1")
        .body(String::new())
        .unwrap();
    let res = configured.service().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.headers()["x-trace-id"], "t-1");
    assert!(res.headers().contains_key("server-timing"));
}

/// Greets the authenticated caller.
#[handler(auth = AuthLayer::bearer("s3cr3t", Principal::new("ada").with_role("admin")))]
async fn hello(who: Principal) -> String {
    format!("hello {}", who.id())
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_hands_the_principal_over_on_a_multi_thread_runtime() {
    let res = hello.service().oneshot(bearer("s3cr3t")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "hello ada");
}

#[tokio::test]
async fn auth_answers_401_without_credentials_and_hands_the_principal_over_with_them() {
    let svc = hello.service();
    let res = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));

    let res = svc.clone().oneshot(bearer("wrong")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = svc.oneshot(bearer("s3cr3t")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(body_of(res).await, "hello ada");
}

/// Panics on demand.
#[handler(request_id, catch_panic)]
async fn fragile(req: Request<String>, id: RequestId) -> &'static str {
    assert!(req.body().is_empty(), "boom for {id}");
    "fine"
}

#[tokio::test]
async fn a_panic_becomes_a_500_carrying_the_request_id() {
    let svc = fragile.service();
    let req = Request::builder()
        .header("x-request-id", "req-9")
        .body(String::from("panic please"))
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["x-request-id"], "req-9");
    let body = body_of(res).await;
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .contains(r#""request_id":"req-9""#),
        "{body:?}"
    );

    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "fine");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_becomes_a_500_on_a_multi_thread_runtime() {
    let res = fragile
        .service()
        .oneshot(Request::new(String::from("x")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().contains_key("x-request-id"));
}

/// Records the order in which the layers saw the request.
#[derive(Clone)]
struct Trace(&'static str, Arc<std::sync::Mutex<Vec<&'static str>>>);

impl<S> tower::Layer<S> for Trace {
    type Service = Traced<S>;
    fn layer(&self, inner: S) -> Traced<S> {
        Traced(self.clone(), inner)
    }
}

#[derive(Clone)]
struct Traced<S>(Trace, S);

impl<S: Service<R>, R> Service<R> for Traced<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.1.poll_ready(cx)
    }
    fn call(&mut self, req: R) -> S::Future {
        self.0.1.lock().unwrap().push(self.0.0);
        self.1.call(req)
    }
}

static SEEN: std::sync::LazyLock<Arc<std::sync::Mutex<Vec<&'static str>>>> =
    std::sync::LazyLock::new(Arc::default);

#[handler(layer(Trace("outer", Arc::clone(&SEEN))), layer(Trace("inner", Arc::clone(&SEEN))))]
async fn traced() -> StatusCode {
    SEEN.lock().unwrap().push("handler");
    StatusCode::NO_CONTENT
}

#[tokio::test]
async fn layers_apply_in_written_order_the_first_outermost() {
    let res = traced
        .service()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(*SEEN.lock().unwrap(), ["outer", "inner", "handler"]);
}

struct Greeting {
    text: &'static str,
    calls: AtomicUsize,
}

/// State, the context, the parts and a `Result`.
#[handler(state = Arc<Greeting>)]
async fn stateful(parts: Parts, greeting: &Arc<Greeting>, cx: &Context) -> Result<String, Error> {
    greeting.calls.fetch_add(1, Ordering::SeqCst);
    if parts.uri.path() == "/fail" {
        return Err(Error::new(StatusCode::CONFLICT).with_detail("already there"));
    }
    cx.mark("stateful", Duration::ZERO);
    Ok(format!("{} {}", greeting.text, parts.uri.path()))
}

#[tokio::test]
async fn state_context_parts_and_errors_reach_the_handler() {
    let greeting = Arc::new(Greeting {
        text: "hi",
        calls: AtomicUsize::new(0),
    });
    let svc = stateful(Arc::clone(&greeting)).service();
    let res = svc
        .clone()
        .oneshot(Request::get("/there").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "hi /there");

    let mut req = Request::get("/fail").body(()).unwrap();
    req.context()
        .set_request_id(RequestId::try_from("r-2").unwrap())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body = body_of(res).await;
    let body = std::str::from_utf8(&body).unwrap();
    assert!(body.contains(r#""detail":"already there""#), "{body}");
    assert!(body.contains(r#""request_id":"r-2""#), "{body}");
    assert_eq!(greeting.calls.load(Ordering::SeqCst), 2);
}

/// Principal and id from outer layers.
#[handler]
async fn outer(#[from_outer] who: Principal, id: Option<RequestId>) -> String {
    let id = id.as_ref().map_or("-", RequestId::as_str);
    format!("{} {id}", who.id())
}

#[tokio::test]
async fn from_outer_values_are_read_and_their_absence_is_a_500() {
    let svc = outer.service();
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let mut req = Request::new(());
    req.context().insert(Principal::new("bob"));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "bob -");
}

/// Any tower layer, here one that keeps its state across requests.
#[handler(layer(ConcurrencyLimitLayer::new(1)))]
async fn limited() -> Response<String> {
    let mut res = Response::new(String::from("limited"));
    res.headers_mut()
        .insert("x-limited", HeaderValue::from_static("1"));
    res
}

/// An axum extractor next to our values; `catch_panic` makes the service `!Sync`, which
/// `get` accepts.
#[handler(request_id, catch_panic, auth = AuthLayer::bearer("t0ken", Principal::new("ada")))]
async fn greet(Path(greeting): Path<String>, who: Principal, id: RequestId) -> String {
    format!("{greeting}, {} ({id})", who.id())
}

#[tokio::test]
async fn handlers_mount_on_axum_with_get_and_route_service() {
    let app = Router::new()
        .route("/greet/{greeting}", get(greet))
        .route_service("/limited", limited.service());

    let req = Request::get("/greet/hello")
        .header(header::AUTHORIZATION, "Bearer t0ken")
        .header("x-request-id", "r-1")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-request-id"], "r-1");
    assert_eq!(body_of(res).await, "hello, ada (r-1)");

    let req = Request::get("/greet/hello")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let req = Request::get("/limited")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-limited"], "1");
    assert_eq!(body_of(res).await, "limited");
}

/// An axum extractor that consumes the body, last.
#[handler(request_id)]
async fn echo(Path(name): Path<String>, id: RequestId, body: String) -> String {
    format!("{name} ({id}): {body}")
}

#[tokio::test]
async fn the_last_parameter_may_be_an_extractor_that_reads_the_body() {
    let app = Router::new().route("/echo/{name}", post(echo));
    let req = Request::post("/echo/ada")
        .header("x-request-id", "r-3")
        .body(axum::body::Body::from("hi there"))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "ada (r-3): hi there");

    // The extractor's rejection is the answer; our layers still wrap it.
    let req = Request::post("/echo/ada")
        .body(axum::body::Body::from(vec![0xff, 0xfe]))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().contains_key("x-request-id"));
}

/// Stamps `x-around` on the response: an around-style middleware, generic over the body.
#[middleware_std::middleware_fn]
async fn around<N: middleware_std::Next>(
    req: Request<N::ReqBody>,
    next: N,
) -> middleware_std::Outcome<N> {
    let mut res = next.run(req).await?;
    res.headers_mut()
        .insert("x-around", HeaderValue::from_static("1"));
    Ok(res)
}

/// A handler that reads no body, wrapped in an around-style middleware (once an error naming
/// the internal body parameter).
#[handler(layer(middleware_std::MiddlewareLayer::new(around())))]
async fn around_bodiless() -> &'static str {
    "around"
}

#[tokio::test]
async fn an_around_middleware_wraps_a_handler_that_reads_no_body() {
    let res = around_bodiless
        .service()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-around"], "1");
    assert_eq!(body_of(res).await, "around");

    let app = Router::new().route("/", get(around_bodiless));
    let res = app
        .oneshot(Request::new(axum::body::Body::empty()))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-around"], "1");
}

/// A serializable answer.
#[derive(serde::Serialize, serde::Deserialize)]
struct Order {
    id: u32,
    item: String,
}

#[handler]
async fn as_json() -> axum::Json<Order> {
    axum::Json(Order {
        id: 7,
        item: String::from("tea"),
    })
}

#[handler]
async fn created() -> (StatusCode, axum::Json<Order>) {
    let order = Order {
        id: 8,
        item: String::from("cake"),
    };
    (StatusCode::CREATED, axum::Json(order))
}

#[handler]
async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html("<h1>hi</h1>")
}

#[handler]
async fn opaque() -> impl axum::response::IntoResponse {
    (StatusCode::ACCEPTED, [("x-opaque", "1")], "opaque")
}

#[handler(request_id)]
async fn fallible(Path(id): Path<u32>) -> Result<axum::Json<Order>, Error> {
    if id == 0 {
        return Err(Error::new(StatusCode::NOT_FOUND).with_detail("no such order"));
    }
    Ok(axum::Json(Order {
        id,
        item: String::from("tea"),
    }))
}

#[handler]
async fn status_or(Path(id): Path<u32>) -> Result<String, StatusCode> {
    if id == 0 {
        Err(StatusCode::IM_A_TEAPOT)
    } else {
        Ok(id.to_string())
    }
}

/// An application error of its own that axum can answer with.
struct AppError(&'static str);

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        (StatusCode::CONFLICT, self.0).into_response()
    }
}

#[handler]
async fn app_error(Path(id): Path<u32>) -> Result<axum::Json<Order>, AppError> {
    if id == 0 {
        Err(AppError("taken"))
    } else {
        Ok(axum::Json(Order {
            id,
            item: String::from("tea"),
        }))
    }
}

#[handler(request_id)]
async fn only_error() -> Error {
    Error::new(StatusCode::GONE).with_detail("gone for good")
}

async fn get_body(app: &Router, uri: &str) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::get(uri)
        .header("x-request-id", "r-9")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = body_of(res).await;
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_handler_returns_what_an_axum_handler_may_return() {
    let app = Router::new()
        .route("/json", get(as_json))
        .route("/created", get(created))
        .route("/page", get(page))
        .route("/opaque", get(opaque))
        .route("/status/{id}", get(status_or))
        .route("/app/{id}", get(app_error));

    let (status, headers, body) = get_body(&app, "/json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, r#"{"id":7,"item":"tea"}"#);

    let (status, _, body) = get_body(&app, "/created").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, r#"{"id":8,"item":"cake"}"#);

    let (status, headers, body) = get_body(&app, "/page").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(body, "<h1>hi</h1>");

    let (status, headers, body) = get_body(&app, "/opaque").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["x-opaque"], "1");
    assert_eq!(body, "opaque");

    assert_eq!(get_body(&app, "/status/0").await.0, StatusCode::IM_A_TEAPOT);
    assert_eq!(get_body(&app, "/status/3").await.2, "3");

    let (status, _, body) = get_body(&app, "/app/0").await;
    assert_eq!((status, body.as_str()), (StatusCode::CONFLICT, "taken"));
    assert_eq!(get_body(&app, "/app/2").await.0, StatusCode::OK);
}

#[tokio::test]
async fn our_error_next_to_an_axum_answer_is_problem_details_with_the_request_id() {
    let app = Router::new()
        .route("/orders/{id}", get(fallible))
        .route("/gone", get(only_error));

    let (status, _, body) = get_body(&app, "/orders/5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"id":5,"item":"tea"}"#);

    let (status, headers, body) = get_body(&app, "/orders/0").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(
        body,
        r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no such order","request_id":"r-9"}"#
    );

    let (status, headers, body) = get_body(&app, "/gone").await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body.contains(r#""request_id":"r-9""#), "{body}");
}

/// An extractor of a required header, rejecting as axum's own extractors do (plain text).
struct ApiKey(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ApiKey {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(|key| Self(key.to_owned()))
            .ok_or((StatusCode::BAD_REQUEST, "missing header `x-api-key`"))
    }
}

/// An extractor whose rejection is a redirect, not an error: kept as it is.
struct LoggedIn;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LoggedIn {
    type Rejection = axum::response::Redirect;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::COOKIE) {
            Ok(Self)
        } else {
            Err(axum::response::Redirect::to("/login"))
        }
    }
}

#[handler(request_id)]
async fn place(Path(id): Path<u32>, key: ApiKey, axum::Json(order): axum::Json<Order>) -> String {
    format!("{id} {} {} {}", key.0, order.id, order.item)
}

#[handler(request_id)]
async fn members(_: LoggedIn) -> &'static str {
    "members"
}

fn post_json(uri: &str, key: Option<&str>, body: &'static str) -> Request<axum::body::Body> {
    let mut req = Request::post(uri)
        .header("x-request-id", "r-7")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    req.body(axum::body::Body::from(body)).unwrap()
}

async fn problem(app: &Router, req: Request<axum::body::Body>) -> (StatusCode, serde_json::Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = body_of(res).await;
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn a_failed_extractor_answers_problem_details_with_the_request_id_and_axum_s_status() {
    let app = Router::new().route("/orders/{id}", post(place));
    let ok = r#"{"id":1,"item":"tea"}"#;

    let res = app
        .clone()
        .oneshot(post_json("/orders/4", Some("k"), ok))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "4 k 1 tea");

    // A bad path parameter: axum's 400.
    let (status, json) = problem(&app, post_json("/orders/four", Some("k"), ok)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["status"], 400);
    assert_eq!(json["request_id"], "r-7");
    assert!(json["detail"].as_str().unwrap().contains("parse"), "{json}");

    // A missing header.
    let (status, json) = problem(&app, post_json("/orders/4", None, ok)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["detail"], "missing header `x-api-key`");
    assert_eq!(json["request_id"], "r-7");

    // Bad JSON syntax: axum's 400; JSON of the wrong shape: axum's 422.
    let (status, json) = problem(&app, post_json("/orders/4", Some("k"), "{")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["request_id"], "r-7");
    let (status, json) = problem(&app, post_json("/orders/4", Some("k"), r#"{"id":"x"}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["title"], "Unprocessable Entity");

    // Not JSON at all: axum's 415.
    let req = Request::post("/orders/4")
        .header("x-api-key", "k")
        .body(axum::body::Body::from(ok))
        .unwrap();
    let (status, json) = problem(&app, req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(json["request_id"].is_string(), "a generated id: {json}");
}

#[tokio::test]
async fn a_rejection_that_is_not_an_error_is_kept() {
    let app = Router::new().route("/members", get(members));
    let req = Request::get("/members")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/login");
}

#[tokio::test]
async fn a_hostile_rejection_text_is_escaped_and_cut() {
    // A path parameter that axum echoes into its rejection: quotes, control bytes, and length.
    let app = Router::new().route("/orders/{id}", post(place));
    let hostile = format!("%22%7D%0A%1B{}", "x".repeat(4000));
    let req = post_json(&format!("/orders/{hostile}"), Some("k"), "{}");
    let (status, json) = problem(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let detail = json["detail"].as_str().unwrap();
    assert!(detail.len() <= 512, "{}", detail.len());
    assert_eq!(json["request_id"], "r-7");
}

/// An application's state, with a part that handlers take on its own.
#[derive(Clone)]
struct AppState {
    greeting: &'static str,
    db: Db,
}

#[derive(Clone)]
struct Db(Arc<AtomicUsize>);

impl axum::extract::FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

#[handler(request_id)]
async fn with_state(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::State(db): axum::extract::State<Db>,
    Path(name): Path<String>,
    id: RequestId,
) -> String {
    let seen = db.0.fetch_add(1, Ordering::SeqCst) + 1;
    format!("{}, {name} ({id}, {seen})", state.greeting)
}

#[tokio::test]
async fn state_and_its_from_ref_parts_reach_a_handler_mounted_on_a_router_with_state() {
    let state = AppState {
        greeting: "hello",
        db: Db(Arc::default()),
    };
    let app: Router = Router::new()
        .route("/hi/{name}", get(with_state))
        .with_state(state.clone());
    for seen in 1..=2 {
        let (status, _, body) = get_body(&app, "/hi/ada").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("hello, ada (r-9, {seen})"));
    }
    assert_eq!(state.db.0.load(Ordering::SeqCst), 2);

    // Its service on its own has no router: the state is missing, a 500 naming it.
    let res = with_state
        .service()
        .oneshot(
            Request::get("/hi/ada")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// A third-party context value and the layer that provides it.
#[derive(Clone, Debug, PartialEq)]
struct Tenant(String);

#[derive(Clone)]
struct TenantLayer;

impl<S> tower::Layer<S> for TenantLayer {
    type Service = middleware_std::HookService<TenantHook, S>;
    fn layer(&self, inner: S) -> Self::Service {
        middleware_std::HookService::new(inner, TenantHook)
    }
}

impl middleware_std::axum::Provides for TenantLayer {
    type Values = (Tenant,);
}

#[derive(Clone)]
struct TenantHook;

impl middleware_std::Hook for TenantHook {
    type State = ();
    fn before<B>(&self, req: &mut Request<B>) -> std::ops::ControlFlow<Response<Bytes>> {
        let tenant = req
            .headers()
            .get("x-tenant")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        req.context().insert(Tenant(tenant));
        std::ops::ControlFlow::Continue(())
    }
    fn after<B>(&self, (): (), _: &mut Response<middleware_std::ResponseBody<B>>) {}
}

#[handler(request_id, layer(TenantLayer))]
async fn tenant_name(
    middleware_std::axum::Ctx(tenant): middleware_std::axum::Ctx<Tenant>,
) -> String {
    tenant.0
}

#[handler(request_id)]
async fn outer_tenant(
    #[from_outer] middleware_std::axum::Ctx(tenant): middleware_std::axum::Ctx<Tenant>,
    maybe: Option<middleware_std::axum::Ctx<Tenant>>,
) -> String {
    format!("{} {}", tenant.0, maybe.is_some())
}

#[tokio::test]
async fn a_context_value_of_any_type_reaches_a_handler_from_its_layer() {
    let app = Router::new().route("/", get(tenant_name));
    let req = Request::get("/")
        .header("x-tenant", "acme")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "acme");
}

#[tokio::test]
async fn a_context_value_from_outside_is_read_and_its_absence_is_a_500_naming_it() {
    let app = Router::new()
        .route("/", get(outer_tenant))
        .layer(TenantLayer);
    let req = Request::get("/")
        .header("x-tenant", "acme")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(body_of(res).await, "acme true");

    let app = Router::new().route("/", get(outer_tenant));
    let (status, headers, body) = get_body(&app, "/").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body.contains(r#""request_id":"r-9""#), "{body}");
}

/// A plan the derived layer below puts in the context.
#[derive(Clone, Debug, PartialEq)]
struct Plan(&'static str);

/// A derived hook layer that declares what it provides.
#[derive(Clone, middleware_std::Layer)]
#[middleware(hook, provides(Plan))]
struct PlanLayer;

impl middleware_std::Hook for PlanLayer {
    type State = ();
    fn before<B>(&self, req: &mut Request<B>) -> std::ops::ControlFlow<Response<Bytes>> {
        req.context().insert(Plan("gold"));
        std::ops::ControlFlow::Continue(())
    }
    fn after<B>(&self, (): (), _: &mut Response<middleware_std::ResponseBody<B>>) {}
}

#[handler(layer(TenantLayer), layer(PlanLayer))]
async fn tenant_plan(
    middleware_std::axum::Ctx(tenant): middleware_std::axum::Ctx<Tenant>,
    middleware_std::axum::Ctx(plan): middleware_std::axum::Ctx<Plan>,
) -> String {
    format!("{} {}", tenant.0, plan.0)
}

#[tokio::test]
async fn a_derived_layer_declares_what_it_provides() {
    let res = tenant_plan
        .service()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(body_of(res).await, "none gold");
}

const BUDGET_MS: u64 = 250;

/// A `Duration` expression as the budget.
#[handler(timeout = Duration::from_millis(BUDGET_MS))]
async fn budgeted(deadline: Instant) -> String {
    tokio::time::sleep(Duration::from_secs(1)).await;
    format!("{deadline:?}")
}

/// A fractional literal.
#[handler(timeout = "1.5s")]
async fn fractional(deadline: Instant) -> String {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now().into_std());
    tokio::time::sleep(Duration::from_millis(1400)).await;
    format!("{}", left.as_millis())
}

#[tokio::test(start_paused = true)]
async fn timeout_takes_a_duration_expression_and_a_fractional_literal() {
    let res = budgeted
        .service()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    let res = fractional
        .service()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "1500");
}

/// Controller style: handlers as associated functions, next to the helpers they share.
struct Orders;

impl Orders {
    fn prefix() -> &'static str {
        "order"
    }

    /// One order.
    #[handler(associated, request_id)]
    pub async fn show(Path(id): Path<u32>, request: RequestId) -> String {
        format!("{} {id} ({request})", Self::prefix())
    }

    #[handler(associated, timeout = "1s")]
    async fn count() -> axum::Json<u32> {
        axum::Json(2)
    }
}

#[tokio::test]
async fn handlers_in_an_impl_block_mount_as_services() {
    let app = Router::new()
        .route_service("/orders/{id}", Orders::show())
        .route_service("/orders", Orders::count());
    let (status, _, body) = get_body(&app, "/orders/3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "order 3 (r-9)");
    assert_eq!(get_body(&app, "/orders").await.2, "2");
}

/// Another layer that declares a `Tenant` (and a `Plan`) too.
#[derive(Clone)]
struct FallbackTenantLayer;

impl<S> tower::Layer<S> for FallbackTenantLayer {
    type Service = S;
    fn layer(&self, inner: S) -> S {
        inner
    }
}

impl middleware_std::axum::Provides for FallbackTenantLayer {
    type Values = (Plan, Tenant);
}

/// Two layers of one handler provide the `Tenant` (once a "type annotations needed" error).
#[handler(layer(TenantLayer), layer(FallbackTenantLayer))]
async fn provided_twice(
    middleware_std::axum::Ctx(tenant): middleware_std::axum::Ctx<Tenant>,
) -> String {
    tenant.0
}

#[tokio::test]
async fn a_value_that_two_layers_provide_is_accepted() {
    let res = provided_twice
        .service()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(body_of(res).await, "none");
}
