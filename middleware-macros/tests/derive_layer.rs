//! Behaviour of `#[derive(Layer)]`: the generated layer runs the user's logic around a real
//! tower service, the builder applies defaults, and `Debug` redacts secrets.
#![allow(missing_docs)]

use std::{convert::Infallible, ops::ControlFlow, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use middleware_core::{
    Hook, Layer, Middleware, Next, Observe, Outcome, RequestExt, ResponseBody, testing::Conformance,
};
use tower::{Layer as _, ServiceBuilder, ServiceExt, service_fn};

/// Stamps a header on the request and the response; answers 401 without the right key.
#[derive(Clone, Layer)]
struct Stamp {
    header: &'static str,
    #[middleware(secret)]
    key: String,
    #[middleware(default = Duration::from_secs(5))]
    budget: Duration,
    #[middleware(default)]
    visits: u8,
}

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        if req.headers().get("x-key").map(HeaderValue::as_bytes) != Some(self.key.as_bytes()) {
            let mut res = Response::new(ResponseBody::full("no"));
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            return Ok(res);
        }
        req.context().set_timeout(self.budget);
        req.context().insert(Visits(self.visits));
        req.headers_mut()
            .insert("x-seen", HeaderValue::from_static(self.header));
        let mut res = next.run(req).await?;
        res.headers_mut()
            .insert(self.header, HeaderValue::from_static("stamped"));
        Ok(res)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Visits(u8);

/// A hook: rejects requests without `x-tenant`, echoes it back.
#[derive(Clone, Layer)]
#[middleware(hook, service = TenantCheck)]
struct Tenant;

impl Hook for Tenant {
    type State = HeaderValue;

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>, HeaderValue> {
        if let Some(tenant) = req.headers().get("x-tenant") {
            ControlFlow::Continue(tenant.clone())
        } else {
            let mut res = Response::new(Bytes::from_static(b"missing x-tenant"));
            *res.status_mut() = StatusCode::BAD_REQUEST;
            ControlFlow::Break(res)
        }
    }

    fn after<B>(&self, tenant: HeaderValue, res: &mut Response<ResponseBody<B>>) {
        res.headers_mut().insert("x-tenant", tenant);
    }
}

/// An observer: stamps the request's method on the response; never answers early.
#[derive(Clone, Layer)]
#[middleware(observe)]
struct EchoMethod {
    header: &'static str,
}

impl Observe for EchoMethod {
    type State = http::Method;

    fn before<B>(&self, req: &mut Request<B>) -> http::Method {
        req.method().clone()
    }

    fn after<B>(&self, method: http::Method, res: &mut Response<B>) {
        res.headers_mut()
            .insert(self.header, HeaderValue::from_str(method.as_str()).unwrap());
    }
}

/// A generic config: the layer and the alias carry the parameter.
#[derive(Clone, Layer)]
struct Tag<T: Clone + Send + Sync + 'static>(T);

impl<T: Clone + Send + Sync + 'static> Middleware for Tag<T> {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        req.context().insert(self.0.clone());
        next.run(req).await
    }
}

fn echo()
-> impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<String>| async move {
        let cx = req.try_context();
        let visits = cx.and_then(|cx| cx.get::<Visits>().copied());
        let remaining = cx.and_then(middleware_core::Context::remaining);
        let seen = req
            .headers()
            .get("x-seen")
            .map(|value| value.to_str().unwrap().to_owned());
        Ok::<_, Infallible>(Response::new(format!(
            "{seen:?} {visits:?} {}",
            remaining.is_some()
        )))
    })
}

