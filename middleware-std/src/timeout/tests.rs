//! Tests of the timeout layers, under tokio's paused clock unless they say otherwise.

use std::{
    convert::Infallible,
    future::Future,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use middleware_core::{
    CancelCause, Context, RequestExt, RequestId,
    testing::{Conformance, ProbeError},
};
use tokio::{sync::mpsc, time::Instant};
use tower::{ServiceBuilder, ServiceExt, layer::util::Stack, service_fn, util::MapRequestLayer};
use tower_layer::Layer;
use tower_service::Service;

use super::*;
use crate::test_helpers::{plain, with_context, with_extensions};
use middleware_core::testing::allocations_per_request;

// ----- whole-request budget ------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn times_out_with_503_and_names_the_phase() {
    let start = Instant::now();
    let res = TimeoutLayer::new(Duration::from_secs(2))
        .layer(sleeper(Duration::from_secs(60)))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[TIMEOUT_PHASE], "request");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(
        body_string(res).await,
        r#"{"type":"about:blank","title":"Service Unavailable","status":503}"#
    );
}

#[tokio::test(start_paused = true)]
async fn the_gateway_preset_answers_504_and_the_status_and_body_are_configurable() {
    let res = TimeoutLayer::gateway(Duration::from_secs(1))
        .layer(sleeper(Duration::from_secs(60)))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);

    let res = TimeoutLayer::new(Duration::from_secs(1))
        .with_status_code(StatusCode::REQUEST_TIMEOUT)
        .with_body("slow down")
        .layer(sleeper(Duration::from_secs(60)))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.headers()[TIMEOUT_PHASE], "request");
    assert_eq!(body_string(res).await, "slow down");
}

