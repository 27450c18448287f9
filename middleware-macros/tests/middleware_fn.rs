//! Behaviour of `#[middleware_fn]`: the around form runs the async fn around a real tower
//! service with the context and shared state; the `before` form is a hook with an optional
//! `after`.
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    ops::ControlFlow,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use middleware_core::{
    Context, HookLayer, Middleware, MiddlewareLayer, Next, Outcome, RequestExt, ResponseBody,
    middleware_fn, testing::Conformance,
};
use tower::{Layer as _, ServiceBuilder, ServiceExt, service_fn};

/// Stamps `x-stamp` on the response.
#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let mut res = next.run(req).await?;
    res.headers_mut()
        .insert("x-stamp", HeaderValue::from_static("1"));
    Ok(res)
}

/// Answers 403 unless `x-admin` is present; marks the context.
#[middleware_fn]
async fn admin_only<N: Next>(req: Request<N::ReqBody>, next: N, cx: &Context) -> Outcome<N> {
    if !req.headers().contains_key("x-admin") {
        let mut res = Response::new(ResponseBody::full("forbidden"));
        *res.status_mut() = StatusCode::FORBIDDEN;
        return Ok(res);
    }
    cx.mark("admin_only", std::time::Duration::ZERO);
    next.run(req).await
}

#[derive(Debug)]
struct Config {
    greeting: &'static str,
    calls: AtomicUsize,
}

/// Puts the configured greeting in the context, counting calls in the shared state.
#[middleware_fn(state = Config)]
async fn greet<N: Next>(
    mut req: Request<N::ReqBody>,
    next: N,
    config: &Config,
    cx: Context,
) -> Outcome<N> {
    config.calls.fetch_add(1, Ordering::SeqCst);
    req.context().insert(Greeting(config.greeting));
    let res = next.run(req).await;
    assert!(!cx.is_cancelled());
    res
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Greeting(&'static str);

/// Rejects requests without `x-tenant`; `echo_tenant` puts it on the response.
#[middleware_fn(before, after = echo_tenant)]
fn tenant<B>(req: &mut Request<B>) -> ControlFlow<Response<Bytes>, HeaderValue> {
    if let Some(tenant) = req.headers().get("x-tenant") {
        ControlFlow::Continue(tenant.clone())
    } else {
        let mut res = Response::new(Bytes::from_static(b"missing x-tenant"));
        *res.status_mut() = StatusCode::BAD_REQUEST;
        ControlFlow::Break(res)
    }
}

fn echo_tenant<B>(tenant: HeaderValue, res: &mut Response<ResponseBody<B>>) {
    res.headers_mut().insert("x-tenant", tenant);
}

/// A before-only hook with shared state: counts requests, never breaks.
#[middleware_fn(before, state = AtomicUsize)]
fn count<B>(_req: &mut Request<B>, seen: &AtomicUsize) -> ControlFlow<Response<Bytes>> {
    seen.fetch_add(1, Ordering::SeqCst);
    ControlFlow::Continue(())
}

/// A hook whose `after` also gets the shared state.
#[middleware_fn(before, state = &'static str, after = label_after)]
fn label<B>(req: &mut Request<B>, name: &&'static str) -> ControlFlow<Response<Bytes>, bool> {
    ControlFlow::Continue(req.headers().contains_key(*name))
}

fn label_after<B>(had: bool, res: &mut Response<ResponseBody<B>>, name: &&'static str) {
    let value = if had { "present" } else { "absent" };
    res.headers_mut()
        .insert(*name, HeaderValue::from_static(value));
}

fn echo()
-> impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<String>| async move {
        let cx = req.try_context();
        let greeting = cx.and_then(|cx| cx.get::<Greeting>().copied());
        let marks = cx.map_or(0, |cx| cx.marks().len());
        Ok::<_, Infallible>(Response::new(format!("{greeting:?} {marks}")))
    })
}

async fn body<B: BodyExt>(res: Response<B>) -> String
where
    B::Error: std::fmt::Debug,
{
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn an_async_fn_becomes_an_around_middleware() {
    let svc = MiddlewareLayer::new(stamp()).layer(echo());
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.headers()["x-stamp"], "1");
    assert_eq!(body(res).await, "None 0");
}

