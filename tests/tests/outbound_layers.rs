//! The outbound stack over real TCP: hyper-util's legacy client behind `CallTimeoutLayer`,
//! `RetryLayer` and `BreakerLayer`, against a local upstream that can be slow, fail, and answer
//! `503` with `Retry-After`. Every wait is bounded.
#![allow(missing_docs)]

mod std_support;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use middleware_std::{
    Context,
    breaker::{BreakerConfig, BreakerLayer, BreakerOpenError, BreakerState, CircuitBreaker},
    call_timeout::{CallTimeoutError, CallTimeoutLayer},
    retry::{Backoff, RetryBudget, RetryLayer},
};
use std_support::{BOUND, Server, serve};
use tokio::sync::Semaphore;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_call_cap_never_shortens_the_caller() {
    let upstream = Upstream::start().await;
    let client = ServiceBuilder::new()
        .layer(CallTimeoutLayer::new(Duration::from_millis(100)))
        .service(client());
    let caller = caller(Duration::from_secs(10));
    let started = Instant::now();
    let err = client
        .oneshot(call(&upstream.server.url("/slow"), &caller))
        .await
        .unwrap_err();
    assert!(err.is::<CallTimeoutError>(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        caller.remaining().unwrap() > Duration::from_secs(9),
        "the caller kept its budget"
    );
    assert_eq!(caller.cause(), None, "and was not cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_is_capped_and_the_retry_succeeds_within_the_callers_budget() {
    let upstream = Upstream::start().await;
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new().backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(5),
        )))
        .layer(CallTimeoutLayer::new(Duration::from_millis(150)))
        .service(client());
    let caller = caller(Duration::from_secs(5));
    // `/slow-once` outlives the cap the first time, then answers at once.
    let res = client
        .oneshot(call(&upstream.server.url("/slow-once"), &caller))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(upstream.count(), 2);
    assert!(caller.remaining().unwrap() > Duration::from_secs(4));
    assert_eq!(caller.cause(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_honour_retry_after_and_stop_at_the_callers_deadline() {
    let upstream = Upstream::start().await;
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new().max_attempts(100))
        .service(client());
    // `/busy` answers 503 with `Retry-After: 1`: attempts at 0 s and 1 s; a third would start
    // at 2 s, past the 1.5 s budget.
    let caller = caller(Duration::from_millis(1500));
    let started = Instant::now();
    let res = client
        .oneshot(call(&upstream.server.url("/busy"), &caller))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the last answer, as it came"
    );
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(upstream.count(), 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "Retry-After was honoured: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1500),
        "never past the deadline: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_budget() {
    let upstream = Upstream::start().await;
    let client = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(Backoff::new(
                    Duration::from_millis(1),
                    Duration::from_millis(2),
                ))
                .budget(RetryBudget::new(Duration::from_secs(60), 0, 0.5)),
        )
        .service(client());
    for _ in 0..10 {
        let res = client
            .clone()
            .oneshot(call(&upstream.server.url("/fail503"), &caller(BOUND)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    // 10 requests, one retry per two of them.
    assert_eq!(upstream.count(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_serves_the_fallback_without_touching_the_upstream_probes_and_closes() {
    let upstream = Upstream::start().await;
    let breaker = CircuitBreaker::new(
        BreakerConfig::new()
            .consecutive_failures(3)
            .cool_down(Duration::from_millis(200)),
    );
    let fallback = Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .body(Bytes::from_static(b"upstream unavailable"))
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(BreakerLayer::new(breaker.clone()).fallback_response(fallback))
        .service(client());
    let url = upstream.server.url("/toggle");
    let send = || client.clone().oneshot(call(&url, &caller(BOUND)));

    upstream.healthy.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        let res = send().await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().get("x-circuit-breaker").is_none());
    }
    assert_eq!(breaker.state(""), BreakerState::Open);

    upstream.healthy.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        let res = send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["x-circuit-breaker"], "open");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "upstream unavailable");
    }
    assert_eq!(
        upstream.count(),
        3,
        "the fallback never touched the upstream"
    );

    tokio::time::sleep(Duration::from_millis(250)).await;
    let res = send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a probe went through");
    assert_eq!(breaker.state(""), BreakerState::Closed);
    let res = send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(upstream.count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_callers_never_let_more_probes_through_than_configured() {
    const PROBES: usize = 2;
    let upstream = Upstream::start().await;
    let breaker = CircuitBreaker::new(
        BreakerConfig::new()
            .consecutive_failures(1)
            .cool_down(Duration::from_millis(100))
            .probes(u32::try_from(PROBES).unwrap()),
    );
    let client = ServiceBuilder::new()
        .layer(BreakerLayer::new(breaker.clone()))
        .service(client());
    upstream.healthy.store(false, Ordering::SeqCst);
    client
        .clone()
        .oneshot(call(&upstream.server.url("/toggle"), &caller(BOUND)))
        .await
        .unwrap();
    assert_eq!(breaker.state(""), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(150)).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let url = upstream.server.url("/hold");
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (client, barrier, url) = (client.clone(), Arc::clone(&barrier), url.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client.oneshot(call(&url, &caller(BOUND))).await
            })
        })
        .collect();
    tokio::time::timeout(BOUND, async {
        while upstream.held.load(Ordering::SeqCst) < PROBES {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        upstream.held.load(Ordering::SeqCst),
        PROBES,
        "more probes than configured"
    );
    upstream.release.add_permits(64);
    let (mut answered, mut refused) = (0, 0);
    for task in tasks {
        match tokio::time::timeout(BOUND, task).await.unwrap().unwrap() {
            Ok(res) => {
                assert_eq!(res.status(), StatusCode::OK);
                answered += 1;
            }
            Err(err) => {
                assert!(err.is::<BreakerOpenError>(), "{err}");
                refused += 1;
            }
        }
    }
    assert_eq!((answered, refused), (PROBES, 64 - PROBES));
    assert_eq!(breaker.state(""), BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_stack_answers_and_a_dropped_call_leaves_the_caller_alone() {
    let upstream = Upstream::start().await;
    let client = ServiceBuilder::new()
        .layer(BreakerLayer::new(CircuitBreaker::new(BreakerConfig::new())))
        .layer(RetryLayer::new())
        .layer(CallTimeoutLayer::new(Duration::from_secs(5)))
        .service(client());
    let caller = caller(BOUND);
    let res = client
        .clone()
        .oneshot(call(&upstream.server.url("/ok"), &caller))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");

    // A call given up by its caller (a `select!` lost): the request goes on.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        client.oneshot(call(&upstream.server.url("/slow"), &caller)),
    )
    .await;
    assert!(gave_up.is_err());
    assert_eq!(caller.cause(), None);
    assert!(!caller.is_cancelled());
}

// ---------------------------------------------------------------------------------------------
// Fixtures

type ClientBody = Full<Bytes>;

/// hyper-util's pooled HTTP/1.1 client; `Full` bodies can be replayed by the retry layer.
fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn caller(budget: Duration) -> Context {
    let cx = Context::new();
    cx.set_timeout(budget);
    cx
}

fn call(url: &str, cx: &Context) -> Request<ClientBody> {
    let mut req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    req.extensions_mut().insert(cx.clone());
    req
}

/// The upstream: `/slow` (2 s), `/slow-once` (slow the first time), `/busy` (503 with
/// `Retry-After: 1`), `/fail503`, `/toggle` (200 or 500 as `healthy` says), `/hold` (waits for
/// a permit of `release`, counted in `held`), anything else 200 `ok`. Every call is counted.
struct Upstream {
    server: Server,
    calls: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
    release: Arc<Semaphore>,
}

impl Upstream {
    async fn start() -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let held = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Semaphore::new(0));
        let app = {
            let (calls, healthy, held, release) = (
                Arc::clone(&calls),
                Arc::clone(&healthy),
                Arc::clone(&held),
                Arc::clone(&release),
            );
            service_fn(move |req: Request<Incoming>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let healthy = healthy.load(Ordering::SeqCst);
                let (held, release) = (Arc::clone(&held), Arc::clone(&release));
                async move {
                    let res = Response::builder();
                    let res = match req.uri().path() {
                        "/slow" => {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            res
                        }
                        "/slow-once" => {
                            if n == 0 {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                            }
                            res
                        }
                        "/busy" => res.status(503).header("retry-after", "1"),
                        "/fail503" => res.status(503),
                        "/toggle" => res.status(if healthy { 200 } else { 500 }),
                        "/hold" => {
                            held.fetch_add(1, Ordering::SeqCst);
                            let _ = tokio::time::timeout(BOUND, release.acquire()).await;
                            res
                        }
                        _ => res,
                    };
                    Ok::<_, Infallible>(res.body(Full::new(Bytes::from_static(b"ok"))).unwrap())
                }
            })
        };
        Self {
            server: serve(app).await,
            calls,
            healthy,
            held,
            release,
        }
    }

    fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}