#[tokio::test(start_paused = true)]
async fn the_timeout_response_carries_the_request_id() {
    let mut req = Request::new(String::new());
    req.context()
        .set_request_id(RequestId::try_from("req-7").unwrap())
        .unwrap();
    let res = TimeoutLayer::new(Duration::from_secs(1))
        .layer(sleeper(Duration::from_secs(60)))
        .oneshot(req)
        .await
        .unwrap();
    assert!(body_string(res).await.contains(r#""request_id":"req-7""#));
}

#[tokio::test(start_paused = true)]
async fn a_fast_response_passes_through_and_sees_the_deadline() {
    let svc = TimeoutLayer::new(Duration::from_secs(3)).layer(service_fn(
        |req: Request<String>| async move {
            let left = req.try_context().unwrap().remaining().unwrap();
            Ok::<_, Infallible>(Response::new(format!("{}", left.as_secs())))
        },
    ));
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(TIMEOUT_PHASE).is_none());
    assert_eq!(body_string(res).await, "3");
}

#[test]
fn a_response_ready_at_the_first_poll_arms_no_timer() {
    // No tokio runtime here: arming a timer would panic.
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(ready_ok());
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut future = pin!(svc.call(Request::new(String::new())));
    assert!(format!("{future:?}").contains("running"));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::OK),
        other => panic!("not ready at once: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_timer_is_armed_only_after_a_pending_poll() {
    let mut svc =
        TimeoutLayer::new(Duration::from_secs(1)).layer(sleeper(Duration::from_millis(10)));
    let mut future = pin!(svc.call(Request::new(String::new())));
    assert!(format!("{future:?}").contains(r#"state: "running""#));
    assert!(futures_poll(future.as_mut()).is_pending());
    assert!(format!("{future:?}").contains(r#"state: "armed""#));
    assert_eq!(future.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn expiry_cancels_the_context_before_dropping_the_inner_future() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn({
        let seen = Arc::clone(&seen);
        move |req: Request<String>| {
            let probe = DropProbe {
                cx: req.try_context().unwrap().clone(),
                seen: Arc::clone(&seen),
            };
            async move {
                let _probe = probe;
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        }
    }));
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        *seen.lock().unwrap(),
        [Some(CancelCause::Deadline)],
        "the inner future was dropped once, after the cancellation"
    );
    assert_eq!(cx.cause(), Some(CancelCause::Deadline));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_early_cancels_with_dropped_on_the_server_side_only() {
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    let mut svc = TimeoutLayer::new(Duration::from_secs(5)).layer(sleeper(Duration::from_secs(60)));
    let mut future = Box::pin(svc.call(req));
    assert!(futures_poll(future.as_mut()).is_pending());
    drop(future);
    assert_eq!(cx.cause(), Some(CancelCause::Dropped));

    // A completed request is not cancelled by the drop.
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    TimeoutLayer::new(Duration::from_secs(5))
        .layer(ready_ok())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(cx.cause(), None);

    // Giving up on an outgoing call does not end the request that made it.
    let cx = Context::new();
    cx.set_timeout(Duration::from_secs(5));
    let mut out = Request::new(String::new());
    out.extensions_mut().insert(cx.clone());
    let mut client = PropagateDeadlineLayer::new().layer(sleeper(Duration::from_secs(60)));
    let mut future = Box::pin(client.call(out));
    assert!(futures_poll(future.as_mut()).is_pending());
    drop(future);
    assert_eq!(cx.cause(), None);
}

#[tokio::test(start_paused = true)]
async fn a_response_ready_when_the_deadline_passes_wins_the_tie() {
    // The handler's timer and the budget end at the same instant; the inner future is polled
    // first, so its response wins, every time.
    for _ in 0..20 {
        let res = TimeoutLayer::new(Duration::from_secs(1))
            .layer(sleeper(Duration::from_secs(1)))
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_budget_still_lets_a_ready_response_through() {
    let res = TimeoutLayer::new(Duration::ZERO)
        .layer(ready_ok())
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = TimeoutLayer::new(Duration::ZERO)
        .layer(sleeper(Duration::from_millis(1)))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn nested_budgets_the_earliest_deadline_wins() {
    for (outer, inner, expected) in [(1, 5, 1), (5, 1, 1), (2, 2, 2)] {
        let start = Instant::now();
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_secs(outer)))
            .layer(TimeoutLayer::new(Duration::from_secs(inner)))
            .service(sleeper(Duration::from_secs(60)));
        let res = svc.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(expected),
            "{outer} / {inner}"
        );
    }
    // An existing context deadline (from any layer) is earlier than the budget: it wins.
    let start = Instant::now();
    let mut req = Request::new(String::new());
    req.context().set_timeout(Duration::from_millis(300));
    let res = TimeoutLayer::new(Duration::from_secs(10))
        .layer(sleeper(Duration::from_secs(60)))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

// ----- inbound propagation -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_inbound_grpc_timeout_tightens_the_budget_up_to_the_server_maximum() {
    for (header, expected) in [
        ("100m", Duration::from_millis(100)),
        ("2S", Duration::from_secs(2)),
        ("10S", Duration::from_secs(3)), // capped
        ("1H", Duration::from_secs(3)),
        ("0n", DEFAULT_INBOUND_FLOOR), // raised to the floor
    ] {
        let (elapsed, malformed) = budget_seen(
            TimeoutLayer::new(Duration::from_secs(3)).inbound_grpc_timeout(),
            &[("grpc-timeout", header)],
        )
        .await;
        assert_eq!(elapsed, expected, "{header}");
        assert!(!malformed);
    }
}

#[tokio::test(start_paused = true)]
async fn hostile_inbound_deadlines_are_ignored_and_flagged() {
    let layer = TimeoutLayer::new(Duration::from_secs(3)).inbound_grpc_timeout();
    for bad in [
        "",
        " 1S",
        "1S ",
        "-1S",
        "1s",
        "1.5S",
        "123456789m",
        "1e3m",
        "0x10S",
        "1SS",
        "S",
        "١S",
        "99999999999999999999999999n",
    ] {
        let (elapsed, malformed) = budget_seen(layer.clone(), &[("grpc-timeout", bad)]).await;
        assert_eq!(
            elapsed,
            Duration::from_secs(3),
            "{bad:?} changed the budget"
        );
        assert!(malformed, "{bad:?} was not flagged");
    }
    // Repeated headers are ambiguous: ignored.
    let (elapsed, malformed) = budget_seen(
        layer.clone(),
        &[("grpc-timeout", "1S"), ("grpc-timeout", "2S")],
    )
    .await;
    assert_eq!(elapsed, Duration::from_secs(3));
    assert!(malformed);
    // Non-UTF-8 bytes.
    let mut req = Request::new(String::new());
    req.headers_mut()
        .insert("grpc-timeout", HeaderValue::from_bytes(b"\xff1S").unwrap());
    let start = Instant::now();
    let res = layer
        .layer(sleeper(Duration::from_secs(60)))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_configured_millisecond_header_is_read() {
    let layer = TimeoutLayer::new(Duration::from_secs(3)).inbound_header(
        HeaderName::from_static("x-budget-ms"),
        DeadlineFormat::Millis,
    );
    let (elapsed, _) = budget_seen(layer.clone(), &[("x-budget-ms", "250")]).await;
    assert_eq!(elapsed, Duration::from_millis(250));
    let (elapsed, malformed) = budget_seen(layer.clone(), &[("x-budget-ms", "250ms")]).await;
    assert_eq!(elapsed, Duration::from_secs(3));
    assert!(malformed);
    // The grpc header is not looked at when another one is configured.
    let (elapsed, _) = budget_seen(layer, &[("grpc-timeout", "1m")]).await;
    assert_eq!(elapsed, Duration::from_secs(3));
}

// ----- request body --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_stalled_request_body_gets_408_with_connection_close() {
    let (tx, body) = channel_body();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(30)))
        .layer(RequestBodyTimeoutLayer::idle(Duration::from_secs(1)))
        .service(service_fn({
            let errors = Arc::clone(&errors);
            move |req: Request<TimeoutBody<ChannelBody>>| {
                let errors = Arc::clone(&errors);
                async move {
                    match req.into_body().collect().await {
                        Ok(_) => Ok::<_, Infallible>(Response::new(String::from("read"))),
                        Err(err) => {
                            errors.lock().unwrap().push(err.to_string());
                            // A handler that turns the error into its own 400.
                            let mut res = Response::new(String::from("bad body"));
                            *res.status_mut() = StatusCode::BAD_REQUEST;
                            Ok(res)
                        }
                    }
                }
            }
        }));
    tx.send(Ok(Bytes::from_static(b"partial"))).await.unwrap();
    let start = Instant::now();
    let res = svc.oneshot(Request::new(body)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.headers()["connection"], "close");
    assert_eq!(res.headers()[TIMEOUT_PHASE], "request-body");
    assert_eq!(*errors.lock().unwrap(), ["request body idle timeout"]);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_ignores_the_body_error_is_dropped_with_408() {
    let (_tx, body) = channel_body();
    let dropped_with = Arc::new(Mutex::new(Vec::new()));
    let svc = RequestBodyTimeoutLayer::total(Duration::from_millis(500)).layer(service_fn({
        let seen = Arc::clone(&dropped_with);
        move |req: Request<TimeoutBody<ChannelBody>>| {
            let probe = DropProbe {
                cx: req.try_context().unwrap().clone(),
                seen: Arc::clone(&seen),
            };
            async move {
                let _probe = probe;
                let mut body = pin!(req.into_body());
                let err = body.frame().await.unwrap().unwrap_err();
                let err = err.downcast_ref::<BodyTimeoutError>().unwrap();
                assert!(!err.is_idle());
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        }
    }));
    let mut req = Request::new(body);
    let _ = req.context();
    let start = Instant::now();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(*dropped_with.lock().unwrap(), [Some(CancelCause::Deadline)]);
}

#[tokio::test(start_paused = true)]
async fn a_body_read_in_time_is_untouched() {
    let (tx, body) = channel_body();
    let svc = RequestBodyTimeoutLayer::new(Duration::from_secs(1), Duration::from_secs(10)).layer(
        service_fn(|req: Request<TimeoutBody<ChannelBody>>| async move {
            let bytes = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(String::from_utf8(bytes.to_vec()).unwrap()))
        }),
    );
    let feeder = tokio::spawn(async move {
        for chunk in ["a", "b", "c"] {
            tokio::time::sleep(Duration::from_millis(900)).await;
            tx.send(Ok(Bytes::from_static(chunk.as_bytes())))
                .await
                .unwrap();
        }
    });
    let res = svc.oneshot(Request::new(body)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_string(res).await, "abc");
    feeder.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_passes_through_even_after_a_body_timeout() {
    let (_tx, body) = channel_body();
    let svc = RequestBodyTimeoutLayer::idle(Duration::from_secs(1)).layer(service_fn(
        |req: Request<TimeoutBody<ChannelBody>>| async move {
            let _ = pin!(req.into_body()).frame().await;
            Err::<Response<String>, _>(ProbeError(9))
        },
    ));
    assert_eq!(
        svc.oneshot(Request::new(body)).await.unwrap_err(),
        ProbeError(9)
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_goes_away_mid_body_cancels_the_context_with_dropped() {
    let (tx, body) = channel_body();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(30)))
        .layer(RequestBodyTimeoutLayer::new(
            Duration::from_secs(1),
            Duration::from_secs(10),
        ))
        .service(body_reader(Arc::clone(&seen)));
    let mut req = Request::new(body);
    let cx = req.context().clone();
    tx.send(Ok(Bytes::from_static(b"the first 100 bytes")))
        .await
        .unwrap();
    tx.send(Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "incomplete message",
    )))
    .await
    .unwrap();
    let start = Instant::now();
    let res = svc.oneshot(req).await.unwrap();
    // The handler's own answer to the error it saw, unchanged: not a `408`.
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(TIMEOUT_PHASE).is_none());
    assert!(res.headers().get("connection").is_none());
    assert_eq!(body_string(res).await, "incomplete message");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "at once, not at a deadline"
    );
    assert_eq!(*seen.lock().unwrap(), [CancelCause::Dropped]);
    assert_eq!(cx.cause(), Some(CancelCause::Dropped));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_still_cancels_with_deadline_not_dropped() {
    let (tx, body) = channel_body();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = RequestBodyTimeoutLayer::idle(Duration::from_millis(500))
        .layer(body_reader(Arc::clone(&seen)));
    let mut req = Request::new(body);
    let cx = req.context().clone();
    tx.send(Ok(Bytes::from_static(b"partial"))).await.unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.headers()[TIMEOUT_PHASE], "request-body");
    assert_eq!(cx.cause(), Some(CancelCause::Deadline));
    // The handler's watcher heard the 408 path's `Deadline` (after the handler had answered).
    tokio::task::yield_now().await;
    assert_eq!(*seen.lock().unwrap(), [CancelCause::Deadline]);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_body_read_to_its_end_never_cancels_the_context() {
    let (tx, body) = channel_body();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc =
        RequestBodyTimeoutLayer::idle(Duration::from_secs(1)).layer(body_reader(Arc::clone(&seen)));
    let mut req = Request::new(body);
    let cx = req.context().clone();
    tx.send(Ok(Bytes::from_static(b"whole"))).await.unwrap();
    drop(tx);
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_string(res).await, "whole");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(cx.cause(), None);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_body_without_a_context_creates_none() {
    let (tx, body) = channel_body();
    let had_context = Arc::new(Mutex::new(None));
    let svc = RequestBodyTimeoutLayer::idle(Duration::from_secs(1)).layer(service_fn({
        let had_context = Arc::clone(&had_context);
        move |req: Request<TimeoutBody<ChannelBody>>| {
            let had_context = Arc::clone(&had_context);
            async move {
                let (parts, body) = req.into_parts();
                let err = body.collect().await.unwrap_err();
                *had_context.lock().unwrap() = Some(parts.try_context().is_some());
                Ok::<_, Infallible>(Response::new(err.to_string()))
            }
        }
    }));
    tx.send(Err(std::io::Error::other("reset"))).await.unwrap();
    let res = svc.oneshot(Request::new(body)).await.unwrap();
    assert_eq!(body_string(res).await, "reset");
    assert_eq!(*had_context.lock().unwrap(), Some(false));
}

#[tokio::test(start_paused = true)]
async fn without_deadlines_the_layer_still_reports_a_peer_abort() {
    let (tx, body) = channel_body();
    let seen = Arc::new(Mutex::new(Vec::new()));
    // Not reachable through the public constructors today; the service handles it anyway.
    let layer = RequestBodyTimeoutLayer {
        deadlines: body::BodyDeadlines::default(),
    };
    let svc = layer.layer(body_reader(Arc::clone(&seen)));
    let mut req = Request::new(body);
    let cx = req.context().clone();
    tx.send(Err(std::io::Error::from(
        std::io::ErrorKind::ConnectionReset,
    )))
    .await
    .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(cx.cause(), Some(CancelCause::Dropped));
    assert_eq!(*seen.lock().unwrap(), [CancelCause::Dropped]);
}

// ----- response body -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_stalled_response_body_ends_with_a_distinguishable_error() {
    let (tx, body) = channel_body();
    let body = Arc::new(Mutex::new(Some(body)));
    let svc = TimeoutLayer::new(Duration::from_secs(1))
        .response_body_idle(Duration::from_secs(2))
        .layer(service_fn(move |_: Request<String>| {
            let body = body.lock().unwrap().take().unwrap();
            async move { Ok::<_, Infallible>(Response::new(body)) }
        }));
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    tx.send(Ok(Bytes::from_static(b"head"))).await.unwrap();
    let start = Instant::now();
    let mut body = pin!(res.into_body());
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "head"
    );
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let err = err.downcast_ref::<BodyTimeoutError>().unwrap();
    assert_eq!(err.phase(), TimeoutPhase::ResponseStream);
    assert!(err.is_idle());
    let again = body.frame().await.unwrap().unwrap_err();
    assert_eq!(again.downcast_ref::<BodyTimeoutError>(), Some(err));
    assert_eq!(cx.cause(), Some(CancelCause::Deadline));
    let expiry = cx.expiry().expect("reported");
    assert_eq!(expiry.phase(), TimeoutPhase::ResponseStream);
    assert!(!expiry.is_by_client());
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn the_response_body_total_deadline_counts_from_the_head() {
    let (tx, body) = channel_body();
    let body = Arc::new(Mutex::new(Some(body)));
    let svc = TimeoutLayer::new(Duration::from_secs(10))
        .response_body_total(Duration::from_secs(3))
        .layer(service_fn(move |_: Request<String>| {
            let body = body.lock().unwrap().take().unwrap();
            async move {
                // The head takes 5 s of the 10 s budget; the body still gets its full 3 s.
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, Infallible>(Response::new(body))
            }
        }));
    let start = Instant::now();
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    let err = res.into_body().collect().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(8));
    assert!(!err.downcast_ref::<BodyTimeoutError>().unwrap().is_idle());
    drop(tx);
}

// ----- outbound ------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_remaining_budget_is_stamped_on_outgoing_requests() {
    let stamped = Arc::new(Mutex::new(Vec::new()));
    let client = PropagateDeadlineLayer::new().layer(service_fn({
        let stamped = Arc::clone(&stamped);
        move |req: Request<String>| {
            stamped
                .lock()
                .unwrap()
                .push(req.headers().get("grpc-timeout").cloned());
            async { Ok::<_, Infallible>(Response::new(String::from("upstream"))) }
        }
    }));
    let cx = Context::new();
    cx.set_timeout(Duration::from_millis(1500));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut out = Request::new(String::new());
    out.extensions_mut().insert(cx.clone());
    let res = client.clone().oneshot(out).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // No context: nothing stamped, nothing enforced.
    client
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(
        *stamped.lock().unwrap(),
        [Some(HeaderValue::from_static("1000000u")), None]
    );

    let millis = PropagateDeadlineLayer::new()
        .with_header(
            HeaderName::from_static("x-budget-ms"),
            DeadlineFormat::Millis,
        )
        .layer(service_fn(|req: Request<String>| async move {
            let budget = req.headers()["x-budget-ms"].to_str().unwrap().to_owned();
            Ok::<_, Infallible>(Response::new(budget))
        }));
    let mut out = Request::new(String::new());
    out.extensions_mut().insert(cx);
    let res = millis.oneshot(out).await.unwrap();
    assert_eq!(body_string(res).await, "1000");
}

