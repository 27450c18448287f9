use std::{
    convert::Infallible,
    future::poll_fn,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response};
use middleware_core::testing::{Conformance, ProbeError};
use tower::{
    ServiceBuilder, ServiceExt, service_fn,
    util::{BoxCloneService, MapErrLayer},
};

use super::*;

#[tokio::test(start_paused = true)]
async fn a_cap_never_shortens_the_callers_deadline() {
    let request = caller(Duration::from_secs(10));
    let (upstream, seen) = upstream(Duration::from_secs(1));
    let err = CallTimeoutLayer::new(Duration::from_millis(100))
        .layer(upstream)
        .oneshot(call(&request))
        .await
        .unwrap_err();
    assert!(err.is::<CallTimeoutError>(), "{err}");
    assert!(
        request.remaining().unwrap() > Duration::from_secs(9),
        "the caller kept its budget: {:?}",
        request.remaining()
    );
    assert_eq!(request.cause(), None, "the caller was not cancelled");
    let scope = seen.lock().unwrap().pop().unwrap();
    assert!(!scope.same_scope(&request), "the call ran in its own scope");
    assert!(scope.same_request(&request));
    assert_eq!(scope.cause(), Some(CancelCause::Deadline));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_future_never_cancels_the_request() {
    let request = caller(Duration::from_secs(10));
    let seen: Arc<Mutex<Vec<Context>>> = Arc::default();
    // The upstream behaves like an adapter: its future holds a drop guard of the context it got.
    let upstream = {
        let seen = Arc::clone(&seen);
        service_fn(move |req: Request<()>| {
            let scope = req.try_context().unwrap().clone();
            seen.lock().unwrap().push(scope.clone());
            let guard = scope.drop_guard();
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, Infallible>(Response::new(()))
            }
        })
    };
    let mut svc = CallTimeoutLayer::new(Duration::from_secs(1)).layer(upstream);
    poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let mut future = Box::pin(svc.call(call(&request)));
    assert!(futures_poll_once(future.as_mut()).await.is_none());
    drop(future);
    let scope = seen.lock().unwrap().pop().unwrap();
    assert_eq!(
        scope.cause(),
        Some(CancelCause::Dropped),
        "the call's scope"
    );
    assert_eq!(request.cause(), None, "the request goes on");
    assert!(!request.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn the_calls_deadline_is_the_cap_or_the_remaining_budget_whichever_is_earlier() {
    for (budget, cap, expect) in [
        (
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_millis(100),
        ),
        (
            Duration::from_millis(200),
            Duration::from_secs(1),
            Duration::from_millis(200),
        ),
    ] {
        let request = caller(budget);
        let (upstream, seen) = upstream(Duration::ZERO);
        CallTimeoutLayer::new(cap)
            .layer(upstream)
            .oneshot(call(&request))
            .await
            .unwrap();
        let scope = seen.lock().unwrap().pop().unwrap();
        assert_eq!(
            scope.remaining(),
            Some(expect),
            "budget {budget:?}, cap {cap:?}"
        );
        assert_eq!(request.remaining(), Some(budget), "the caller's is its own");
        assert_eq!(scope.cause(), None, "a finished call is not cancelled");
    }
}

#[tokio::test(start_paused = true)]
async fn the_call_fails_when_the_callers_budget_runs_out_first() {
    let request = caller(Duration::from_millis(50));
    let (upstream, seen) = upstream(Duration::from_secs(1));
    let started = tokio::time::Instant::now();
    let err = CallTimeoutLayer::new(Duration::from_secs(1))
        .layer(upstream)
        .oneshot(call(&request))
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    let err = err.downcast::<CallTimeoutError>().unwrap();
    assert!(!err.is_not_sent());
    assert_eq!(err.to_string(), "outbound call timed out");
    let scope = seen.lock().unwrap().pop().unwrap();
    assert_eq!(scope.cause(), Some(CancelCause::Deadline));
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_is_not_sent_and_the_inner_service_stays_ready() {
    let request = caller(Duration::from_millis(10));
    tokio::time::advance(Duration::from_millis(20)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let calls = Arc::clone(&calls);
        service_fn(move |_: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(())) }
        })
    };
    let err = CallTimeoutLayer::new(Duration::from_secs(1))
        .layer(upstream)
        .oneshot(call(&request))
        .await
        .unwrap_err();
    assert!(
        err.downcast_ref::<CallTimeoutError>()
            .unwrap()
            .is_not_sent()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing was sent");
}

#[tokio::test(start_paused = true)]
async fn a_ready_response_wins_over_a_deadline_passed_in_the_same_instant() {
    let request = caller(Duration::from_secs(10));
    let upstream = service_fn(|_: Request<()>| async {
        // The deadline passes while the upstream works without yielding.
        tokio::time::advance(Duration::from_millis(200)).await;
        Ok::<_, Infallible>(Response::new("done"))
    });
    let res = CallTimeoutLayer::new(Duration::from_millis(100))
        .layer(upstream)
        .oneshot(call(&request))
        .await
        .unwrap();
    assert_eq!(*res.body(), "done");
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_context_is_still_capped() {
    let (upstream, seen) = upstream(Duration::from_secs(1));
    let err = CallTimeoutLayer::new(Duration::from_millis(100))
        .layer(upstream)
        .oneshot(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.is::<CallTimeoutError>());
    assert_eq!(
        seen.lock().unwrap().pop().unwrap().cause(),
        Some(CancelCause::Deadline)
    );
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_boxed() {
    let upstream = service_fn(|_: Request<()>| async { Err::<Response<()>, _>(ProbeError(3)) });
    let err = CallTimeoutLayer::new(Duration::from_secs(1))
        .layer(upstream)
        .oneshot(Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(err.downcast_ref::<ProbeError>(), Some(&ProbeError(3)));
}

#[tokio::test]
async fn conforms() {
    // The kit wants the inner error type back: unbox it (the layer boxes errors like tower's
    // `Timeout`).
    let unbox = MapErrLayer::new(|e: BoxError| *e.downcast::<ProbeError>().expect("inner error"));
    Conformance::new(
        ServiceBuilder::new()
            .layer(unbox)
            .layer(CallTimeoutLayer::new(Duration::from_secs(5)))
            .into_inner(),
    )
    .run()
    .await;
}

#[cfg(feature = "timeout")]
#[tokio::test(start_paused = true)]
async fn deadline_propagation_inside_stamps_the_calls_budget() {
    use crate::timeout::{DeadlineFormat, PropagateDeadlineLayer};

    let request = caller(Duration::from_secs(10));
    let stamped: Arc<Mutex<Option<Duration>>> = Arc::default();
    let upstream = {
        let stamped = Arc::clone(&stamped);
        service_fn(move |req: Request<()>| {
            let value = req.headers()["grpc-timeout"].as_bytes().to_vec();
            *stamped.lock().unwrap() = DeadlineFormat::GrpcTimeout.parse(&value);
            async { Ok::<_, Infallible>(Response::new(())) }
        })
    };
    ServiceBuilder::new()
        .layer(CallTimeoutLayer::new(Duration::from_millis(100)))
        .layer(PropagateDeadlineLayer::new())
        .service(upstream)
        .oneshot(call(&request))
        .await
        .unwrap();
    assert_eq!(*stamped.lock().unwrap(), Some(Duration::from_millis(100)));
}

#[test]
fn debug_shows_the_cap() {
    let layer = CallTimeoutLayer::new(Duration::from_millis(100));
    assert_eq!(format!("{layer:?}"), "CallTimeoutLayer { cap: 100ms }");
    assert_eq!(layer.cap(), Duration::from_millis(100));
    let svc = CallTimeout::new((), Duration::from_secs(1));
    assert_eq!(format!("{svc:?}"), "CallTimeout { inner: (), cap: 1s }");
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn caller(budget: Duration) -> Context {
    let cx = Context::new();
    cx.set_timeout(budget);
    cx
}

fn call(cx: &Context) -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut().insert(cx.clone());
    req
}

type Seen = Arc<Mutex<Vec<Context>>>;

/// An upstream that answers after `delay` and records the context each call carried.
fn upstream(delay: Duration) -> (BoxCloneService<Request<()>, Response<()>, Infallible>, Seen) {
    let seen = Seen::default();
    let svc = {
        let seen = Arc::clone(&seen);
        service_fn(move |req: Request<()>| {
            seen.lock()
                .unwrap()
                .push(req.try_context().expect("a context").clone());
            async move {
                tokio::time::sleep(delay).await;
                Ok(Response::new(()))
            }
        })
    };
    (BoxCloneService::new(svc), seen)
}

/// Polls `future` once; `Some` if it finished.
async fn futures_poll_once<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Option<F::Output> {
    poll_fn(|cx| {
        Poll::Ready(match future.as_mut().poll(cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        })
    })
    .await
}