async fn body(res: Response<ResponseBody<String>>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn keyed(key: &str) -> Request<String> {
    Request::builder()
        .header("x-key", key)
        .body(String::new())
        .unwrap()
}

#[tokio::test]
async fn the_derived_layer_runs_the_middleware_around_the_service() {
    let svc = ServiceBuilder::new()
        .layer(Stamp::new("x-stamp", String::from("k")).visits(3))
        .service(echo());
    let res = svc.oneshot(keyed("k")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-stamp"], "stamped");
    assert_eq!(body(res).await, "Some(\"x-stamp\") Some(Visits(3)) true");
}

#[tokio::test]
async fn the_derived_layer_short_circuits_without_calling_the_service() {
    let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let inner = {
        let called = std::sync::Arc::clone(&called);
        service_fn(move |_: Request<String>| {
            called.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        })
    };
    let svc = Stamp::new("x-stamp", String::from("k")).layer(inner);
    let res = svc.oneshot(keyed("wrong")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(res).await, "no");
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn defaults_apply_and_setters_override_them() {
    let stamp = Stamp::new("x-a", String::from("k"));
    assert_eq!(stamp.budget, Duration::from_secs(5));
    assert_eq!(stamp.visits, 0);
    let stamp = stamp.budget(Duration::from_millis(250)).visits(9);
    assert_eq!(stamp.budget, Duration::from_millis(250));
    assert_eq!(stamp.visits, 9);
}

#[test]
fn debug_redacts_secret_fields_and_prints_the_others() {
    let stamp = Stamp::new("x-a", String::from("hunter2"));
    let printed = format!("{stamp:?}");
    assert_eq!(
        printed,
        "Stamp { header: \"x-a\", key: \"<redacted>\", budget: 5s, visits: 0 }"
    );
    assert!(!format!("{stamp:#?}").contains("hunter2"));
    assert_eq!(format!("{Tenant:?}"), "Tenant");
    assert_eq!(format!("{:?}", Tag(7_u8)), "Tag(7)");
}

#[tokio::test]
async fn the_hook_mode_uses_the_hook_service() {
    let svc: TenantCheck<_> = Tenant.layer(echo());
    let res = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let req = Request::builder()
        .header("x-tenant", "acme")
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-tenant"], "acme");
}

#[tokio::test]
async fn the_observe_mode_uses_the_observe_service_and_keeps_the_response_type() {
    let svc: EchoMethodService<_> = EchoMethod::new("x-method").layer(echo());
    let _: &middleware_core::ObserveService<EchoMethod, _> = &svc;
    let req = Request::builder()
        .method("PUT")
        .body(String::new())
        .unwrap();
    // The inner service's response type, not a `ResponseBody` over it.
    let res: Response<String> = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-method"], "PUT");
    assert_eq!(
        format!("{:?}", EchoMethod::new("x-m")),
        "EchoMethod { header: \"x-m\" }"
    );
}

#[tokio::test]
async fn generic_structs_get_a_generic_layer_and_alias() {
    let svc: TagService<_, &'static str> =
        Tag("hello").layer(service_fn(|req: Request<String>| async move {
            let tag = req.try_context().and_then(|cx| cx.get::<&str>().copied());
            Ok::<_, Infallible>(Response::new(String::from(tag.unwrap_or("none"))))
        }));
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(body(res).await, "hello");
}

#[tokio::test]
async fn the_service_alias_names_the_core_adapter() {
    let svc: StampService<_> = Stamp::new("x-a", String::from("k")).layer(echo());
    let _: &middleware_core::MiddlewareService<Stamp, _> = &svc;
    assert!(
        svc.get_ref()
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn derived_layers_pass_the_conformance_kit() {
    Conformance::new(Stamp::new("x-a", String::from("k")))
        .with_request(|| keyed("k"))
        .run()
        .await;
    Conformance::new(Tenant)
        .with_request(|| {
            Request::builder()
                .header("x-tenant", "t")
                .body(String::new())
                .unwrap()
        })
        .run()
        .await;
    Conformance::new(EchoMethod::new("x-method")).run().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_derived_layer_works_on_a_multi_thread_runtime() {
    let svc = ServiceBuilder::new()
        .layer(Tenant)
        .layer(Stamp::new("x-stamp", String::from("k")))
        .service(echo());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::builder()
                .header("x-key", "k")
                .header("x-tenant", "t")
                .body(String::new())
                .unwrap();
            svc.oneshot(req).await.unwrap()
        }));
    }
    for task in tasks {
        let res = task.await.unwrap();
        assert_eq!(res.headers()["x-stamp"], "stamped");
        assert_eq!(res.headers()["x-tenant"], "t");
    }
}

#[tokio::test]
async fn a_unit_struct_gets_new() {
    const TENANT: Tenant = Tenant::new();
    let svc = ServiceBuilder::new().layer(TENANT).service(echo());
    let req = Request::builder()
        .header("x-tenant", "acme")
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-tenant"], "acme");
}