#[tokio::test(start_paused = true)]
async fn an_outgoing_call_is_cut_at_the_deadline_with_504() {
    let cx = Context::new();
    cx.set_timeout(Duration::from_secs(2));
    let client = PropagateDeadlineLayer::new().layer(sleeper(Duration::from_secs(60)));
    let mut out = Request::new(String::new());
    out.extensions_mut().insert(cx.clone());
    let start = Instant::now();
    let res = client.oneshot(out).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.headers()[TIMEOUT_PHASE], "request");
    assert_eq!(cx.cause(), Some(CancelCause::Deadline));
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_is_not_sent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let client = PropagateDeadlineLayer::new()
        .with_status_code(StatusCode::SERVICE_UNAVAILABLE)
        .layer(service_fn({
            let calls = Arc::clone(&calls);
            move |_: Request<String>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(String::new())) }
            }
        }));
    let cx = Context::new();
    cx.set_timeout(Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut out = Request::new(String::new());
    out.extensions_mut().insert(cx);
    let res = client.oneshot(out).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ----- conformance, Debug --------------------------------------------------------------------

#[tokio::test]
async fn the_layers_pass_the_conformance_kit() {
    Conformance::new(TimeoutLayer::new(Duration::from_secs(5)).inbound_grpc_timeout())
        .with_request(|| {
            Request::builder()
                .header("grpc-timeout", "3S")
                .body(String::new())
                .unwrap()
        })
        .run()
        .await;
    Conformance::new(
        TimeoutLayer::gateway(Duration::from_secs(5)).response_body_idle(Duration::from_secs(1)),
    )
    .run()
    .await;
    Conformance::new(PropagateDeadlineLayer::new())
        .with_request(|| {
            let mut req = Request::new(String::new());
            req.context().set_timeout(Duration::from_secs(5));
            req
        })
        .run()
        .await;
    Conformance::new(PropagateDeadlineLayer::new()).run().await;
    // The request-body layer changes the body type; unwrapping it again lets the kit's
    // `Request<String>` probe sit inside.
    let unwrap_body =
        MapRequestLayer::new(|req: Request<TimeoutBody<String>>| req.map(TimeoutBody::into_inner));
    Conformance::new(Stack::new(
        unwrap_body,
        RequestBodyTimeoutLayer::new(Duration::from_secs(1), Duration::from_secs(5)),
    ))
    .with_request(|| Request::new(String::from("a body")))
    .run()
    .await;
}

#[test]
fn debug_output_describes_the_configuration() {
    let svc = TimeoutLayer::gateway(Duration::from_secs(2))
        .inbound_grpc_timeout()
        .layer(ready_ok());
    let debug = format!("{svc:?}");
    assert!(debug.starts_with("Timeout {"), "{debug}");
    assert!(debug.contains("504"), "{debug}");
    assert!(debug.contains("grpc-timeout"), "{debug}");
    let debug = format!(
        "{:?}",
        RequestBodyTimeout::new(ready_ok(), Duration::from_secs(1), Duration::from_secs(2))
    );
    assert!(debug.contains("idle: Some(1s)"), "{debug}");
    let debug = format!("{:?}", PropagateDeadline::new(ready_ok()));
    assert!(debug.contains("GrpcTimeout"), "{debug}");
    assert_eq!(
        format!(
            "{:?}",
            BodyTimeoutError::new(TimeoutPhase::RequestBody, true)
        ),
        "BodyTimeoutError { phase: RequestBody, kind: Idle }"
    );
}

// ----- multi-thread runtime (real clock, short budgets) --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_times_out_and_cancels_before_dropping() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = TimeoutLayer::new(Duration::from_millis(20)).layer(service_fn({
        let seen = Arc::clone(&seen);
        move |req: Request<String>| {
            let cx = req.try_context().unwrap().clone();
            let probe = DropProbe {
                cx: cx.clone(),
                seen: Arc::clone(&seen),
            };
            async move {
                let _probe = probe;
                // Work spawned on another worker that waits for the cancellation.
                let waiter = tokio::spawn(async move { cx.cancelled().await });
                let _ = waiter.await;
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        }
    }));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            svc.oneshot(Request::new(String::new())).await.unwrap()
        }));
    }
    for task in tasks {
        let res = task.await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[TIMEOUT_PHASE], "request");
    }
    assert_eq!(*seen.lock().unwrap(), [Some(CancelCause::Deadline); 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_fast_responses_and_conformance() {
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(30)))
        .layer(RequestBodyTimeoutLayer::idle(Duration::from_secs(30)))
        .service(service_fn(|req: Request<TimeoutBody<String>>| async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(String::from_utf8(body.to_vec()).unwrap()))
        }));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let res = svc.oneshot(Request::new(format!("req {i}"))).await.unwrap();
            (i, body_string(res).await)
        }));
    }
    for task in tasks {
        let (i, body) = task.await.unwrap();
        assert_eq!(body, format!("req {i}"));
    }
    Conformance::new(TimeoutLayer::new(Duration::from_secs(5)))
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_thread_a_peer_abort_cancels_with_dropped() {
    // Real clock, but nothing here waits for a deadline: the body fails at once.
    for _ in 0..50 {
        let (tx, body) = channel_body();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_secs(30)))
            .layer(RequestBodyTimeoutLayer::new(
                Duration::from_secs(10),
                Duration::from_secs(30),
            ))
            .service(body_reader(Arc::clone(&seen)));
        let mut req = Request::new(body);
        let cx = req.context().clone();
        let feeder = tokio::spawn(async move {
            tx.send(Ok(Bytes::from_static(b"part"))).await.unwrap();
            tx.send(Err(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )))
            .await
            .unwrap();
        });
        let res = tokio::spawn(svc.oneshot(req)).await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(cx.cause(), Some(CancelCause::Dropped));
        assert_eq!(*seen.lock().unwrap(), [CancelCause::Dropped]);
        feeder.await.unwrap();
    }
}

