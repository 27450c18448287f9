//! The whole conformance kit (service checks, body checks, `Default`) on every std layer, in the
//! configurations that change what its body wrapper does: each layer keeps the contract of
//! `middleware_core::testing`, streaming bodies included.
#![cfg(feature = "full")]
#![allow(missing_docs)]

use std::time::Duration;

use http::{HeaderName, Request};
use middleware_core::{check_conformance, testing::Conformance};
use middleware_std::{
    auth::{AuthLayer, Principal},
    catch_panic::CatchPanicLayer,
    logging::LogLayer,
    request_id::SetRequestIdLayer,
    stack::StackLayer,
    timeout::{PropagateDeadlineLayer, TimeoutLayer},
    timing::ServerTimingLayer,
};

const TOKEN: &str = "s3cr3t-token";

fn authorized() -> Request<String> {
    Request::builder()
        .uri("/items?page=2&token=x")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-request-id", "client-id-1")
        .body(String::new())
        .expect("a valid request")
}

#[tokio::test]
async fn auth_with_a_valid_bearer_token_keeps_the_contract() {
    check_conformance!(
        Conformance::new(AuthLayer::bearer(TOKEN, Principal::new("ci"))).with_request(authorized)
    )
    .await;
}

#[tokio::test]
async fn auth_with_a_valid_api_key_keeps_the_contract() {
    check_conformance!(
        Conformance::new(AuthLayer::api_key(
            HeaderName::from_static("x-api-key"),
            TOKEN,
            Principal::new("partner"),
        ))
        .with_request(|| {
            let mut req = authorized();
            req.headers_mut()
                .insert("x-api-key", TOKEN.parse().expect("a valid header value"));
            req
        })
    )
    .await;
}

#[tokio::test]
async fn logging_keeps_the_contract() {
    check_conformance!(Conformance::new(LogLayer::new()).with_request(authorized)).await;
}

#[tokio::test]
async fn logging_with_every_option_keeps_the_contract() {
    let layer = LogLayer::new()
        .log_query(true)
        .mask_query_key("token")
        .log_headers(true)
        .redact_header(HeaderName::from_static("x-request-id"))
        .capture_response_body(4)
        .create_context(true);
    check_conformance!(Conformance::new(layer).with_request(authorized)).await;
}

#[tokio::test]
async fn logging_without_creating_a_context_keeps_the_contract() {
    let layer = LogLayer::new().create_context(false);
    check_conformance!(Conformance::new(layer).with_request(authorized)).await;
}

#[tokio::test]
async fn timing_keeps_the_contract() {
    check_conformance!(Conformance::new(ServerTimingLayer::new()).with_request(authorized)).await;
}

#[tokio::test]
async fn timing_with_per_layer_times_and_a_response_time_header_keeps_the_contract() {
    let layer = ServerTimingLayer::new()
        .per_layer_times(true)
        .response_time_header(true);
    check_conformance!(Conformance::new(layer).with_request(authorized)).await;
}

#[tokio::test]
async fn timeout_keeps_the_contract() {
    let layer = TimeoutLayer::new(Duration::from_secs(5));
    check_conformance!(Conformance::new(layer).with_request(authorized)).await;
}

#[tokio::test]
async fn timeout_with_response_body_deadlines_keeps_the_contract() {
    // The stall outlasts the idle deadline: the kit sees the layer cut a stalled body.
    let layer = TimeoutLayer::new(Duration::from_secs(5))
        .response_body_idle(Duration::from_millis(40))
        .response_body_total(Duration::from_secs(5));
    check_conformance!(
        Conformance::new(layer)
            .with_request(authorized)
            .with_stall(Duration::from_millis(300))
    )
    .await;
}

#[tokio::test]
async fn timeout_with_a_total_response_body_deadline_keeps_the_contract() {
    let layer = TimeoutLayer::gateway(Duration::from_secs(5))
        .response_body_total(Duration::from_millis(150));
    check_conformance!(
        Conformance::new(layer)
            .with_request(authorized)
            .with_stall(Duration::from_millis(400))
    )
    .await;
}

#[tokio::test]
async fn deadline_propagation_keeps_the_contract() {
    check_conformance!(Conformance::new(PropagateDeadlineLayer::new()).with_request(authorized))
        .await;
}

#[tokio::test]
async fn catch_panic_keeps_the_contract() {
    check_conformance!(Conformance::new(CatchPanicLayer::new()).with_request(authorized)).await;
}

#[tokio::test]
async fn request_id_keeps_the_contract() {
    check_conformance!(Conformance::new(SetRequestIdLayer::new()).with_request(authorized)).await;
}

#[tokio::test]
async fn the_std_stack_keeps_the_contract() {
    let layer = StackLayer::new(Duration::from_secs(5));
    check_conformance!(Conformance::new(layer).with_request(authorized)).await;
}

#[tokio::test]
async fn the_std_stack_with_response_body_deadlines_keeps_the_contract() {
    let layer = StackLayer::new(Duration::from_secs(5)).timeout(
        TimeoutLayer::new(Duration::from_secs(5)).response_body_idle(Duration::from_millis(40)),
    );
    check_conformance!(
        Conformance::new(layer)
            .with_request(authorized)
            .with_stall(Duration::from_millis(300))
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_std_stack_keeps_the_contract_on_a_multi_thread_runtime() {
    let layer = StackLayer::new(Duration::from_secs(5));
    check_conformance!(Conformance::new(layer).with_request(authorized)).await;
}