#[tokio::test]
async fn the_around_form_short_circuits_and_sees_the_context() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let calls = Arc::clone(&calls);
        service_fn(move |req: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let marks = req.try_context().map_or(0, |cx| cx.marks().len());
            async move { Ok::<_, Infallible>(Response::new(marks.to_string())) }
        })
    };
    let svc = MiddlewareLayer::new(admin_only()).layer(inner);
    let res = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(res).await, "forbidden");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let req = Request::builder()
        .header("x-admin", "1")
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The mark went through the `&Context` parameter: it is the request's own context.
    assert_eq!(body(res).await, "1");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn state_is_held_by_the_value_and_passed_by_reference() {
    let config = greet(Config {
        greeting: "hi",
        calls: AtomicUsize::new(0),
    });
    let layer = MiddlewareLayer::new(config);
    let svc = layer.layer(echo());
    let res = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(body(res).await, "Some(Greeting(\"hi\")) 0");
    svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(layer.middleware().state.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn generated_values_compose_with_then() {
    let svc = MiddlewareLayer::new(stamp().then(admin_only())).layer(echo());
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    // `admin_only` short-circuits inside `stamp`, which still stamps the response.
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["x-stamp"], "1");
}

#[tokio::test]
async fn a_before_fn_becomes_a_hook_with_its_after_fn() {
    let svc = HookLayer::new(tenant()).layer(echo());
    let res = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(res).await, "missing x-tenant");
    let req = Request::builder()
        .header("x-tenant", "acme")
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-tenant"], "acme");
}

#[tokio::test]
async fn hook_state_reaches_before_and_after() {
    let counter = HookLayer::new(count(AtomicUsize::new(0)));
    let svc = ServiceBuilder::new()
        .layer(counter.clone())
        .layer(HookLayer::new(label("x-label")))
        .service(echo());
    let res = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-label"], "absent");
    let req = Request::builder()
        .header("x-label", "1")
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-label"], "present");
    assert_eq!(counter.hook().state.load(Ordering::SeqCst), 2);
}

#[test]
fn values_have_a_debug_that_names_the_function() {
    assert_eq!(format!("{:?}", stamp()), "stamp");
    assert_eq!(format!("{:?}", tenant()), "tenant");
    assert_eq!(format!("{:?}", count(AtomicUsize::new(0))), "count { .. }");
}

#[tokio::test]
async fn generated_middleware_pass_the_conformance_kit() {
    Conformance::new(MiddlewareLayer::new(stamp())).run().await;
    Conformance::new(MiddlewareLayer::new(admin_only()))
        .with_request(|| {
            Request::builder()
                .header("x-admin", "1")
                .body(String::new())
                .unwrap()
        })
        .run()
        .await;
    Conformance::new(HookLayer::new(tenant()))
        .with_request(|| {
            Request::builder()
                .header("x-tenant", "t")
                .body(String::new())
                .unwrap()
        })
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_middleware_work_on_a_multi_thread_runtime() {
    let svc = ServiceBuilder::new()
        .layer(HookLayer::new(tenant()))
        .layer(MiddlewareLayer::new(stamp().then(admin_only())))
        .service(echo());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::builder()
                .header("x-tenant", "t")
                .header("x-admin", "1")
                .body(String::new())
                .unwrap();
            svc.oneshot(req).await.unwrap()
        }));
    }
    for task in tasks {
        let res = task.await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-stamp"], "1");
        assert_eq!(res.headers()["x-tenant"], "t");
    }
}

#[tokio::test]
async fn an_around_value_is_a_layer_itself() {
    let svc = ServiceBuilder::new().layer(stamp()).service(echo());
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.headers()["x-stamp"], "1");
    assert_eq!(body(res).await, "None 0");
}

#[tokio::test]
async fn a_hook_value_is_a_layer_itself() {
    let svc = tenant().layer(echo());
    let rejected = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::BAD_REQUEST);
    let req = Request::builder()
        .header("x-tenant", "acme")
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-tenant"], "acme");
}

/// State that counts its clones, to show each layered service gets a copy.
#[derive(Debug, Default)]
struct Clones(Arc<AtomicUsize>);