// ----- allocations ---------------------------------------------------------------------------

#[test]
fn the_fast_path_allocates_only_the_context() {
    // A request that already carries an extension (its map is allocated, as after any router).
    let base = allocations_per_request(ready_ok(), with_extensions);
    let timeout = TimeoutLayer::new(Duration::from_secs(1)).layer(ready_ok());
    assert_eq!(allocations_per_request(timeout, with_extensions) - base, 2);
    // With a context made by an outer layer: nothing at all.
    let base = allocations_per_request(ready_ok(), with_context);
    let timeout = TimeoutLayer::new(Duration::from_secs(1)).layer(ready_ok());
    assert_eq!(allocations_per_request(timeout, with_context) - base, 0);
    let inbound = TimeoutLayer::new(Duration::from_secs(1))
        .inbound_grpc_timeout()
        .layer(ready_ok());
    assert_eq!(allocations_per_request(inbound, with_context) - base, 0);
    // Response-body deadlines: their state (timer included, armed or not) in one allocation
    // made when the body is wrapped, so that bodies without deadlines stay small.
    let response_body = TimeoutLayer::new(Duration::from_secs(1))
        .response_body_idle(Duration::from_secs(1))
        .layer(ready_ok());
    assert_eq!(
        allocations_per_request(response_body, with_context) - base,
        1
    );
}

