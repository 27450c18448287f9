//! Stack introspection: every std layer and `StackLayer` describe themselves, outermost first,
//! with their settings and without secrets; a foreign service ends the chain with a name.
#![cfg(all(
    feature = "auth",
    feature = "logging",
    feature = "timing",
    feature = "catch-panic",
    feature = "timeout",
    feature = "request-id",
    feature = "limit",
    feature = "rate-limit",
    feature = "body-limit",
    feature = "call-timeout",
    feature = "retry",
    feature = "breaker",
    feature = "dump",
    feature = "axum"
))]
#![allow(missing_docs)]

use std::{convert::Infallible, time::Duration};

use http::{Request, Response, StatusCode};
use middleware_std::{
    Describe,
    auth::{AuthLayer, Principal},
    body_limit::RequestBodyLimitLayer,
    breaker::{BreakerConfig, BreakerLayer, CircuitBreaker},
    call_timeout::CallTimeoutLayer,
    catch_panic::CatchPanicLayer,
    describe, described,
    dump::DumpLayer,
    limit::ConcurrencyLimitLayer,
    logging::LogLayer,
    rate_limit::{Policy, RateLimitLayer},
    request_id::SetRequestIdLayer,
    retry::RetryLayer,
    stack::StackLayer,
    timeout::TimeoutLayer,
    timing::ServerTimingLayer,
};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

const TOKEN: &str = "s3cret-t0ken-never-shown";

fn handler()
-> impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone {
    service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    })
}

#[test]
fn the_full_stack_describes_itself_outermost_first() {
    let app = ServiceBuilder::new()
        .layer(
            StackLayer::new(Duration::from_secs(2))
                .concurrency_limit(ConcurrencyLimitLayer::new(64))
                .rate_limit(RateLimitLayer::new(Policy::per_minute(100)))
                .body_limit(RequestBodyLimitLayer::new(4096))
                .request_body_deadlines(),
        )
        .layer(AuthLayer::bearer(TOKEN, Principal::new("svc")).with_realm("api"))
        .service(described("handler", handler()));
    let chain = describe(&app);
    assert_eq!(
        chain.names().collect::<Vec<_>>(),
        [
            "SetRequestIdLayer",
            "LogLayer",
            "ServerTimingLayer",
            "CatchPanicLayer",
            "TimeoutLayer",
            "ConcurrencyLimitLayer",
            "RateLimitLayer",
            "RequestBodyLimitLayer",
            "RequestBodyTimeoutLayer",
            "AuthLayer",
            "handler",
        ]
    );
    assert!(chain.is_complete());
    assert_eq!(
        chain.find("TimeoutLayer").unwrap().get("budget"),
        Some("2s")
    );
    assert_eq!(
        chain.find("ConcurrencyLimitLayer").unwrap().get("max"),
        Some("64")
    );
    assert_eq!(
        chain.find("RateLimitLayer").unwrap().get("quota"),
        Some("100")
    );
    assert_eq!(
        chain.find("RequestBodyLimitLayer").unwrap().get("limit"),
        Some("4096")
    );
    assert_eq!(
        chain.find("RequestBodyTimeoutLayer").unwrap().get("idle"),
        Some("1s")
    );
    assert_eq!(
        chain.find("SetRequestIdLayer").unwrap().get("header"),
        Some("x-request-id")
    );
    let auth = chain.find("AuthLayer").unwrap();
    assert_eq!(auth.get("realm"), Some("api"));
    assert_eq!(auth.get("header"), Some("authorization"));
    let text = format!("{chain} {chain:#} {chain:?}");
    assert!(!text.contains(TOKEN), "a secret in the description: {text}");
    assert!(text.contains("AuthLayer(authenticator="), "{text}");
    // One line per entry in the alternate form.
    assert_eq!(format!("{chain:#}").lines().count(), 11);
}

#[test]
fn the_stack_layer_describes_the_same_layers_before_it_wraps() {
    let stack = StackLayer::new(Duration::from_secs(2))
        .timing(ServerTimingLayer::new().per_layer_times(true))
        .log(LogLayer::new().log_query(true));
    let before = describe(&stack);
    let after = describe(&stack.layer(described("handler", handler())));
    assert!(!before.is_complete());
    assert_eq!(
        &after.entries()[..after.entries().len() - 1],
        before.entries()
    );
    assert_eq!(
        before
            .find("ServerTimingLayer")
            .unwrap()
            .get("per_layer_times"),
        Some("true")
    );
    assert_eq!(before.find("LogLayer").unwrap().get("query"), Some("true"));
}

#[test]
fn each_std_layer_names_itself_as_a_layer_and_as_a_service() {
    fn both<L>(layer: L, name: &str)
    where
        L: Layer<middleware_std::describe::Described<()>> + Describe,
        L::Service: Describe,
    {
        let before = describe(&layer);
        assert_eq!(before.names().collect::<Vec<_>>(), [name]);
        let after = describe(&layer.layer(described("end", ())));
        assert_eq!(after.names().collect::<Vec<_>>(), [name, "end"]);
        assert_eq!(after.entries()[0], before.entries()[0]);
    }
    both(SetRequestIdLayer::new(), "SetRequestIdLayer");
    both(LogLayer::new(), "LogLayer");
    both(ServerTimingLayer::new(), "ServerTimingLayer");
    both(CatchPanicLayer::new(), "CatchPanicLayer");
    both(TimeoutLayer::new(Duration::from_secs(1)), "TimeoutLayer");
    both(
        middleware_std::timeout::RequestBodyTimeoutLayer::idle(Duration::from_secs(1)),
        "RequestBodyTimeoutLayer",
    );
    both(
        middleware_std::timeout::PropagateDeadlineLayer::new(),
        "PropagateDeadlineLayer",
    );
    both(AuthLayer::bearer(TOKEN, Principal::new("svc")), "AuthLayer");
    both(RequestBodyLimitLayer::new(1), "RequestBodyLimitLayer");
    both(ConcurrencyLimitLayer::new(1), "ConcurrencyLimitLayer");
    both(RateLimitLayer::new(Policy::per_second(1)), "RateLimitLayer");
    both(
        CallTimeoutLayer::new(Duration::from_secs(1)),
        "CallTimeoutLayer",
    );
    both(RetryLayer::new(), "RetryLayer");
    both(
        BreakerLayer::new(CircuitBreaker::new(BreakerConfig::new())),
        "BreakerLayer",
    );
    both(DumpLayer::new(), "DumpLayer");
    #[cfg(feature = "lifecycle")]
    both(
        middleware_std::lifecycle::LifecycleLayer::new(),
        "LifecycleLayer",
    );
}

#[tokio::test]
async fn a_described_service_passes_calls_through_and_ends_the_chain() {
    // A foreign service (here axum's router) cannot describe itself: `described` names it.
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
    let app = ServiceBuilder::new()
        .layer(StackLayer::new(Duration::from_secs(1)))
        .service(described("axum::Router", router));
    let chain = describe(&app);
    assert_eq!(chain.entries().last().unwrap().name(), "axum::Router");
    assert!(chain.entries().last().unwrap().is_service());
    assert!(
        chain
            .to_string()
            .starts_with("SetRequestIdLayer(header=x-request-id, ")
    );
    let res = app
        .oneshot(Request::new(axum::body::Body::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
fn a_doubled_layer_shows_in_the_description() {
    let app = StackLayer::new(Duration::from_secs(1))
        .layer(LogLayer::new().layer(described("handler", handler())));
    assert_eq!(describe(&app).count("LogLayer"), 2);
}