impl Clone for Clones {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(&self.0))
    }
}

#[middleware_fn(state = Clones)]
async fn cloned<N: Next>(req: Request<N::ReqBody>, next: N, clones: &Clones) -> Outcome<N> {
    let _ = clones;
    next.run(req).await
}

#[tokio::test]
async fn a_value_with_clone_state_is_a_clone_layer() {
    let value = cloned(Clones::default());
    let counter = Arc::clone(&value.state.0);
    let copy = value.clone();
    assert_eq!(counter.load(Ordering::SeqCst), 1);
    let svc = ServiceBuilder::new().layer(copy).service(echo());
    assert_eq!(
        counter.load(Ordering::SeqCst),
        2,
        "the layer clones its value"
    );
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn values_are_axum_router_layers() {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(stamp())
        .layer(tenant());
    let req = Request::builder()
        .uri("/")
        .header("x-tenant", "acme")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-stamp"], "1");
    assert_eq!(res.headers()["x-tenant"], "acme");
}

// ----- parameters live as long as the future ---------------------------------------------------

/// Sets its flag when dropped.
#[derive(Clone)]
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A `Next` that carries a drop flag and is never run.
struct FlaggedNext(#[allow(dead_code)] DropFlag);

impl Next for FlaggedNext {
    type ReqBody = String;
    type ResBody = String;
    type Error = Infallible;

    async fn run(self, _: Request<String>) -> Outcome<Self> {
        Ok(Response::new(ResponseBody::new(String::new())))
    }
}

/// Answers by itself, after a pause, without touching its parameters.
#[middleware_fn]
async fn ignores_named<N: Next>(_req: Request<N::ReqBody>, _next: N) -> Outcome<N> {
    tokio::task::yield_now().await;
    Ok(Response::new(ResponseBody::full(Bytes::from_static(
        b"later",
    ))))
}

/// The same with `_` patterns.
#[middleware_fn]
async fn ignores_wild<N: Next>(_: Request<N::ReqBody>, _: N) -> Outcome<N> {
    tokio::task::yield_now().await;
    Ok(Response::new(ResponseBody::full(Bytes::from_static(
        b"later",
    ))))
}

/// Reads the request through a `ref` pattern and `next` through `ref mut`.
#[middleware_fn]
async fn by_reference<N: Next>(ref req: Request<N::ReqBody>, ref mut next: N) -> Outcome<N> {
    let keyed = req.headers().contains_key("x-key");
    let _: &mut N = next;
    tokio::task::yield_now().await;
    let status = if keyed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut res = Response::new(ResponseBody::full(Bytes::from_static(b"")));
    *res.status_mut() = status;
    Ok(res)
}

/// Whether the request's and `next`'s drop flags are set: after `handle` returns, then after
/// its future is dropped unpolled.
fn drops<M: Middleware>(middleware: &M) -> [(bool, bool); 2] {
    let request = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicBool::new(false));
    let mut req = Request::new(String::new());
    req.extensions_mut().insert(DropFlag(Arc::clone(&request)));
    let future = middleware.handle(req, FlaggedNext(DropFlag(Arc::clone(&next))));
    let made = (request.load(Ordering::SeqCst), next.load(Ordering::SeqCst));
    drop(future);
    let dropped = (request.load(Ordering::SeqCst), next.load(Ordering::SeqCst));
    [made, dropped]
}

#[test]
fn unused_parameters_are_dropped_with_the_future_not_when_it_is_made() {
    // As an `async fn`'s arguments: a middleware that answers by itself later still holds
    // what outer layers put in the request (a permit, a guard) until it answers.
    for (name, seen) in [
        ("named", drops(&ignores_named())),
        ("wild", drops(&ignores_wild())),
        ("by reference", drops(&by_reference())),
    ] {
        assert_eq!(seen, [(false, false), (true, true)], "{name}");
    }
}

#[tokio::test]
async fn ref_patterns_bind_the_parameters() {
    let svc = MiddlewareLayer::new(by_reference()).layer(service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let req = Request::builder()
        .header("x-key", "1")
        .body(String::new())
        .unwrap();
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
}