#[test]
fn request_body_deadlines_cost_two_allocations_only_for_a_body() {
    let layer = RequestBodyTimeoutLayer::new(Duration::from_secs(1), Duration::from_secs(5));
    let inner = || {
        service_fn(|_: Request<TimeoutBody<String>>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
        })
    };
    let base = allocations_per_request(ready_ok(), plain);
    assert_eq!(
        allocations_per_request(layer.layer(inner()), plain) - base,
        0
    );
    let with_body = || Request::new(String::from("payload"));
    let base = allocations_per_request(ready_ok(), with_body);
    // The flag shared by the body and the future, and the body's deadline state (its timer
    // included, so a body that waits allocates nothing more).
    assert_eq!(
        allocations_per_request(layer.layer(inner()), with_body) - base,
        2
    );
    // With a context made by an outer layer: the body watches it for a peer abort, which
    // costs a clone, not an allocation; nor is a context created for an empty body.
    let with_context_and_body = || {
        let mut req = Request::new(String::from("payload"));
        let _ = req.context();
        req
    };
    let base = allocations_per_request(ready_ok(), with_context_and_body);
    assert_eq!(
        allocations_per_request(layer.layer(inner()), with_context_and_body) - base,
        2
    );
    let base = allocations_per_request(ready_ok(), with_context);
    assert_eq!(
        allocations_per_request(layer.layer(inner()), with_context) - base,
        0
    );
    let no_deadlines = RequestBodyTimeoutLayer {
        deadlines: body::BodyDeadlines::default(),
    };
    let base = allocations_per_request(ready_ok(), with_context_and_body);
    assert_eq!(
        allocations_per_request(no_deadlines.layer(inner()), with_context_and_body) - base,
        0
    );
}

#[test]
fn the_request_body_stays_small() {
    // The deadline state behind one pointer (`None` without deadlines), the context handle
    // (watched for a peer abort on the request side, for expiry on the response side), a flag
    // and the phase: 40 bytes on 64-bit targets, moved through every layer around the body.
    let size = std::mem::size_of::<TimeoutBody<String>>();
    let inner = std::mem::size_of::<String>();
    assert!(size - inner <= 40, "{size} bytes for a body of {inner}");
}

#[tokio::test(start_paused = true)]
async fn outbound_stamping_allocates_the_header_value_and_the_header_map() {
    let make = || {
        let mut req = Request::new(String::new());
        req.context().set_timeout(Duration::from_secs(5));
        req
    };
    let base = allocations_per_request(ready_ok(), make);
    let client = PropagateDeadlineLayer::new().layer(ready_ok());
    // The encoded value (1) and the request's header map, empty until now (its indices and
    // entries: 2).
    assert_eq!(allocations_per_request(client, make) - base, 3);
}

#[test]
fn the_response_future_stays_small() {
    type Fut = <Timeout<ReadyOk> as Service<Request<String>>>::Future;
    // The inner future, the lazily armed `Sleep` (112 bytes on 64-bit targets), the context
    // handle, the timeout response's configuration and the drop flag: 216 bytes on 64-bit.
    let size = std::mem::size_of::<Fut>();
    let inner = std::mem::size_of::<<ReadyOk as Service<Request<String>>>::Future>();
    assert!(
        size - inner <= 216,
        "{size} bytes for an inner future of {inner}"
    );
}

// ----- the budget and the response body -----------------------------------------------------

/// A handler streaming `rows` rows, one every 300 ms, that stops when the request is cancelled
/// (the documented pattern).
fn row_streamer(
    rows: usize,
) -> impl Service<
    Request<String>,
    Response = Response<ChannelBody>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<ChannelBody>, Infallible>>,
> + Clone {
    service_fn(move |req: Request<String>| {
        let cx = req.try_context().expect("the budget made one").clone();
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            for row in 0..rows {
                tokio::select! {
                    _ = cx.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
                let row = Bytes::from(format!("row {row}\n"));
                if tx.send(Ok(row)).await.is_err() {
                    break;
                }
            }
        });
        std::future::ready(Ok(Response::new(body)))
    })
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_by_the_budget_ends_with_an_error_not_cleanly() {
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(row_streamer(10));
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = pin!(res.into_body());
    let mut rows = 0;
    let err = loop {
        match body.frame().await {
            Some(Ok(_)) => rows += 1,
            Some(Err(err)) => break err,
            None => panic!("the cut body ended cleanly after {rows} rows"),
        }
    };
    assert_eq!(rows, 3, "rows at 300, 600 and 900 ms, then the budget");
    let timeout = err.downcast_ref::<BodyTimeoutError>().expect("a timeout");
    assert!(timeout.is_budget());
    assert_eq!(timeout.phase(), TimeoutPhase::ResponseStream);
    assert_eq!(err.to_string(), "response body cut by the request budget");
    let again = body.frame().await.unwrap().unwrap_err();
    assert!(
        again.is::<BodyTimeoutError>(),
        "never a clean end after the cut"
    );
    let expiry = cx.expiry().expect("reported");
    assert_eq!(expiry.phase(), TimeoutPhase::ResponseStream);
    assert!(!expiry.is_by_client());
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_by_the_clients_deadline_is_reported_as_the_clients() {
    let svc = TimeoutLayer::new(Duration::from_secs(10))
        .inbound_grpc_timeout()
        .layer(row_streamer(10));
    let mut req = Request::builder()
        .header("grpc-timeout", "1S")
        .body(String::new())
        .unwrap();
    let cx = req.context().clone();
    let res = svc.oneshot(req).await.unwrap();
    let err = res.into_body().collect().await.unwrap_err();
    assert!(err.downcast_ref::<BodyTimeoutError>().unwrap().is_budget());
    let expiry = cx.expiry().unwrap();
    assert_eq!(expiry.phase(), TimeoutPhase::ResponseStream);
    assert!(expiry.is_by_client());
}

#[tokio::test(start_paused = true)]
async fn a_stream_finished_within_the_budget_ends_cleanly() {
    let svc = TimeoutLayer::new(Duration::from_secs(10)).layer(row_streamer(10));
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    let res = svc.oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body).lines().count(), 10);
    assert_eq!(cx.expiry(), None);
}

#[tokio::test(start_paused = true)]
async fn a_response_let_through_by_the_tie_rule_keeps_a_clean_body() {
    // A zero budget: the deadline has passed before the handler answers, yet its answer wins
    // (the tie rule), and that whole body was made after the deadline: it was not cut.
    let svc = TimeoutLayer::new(Duration::ZERO).layer(service_fn(|_: Request<String>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(String::from("whole"))))
    }));
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_string(res).await, "whole");
    assert_eq!(cx.expiry(), None);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_response_itself_ends_cleanly() {
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    let res = TimeoutLayer::new(Duration::from_secs(1))
        .layer(sleeper(Duration::from_secs(60)))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The context is cancelled with `Deadline`, yet the layer's own answer is complete.
    assert_eq!(cx.cause(), Some(CancelCause::Deadline));
    assert!(body_string(res).await.contains("503"));
    let expiry = cx.expiry().unwrap();
    assert_eq!(expiry.phase(), middleware_core::TimeoutPhase::Head);
    assert!(!expiry.is_by_client());
}

#[tokio::test(start_paused = true)]
async fn the_client_side_does_not_turn_a_late_end_into_an_error() {
    // Outbound, the upstream's body is its own: a clean end after the deadline is an end.
    let (tx, body) = channel_body();
    let body = Arc::new(Mutex::new(Some(body)));
    let client = PropagateDeadlineLayer::new().layer(service_fn(move |_: Request<String>| {
        let body = body.lock().unwrap().take().unwrap();
        std::future::ready(Ok::<_, Infallible>(Response::new(body)))
    }));
    let mut out = Request::new(String::new());
    out.context().set_timeout(Duration::from_secs(1));
    let res = client.oneshot(out).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tx.send(Ok(Bytes::from_static(b"late"))).await.unwrap();
    drop(tx);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "late");
}

// ----- whose deadline expired ----------------------------------------------------------------

/// The expiry reported for a request with `headers` to a sleeping handler under `layer`, and
/// how long it ran.
async fn expiry_seen(
    layer: TimeoutLayer,
    headers: &[(&str, &str)],
    outer: Option<Duration>,
) -> (middleware_core::Expiry, Duration) {
    let mut req = Request::new(String::new());
    for (name, value) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let cx = req.context().clone();
    if let Some(outer) = outer {
        cx.set_timeout(outer);
    }
    let start = Instant::now();
    let res = layer
        .layer(sleeper(Duration::from_secs(3600)))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[TIMEOUT_PHASE], "request");
    let expiry = cx.expiry().expect("reported");
    assert_eq!(expiry.phase(), middleware_core::TimeoutPhase::Head);
    (expiry, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn an_expired_client_deadline_is_reported_as_the_clients_own() {
    let layer = TimeoutLayer::new(Duration::from_secs(3)).inbound_grpc_timeout();
    let (expiry, elapsed) = expiry_seen(layer.clone(), &[("grpc-timeout", "100m")], None).await;
    assert!(expiry.is_by_client());
    assert_eq!(elapsed, Duration::from_millis(100));
    // The server's budget was the tighter one.
    let (expiry, elapsed) = expiry_seen(layer.clone(), &[("grpc-timeout", "5S")], None).await;
    assert!(!expiry.is_by_client());
    assert_eq!(elapsed, Duration::from_secs(3));
    // No header, a malformed one: the server's.
    let (expiry, _) = expiry_seen(layer.clone(), &[], None).await;
    assert!(!expiry.is_by_client());
    let (expiry, _) = expiry_seen(layer.clone(), &[("grpc-timeout", "1 m")], None).await;
    assert!(!expiry.is_by_client());
    // An outer layer's deadline was tighter than the client's: not the client's.
    let (expiry, elapsed) = expiry_seen(
        layer,
        &[("grpc-timeout", "100m")],
        Some(Duration::from_millis(50)),
    )
    .await;
    assert!(!expiry.is_by_client());
    assert_eq!(elapsed, Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn hostile_inbound_deadlines_around_the_floor_are_raised_to_it() {
    let layer = TimeoutLayer::new(Duration::from_secs(3)).inbound_grpc_timeout();
    assert_eq!(layer.inbound_floor, Duration::from_millis(5));
    for (header, expected) in [
        ("0n", Duration::from_millis(5)),
        ("1n", Duration::from_millis(5)),
        ("00000000n", Duration::from_millis(5)),
        ("999u", Duration::from_millis(5)),
        ("4999999n", Duration::from_millis(5)),
        ("4999u", Duration::from_millis(5)),
        ("4m", Duration::from_millis(5)),
        ("0m", Duration::from_millis(5)),
        ("0S", Duration::from_millis(5)),
        ("0H", Duration::from_millis(5)),
        ("5000000n", Duration::from_millis(5)),
        ("5000u", Duration::from_millis(5)),
        ("5m", Duration::from_millis(5)),
        ("6m", Duration::from_millis(6)),
        ("99999999n", Duration::from_millis(100)),
    ] {
        let (expiry, elapsed) = expiry_seen(layer.clone(), &[("grpc-timeout", header)], None).await;
        assert_eq!(elapsed, expected, "{header}");
        // The (raised) deadline is still the client's: never the server's alarm.
        assert!(expiry.is_by_client(), "{header}");
    }
    // A floor above the server's budget never lengthens it.
    let (expiry, elapsed) = expiry_seen(
        layer.clone().inbound_floor(Duration::from_secs(10)),
        &[("grpc-timeout", "1n")],
        None,
    )
    .await;
    assert_eq!(elapsed, Duration::from_secs(3));
    assert!(!expiry.is_by_client());
    // A zero floor honours every deadline.
    let (expiry, elapsed) = expiry_seen(
        layer.inbound_floor(Duration::ZERO),
        &[("grpc-timeout", "0n")],
        None,
    )
    .await;
    assert_eq!(elapsed, Duration::ZERO);
    assert!(expiry.is_by_client());
}

#[tokio::test(start_paused = true)]
async fn a_request_body_timeout_is_reported_with_its_phase() {
    let (_tx, body) = channel_body();
    let mut req = Request::new(body);
    let cx = req.context().clone();
    let res = RequestBodyTimeoutLayer::idle(Duration::from_millis(300))
        .layer(body_reader(Arc::default()))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    let expiry = cx.expiry().expect("reported");
    assert_eq!(expiry.phase(), middleware_core::TimeoutPhase::RequestBody);
    assert!(!expiry.is_by_client());
}

proptest::proptest! {
    #[test]
    fn the_budget_in_force_never_exceeds_the_server_and_never_undercuts_the_floor(
        server_ms in 0u64..100_000,
        floor_ms in 0u64..1_000,
        n in 0u64..=99_999_999,
        unit in proptest::sample::select(b"HMSmun".to_vec()),
    ) {
        let server = Duration::from_millis(server_ms);
        let floor = Duration::from_millis(floor_ms);
        let header = format!("{n}{}", char::from(unit));
        let inbound = DeadlineFormat::GrpcTimeout.parse(header.as_bytes()).unwrap();
        let (budget, by_client) = service::budget_in_force(server, inbound, floor);
        proptest::prop_assert!(budget <= server);
        proptest::prop_assert!(budget >= floor.min(server));
        proptest::prop_assert_eq!(by_client, budget < server);
        if by_client {
            proptest::prop_assert_eq!(budget, inbound.max(floor));
        }
    }
}

// ----- readiness -----------------------------------------------------------------------------

/// A service that is never ready; counts its calls.
#[derive(Clone, Default)]
struct NeverReady(Arc<AtomicUsize>);

impl Service<Request<String>> for NeverReady {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(String::new())))
    }
}

/// A service that becomes ready after `delay`, counted from its first `poll_ready`.
struct ReadyAfter {
    delay: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Service<Request<String>> for ReadyAfter {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        let delay = self.delay;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
        timer.as_mut().poll(cx).map(Ok)
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        std::future::ready(Ok(Response::new(String::from("served"))))
    }
}

#[tokio::test(start_paused = true)]
async fn an_inner_service_never_ready_gets_503_after_the_budget() {
    let inner = NeverReady::default();
    let calls = Arc::clone(&inner.0);
    let mut req = Request::new(String::new());
    let cx = req.context().clone();
    let start = Instant::now();
    let res = TimeoutLayer::new(Duration::from_millis(100))
        .layer(inner)
        .oneshot(req);
    // Bounded: a layer that waits for readiness without end must fail, not hang.
    let res = tokio::time::timeout(Duration::from_secs(60), res)
        .await
        .expect("still waiting for readiness after 60 s")
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[TIMEOUT_PHASE], "ready");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "an unready service is not called"
    );
    let expiry = cx.expiry().expect("reported");
    assert_eq!(expiry.phase(), middleware_core::TimeoutPhase::Ready);
    assert!(!expiry.is_by_client());
    assert_eq!(cx.cause(), Some(CancelCause::Deadline));
    assert!(body_string(res).await.contains("503"));
}

#[tokio::test(start_paused = true)]
async fn readiness_within_the_budget_is_waited_for_and_forwarded() {
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(ReadyAfter {
        delay: Duration::from_millis(400),
        timer: None,
    });
    let mut task = TaskContext::from_waker(Waker::noop());
    assert!(
        svc.poll_ready(&mut task).is_pending(),
        "readiness is forwarded"
    );
    let start = Instant::now();
    let res = svc.ready().await.unwrap().call(plain()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(400));
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_string(res).await, "served");
}

#[tokio::test(start_paused = true)]
async fn each_handle_waits_one_budget_for_readiness() {
    let svc = TimeoutLayer::new(Duration::from_millis(100)).layer(NeverReady::default());
    // A handle that gave up sheds one request, then waits a budget again.
    let mut handle = svc.clone();
    let start = Instant::now();
    for round in 1..=2 {
        let res = handle.ready().await.unwrap().call(plain()).await.unwrap();
        assert_eq!(res.headers()[TIMEOUT_PHASE], "ready");
        assert_eq!(start.elapsed(), Duration::from_millis(100) * round);
    }
    // A clone starts afresh, whatever the state of the handle it was cloned from.
    let mut task = TaskContext::from_waker(Waker::noop());
    assert!(handle.poll_ready(&mut task).is_pending());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut clone = handle.clone();
    assert!(clone.poll_ready(&mut task).is_pending());
}

// ----- per-layer time ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_layer_records_its_own_time_only_when_asked() {
    let svc = TimeoutLayer::new(Duration::from_secs(1))
        .inbound_grpc_timeout()
        .layer(ready_ok());
    let mut asked = Request::new(String::new());
    asked.context().request_layer_times();
    let cx = asked.context().clone();
    svc.clone().oneshot(asked).await.unwrap();
    let names: Vec<String> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(names, ["mw.timeout"]);

    let mut quiet = Request::new(String::new());
    let cx = quiet.context().clone();
    svc.oneshot(quiet).await.unwrap();
    assert!(cx.marks().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_request_body_layer_records_its_own_time_only_when_asked() {
    let svc = RequestBodyTimeoutLayer::idle(Duration::from_secs(1)).layer(service_fn(
        |_: Request<TimeoutBody<String>>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        },
    ));
    let mut asked = Request::new(String::from("a body"));
    asked.context().request_layer_times();
    let cx = asked.context().clone();
    svc.clone().oneshot(asked).await.unwrap();
    let names: Vec<String> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(names, ["mw.request_body_timeout"]);

    let mut quiet = Request::new(String::from("a body"));
    let cx = quiet.context().clone();
    svc.oneshot(quiet).await.unwrap();
    assert!(cx.marks().is_empty());
}

// ----- fixtures ------------------------------------------------------------------------------

/// A request body fed through a channel.
pub(super) struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

pub(super) fn channel_body() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, ChannelBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody(rx))
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// A handler that watches `cancelled()` in a spawned task, reads the body and answers `400`
/// with the body's error when it fails; the cause the watcher saw goes to `seen`.
fn body_reader(
    seen: Arc<Mutex<Vec<CancelCause>>>,
) -> impl Service<
    Request<TimeoutBody<ChannelBody>>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<String>, Infallible>> + Send,
> + Clone {
    service_fn(move |req: Request<TimeoutBody<ChannelBody>>| {
        let seen = Arc::clone(&seen);
        async move {
            let watcher = req.try_context().cloned().map(|cx| {
                tokio::spawn(async move {
                    let cause = cx.cancelled().await;
                    seen.lock().unwrap().push(cause);
                })
            });
            let res = match req.into_body().collect().await {
                Ok(bytes) => Response::new(String::from_utf8(bytes.to_bytes().to_vec()).unwrap()),
                Err(err) => {
                    let mut res = Response::new(err.to_string());
                    *res.status_mut() = StatusCode::BAD_REQUEST;
                    res
                }
            };
            if let Some(watcher) = watcher {
                // Bounded: a watcher that never hears a cause must not hang the test.
                let _ = tokio::time::timeout(Duration::from_secs(1), watcher).await;
            }
            Ok::<_, Infallible>(res)
        }
    })
}

/// Records the context's cancel cause when dropped.
struct DropProbe {
    cx: Context,
    seen: Arc<Mutex<Vec<Option<CancelCause>>>>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.seen.lock().unwrap().push(self.cx.cause());
    }
}

type ReadyOk = tower::util::ServiceFn<
    fn(Request<String>) -> std::future::Ready<Result<Response<String>, Infallible>>,
>;

fn ready_ok() -> ReadyOk {
    fn answer(_: Request<String>) -> std::future::Ready<Result<Response<String>, Infallible>> {
        std::future::ready(Ok(Response::new(String::new())))
    }
    service_fn(answer as fn(_) -> _)
}

fn sleeper(
    delay: Duration,
) -> impl Service<
    Request<String>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<String>, Infallible>> + Send,
> + Clone {
    service_fn(move |_: Request<String>| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, Infallible>(Response::new(String::from("done")))
    })
}

/// How long a sleeping handler ran under `layer` for a request with `headers`, and whether the
/// context was flagged with `MalformedDeadlineHeader`.
async fn budget_seen(layer: TimeoutLayer, headers: &[(&str, &str)]) -> (Duration, bool) {
    let flagged = Arc::new(Mutex::new(None));
    let svc = layer.layer(service_fn({
        let flagged = Arc::clone(&flagged);
        move |req: Request<String>| {
            *flagged.lock().unwrap() = Some(
                req.try_context()
                    .unwrap()
                    .get::<MalformedDeadlineHeader>()
                    .is_some(),
            );
            async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        }
    }));
    let mut req = Request::new(String::new());
    for (name, value) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let start = Instant::now();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let flagged = flagged.lock().unwrap().expect("the handler ran");
    (start.elapsed(), flagged)
}

async fn body_string<B>(res: Response<B>) -> String
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn futures_poll<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut TaskContext::from_waker(Waker::noop()))
}
