use std::{
    convert::Infallible,
    future::poll_fn,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use middleware_core::testing::Conformance;
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{ServiceExt, service_fn, util::BoxCloneService};
use tower_layer::Layer;
use tower_service::Service;

use super::{backoff::parse_retry_after, backoff::retry_after, *};
use crate::{CancelCause, Context, RequestExt};

#[tokio::test(start_paused = true)]
async fn an_idempotent_request_is_retried_until_it_succeeds() {
    let upstream = Upstream::new(vec![503, 502, 200]);
    let res = RetryLayer::new()
        .layer(upstream.service())
        .oneshot(get(&caller(Duration::from_secs(10))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(upstream.calls(), 3);
    assert_eq!(upstream.bodies(), vec!["body"; 3], "the body was replayed");
}

#[tokio::test(start_paused = true)]
async fn a_post_is_sent_once() {
    let upstream = Upstream::new(vec![503, 200]);
    let mut req = get(&caller(Duration::from_secs(10)));
    *req.method_mut() = Method::POST;
    let res = RetryLayer::new()
        .layer(upstream.service())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_4xx_or_500_is_not_retried_by_default_but_a_closure_policy_can() {
    let upstream = Upstream::new(vec![500, 404, 200]);
    let layer = RetryLayer::new();
    let res = layer
        .layer(upstream.service())
        .oneshot(get(&Context::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(upstream.calls(), 1);

    let policy = |_: &Request<String>, outcome: Result<&Response<()>, &Infallible>| {
        outcome.is_ok_and(|res| res.status().is_server_error())
    };
    let upstream = Upstream::new(vec![500, 404, 200]);
    let res = RetryLayer::new()
        .policy(policy)
        .layer(upstream.service())
        .oneshot(get(&Context::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "500 retried, 404 not");
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_policy_can_allow_a_post() {
    #[derive(Clone)]
    struct Everything;
    impl<B, RB, E> RetryPolicy<B, RB, E> for Everything {
        fn is_retryable(&self, _: &Request<B>) -> bool {
            true
        }
        fn should_retry(&self, _: &Request<B>, outcome: Result<&Response<RB>, &E>) -> bool {
            outcome.is_ok_and(|res| res.status() == StatusCode::SERVICE_UNAVAILABLE)
        }
    }
    let upstream = Upstream::new(vec![503, 200]);
    let mut req = get(&Context::new());
    *req.method_mut() = Method::POST;
    let res = RetryLayer::new()
        .policy(Everything)
        .layer(upstream.service())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_max_attempts_with_the_last_response() {
    let upstream = Upstream::new(vec![503; 10]);
    let res = RetryLayer::new()
        .max_attempts(4)
        .layer(upstream.service())
        .oneshot(get(&Context::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn errors_are_retried_and_the_last_one_is_returned_unchanged() {
    let calls = Arc::new(AtomicUsize::new(0));
    let upstream = service_fn({
        let calls = Arc::clone(&calls);
        move |_: Request<String>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { Err::<Response<()>, _>(format!("refused {n}")) }
        }
    });
    let err = RetryLayer::new()
        .layer(upstream)
        .oneshot(get(&Context::new()))
        .await
        .unwrap_err();
    assert_eq!(err, "refused 2");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_callers_deadline() {
    let upstream = Upstream::new(vec![503; 100]);
    let started = Instant::now();
    let request = caller(Duration::from_millis(500));
    let res = RetryLayer::new()
        .max_attempts(100)
        .backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(100),
        ))
        .layer(upstream.service())
        .oneshot(get(&request))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // Waits of 50 to 100 ms within 500 ms.
    assert!((5..=10).contains(&upstream.calls()), "{}", upstream.calls());
    for at in upstream.times() {
        assert!(
            at < started + Duration::from_millis(500),
            "an attempt after the deadline"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(4));
    for (value, at_least) in [
        ("2", Duration::from_secs(2)),
        (date.as_str(), Duration::from_secs(3)),
    ] {
        let upstream = Upstream::new(vec![503, 200]).retry_after(value);
        let started = Instant::now();
        let res = RetryLayer::new()
            .layer(upstream.service())
            .oneshot(get(&caller(Duration::from_secs(10))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            started.elapsed() >= at_least,
            "{value}: {:?}",
            started.elapsed()
        );
        assert!(started.elapsed() <= Duration::from_secs(5), "{value}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_deadline_returns_the_response_at_once() {
    for value in ["5", "99999999999999999999999999", "18446744073709551615"] {
        let upstream = Upstream::new(vec![503, 200]).retry_after(value);
        let started = Instant::now();
        let res = RetryLayer::new()
            .layer(upstream.service())
            .oneshot(get(&caller(Duration::from_secs(1))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{value}");
        assert_eq!(upstream.calls(), 1, "{value}");
        assert_eq!(started.elapsed(), Duration::ZERO, "{value}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_without_a_deadline_is_not_waited_for() {
    for value in [
        "31",
        "99999999999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let upstream = Upstream::new(vec![503, 200]).retry_after(value);
        let res = RetryLayer::new()
            .layer(upstream.service())
            .oneshot(get(&Context::new()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{value}");
        assert_eq!(upstream.calls(), 1, "{value}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_malformed_retry_after_falls_back_to_the_backoff() {
    for value in [
        "-1",
        "1.5",
        "+3",
        "soon",
        "3 s",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "0x10",
    ] {
        let upstream = Upstream::new(vec![503, 200]).retry_after(value);
        let started = Instant::now();
        let res = RetryLayer::new()
            .backoff(Backoff::new(
                Duration::from_millis(100),
                Duration::from_millis(100),
            ))
            .layer(upstream.service())
            .oneshot(get(&caller(Duration::from_secs(10))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{value}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited <= Duration::from_millis(100),
            "{value}: {waited:?}"
        );
    }
}

#[test]
fn retry_after_parses_strictly() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 21 Oct 2015 07:28:00
    let cases: [(&[u8], Option<Duration>); 16] = [
        (b"120", Some(Duration::from_secs(120))),
        (b"0", Some(Duration::ZERO)),
        (b" 7 ", Some(Duration::from_secs(7))),
        (b"99999999999999999999", Some(Duration::MAX)),
        (
            b"Wed, 21 Oct 2015 07:28:10 GMT",
            Some(Duration::from_secs(10)),
        ),
        (b"Wed, 21 Oct 2015 07:27:00 GMT", Some(Duration::ZERO)),
        (b"", None),
        (b"   ", None),
        (b"-1", None),
        (b"1.5", None),
        (b"1e3", None),
        (b"1 2", None),
        (b"\xff\xfe", None),
        (b"tomorrow", None),
        (b"Wed, 21 Oct 2015 07:28:10", None),
        (b"\x001", None),
    ];
    for (value, expected) in cases {
        assert_eq!(
            parse_retry_after(value, now),
            expected,
            "{}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn a_repeated_retry_after_is_ignored() {
    let mut headers = HeaderMap::new();
    headers.append("retry-after", HeaderValue::from_static("1"));
    assert_eq!(
        retry_after(&headers, SystemTime::now()),
        Some(Duration::from_secs(1))
    );
    headers.append("retry-after", HeaderValue::from_static("2"));
    assert_eq!(retry_after(&headers, SystemTime::now()), None);
}

proptest! {
    #[test]
    fn retry_after_never_panics_on_any_bytes(value in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_retry_after(&value, SystemTime::now());
    }

    #[test]
    fn delay_seconds_parse_to_themselves(secs in any::<u64>()) {
        let parsed = parse_retry_after(secs.to_string().as_bytes(), SystemTime::now());
        prop_assert_eq!(parsed, Some(Duration::from_secs(secs)));
    }

    #[test]
    fn a_backoff_stays_within_half_and_all_of_its_ceiling(
        base_ms in 0u64..10_000, max_ms in 0u64..100_000, retry in 0u32..100,
    ) {
        let backoff = Backoff::new(Duration::from_millis(base_ms), Duration::from_millis(max_ms));
        let ceiling = Duration::from_millis(base_ms)
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(Duration::from_millis(max_ms.max(base_ms)));
        let delay = backoff.delay(retry);
        prop_assert!(delay >= ceiling / 2 && delay <= ceiling, "{:?} of {:?}", delay, ceiling);
    }
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_budget_shared_by_clones_is_spent() {
    let upstream = Upstream::new(vec![503; 100]);
    // No floor, one retry per two requests: 10 requests may make 5 retries in all.
    let svc = RetryLayer::new()
        .budget(RetryBudget::new(Duration::from_secs(60), 0, 0.5))
        .layer(upstream.service());
    for _ in 0..10 {
        let res = svc.clone().oneshot(get(&Context::new())).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(upstream.calls(), 15);
}

#[tokio::test(start_paused = true)]
async fn the_budget_refills_as_the_window_slides() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 1.0);
    budget.deposit();
    assert!(budget.withdraw());
    assert!(!budget.withdraw());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(!budget.withdraw(), "still inside the window");
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(!budget.withdraw(), "the old deposit left with its slot");
    budget.deposit();
    assert!(budget.withdraw(), "and so did the old retry");
    let floor = RetryBudget::new(Duration::from_secs(1), 3, 0.0);
    assert!(floor.withdraw() && floor.withdraw() && floor.withdraw());
    assert!(!floor.withdraw(), "three a second over one second");
    let odd = RetryBudget::new(Duration::ZERO, 0, f32::NAN);
    odd.deposit();
    assert!(!odd.withdraw());
}

#[tokio::test(start_paused = true)]
async fn each_attempt_runs_in_its_own_child_scope() {
    let upstream = Upstream::new(vec![503, 503, 200]);
    let request = caller(Duration::from_secs(10));
    RetryLayer::new()
        .layer(upstream.service())
        .oneshot(get(&request))
        .await
        .unwrap();
    let scopes = upstream.scopes();
    assert_eq!(scopes.len(), 3);
    for (i, scope) in scopes.iter().enumerate() {
        assert!(scope.same_request(&request));
        assert!(
            !scope.same_scope(&request),
            "attempt {i} ran in the caller's scope"
        );
        for other in &scopes[..i] {
            assert!(!scope.same_scope(other), "attempts {i} shared a scope");
        }
        assert_eq!(
            scope.deadline(),
            request.deadline(),
            "the caller's deadline flows down"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_retry_future_cancels_only_the_current_attempt() {
    let upstream = Upstream::new(vec![503, 200]).delay(Duration::from_secs(1));
    let request = caller(Duration::from_secs(10));
    let mut svc = RetryLayer::new().layer(upstream.service());
    poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let future = svc.call(get(&request));
    // The first attempt answers 503 at 1 s; the second is in flight at 1.5 s.
    let _ = tokio::time::timeout(Duration::from_millis(1500), future).await;
    let scopes = upstream.scopes();
    assert_eq!(scopes.len(), 2);
    assert_eq!(scopes[0].cause(), None, "a finished attempt is left alone");
    assert_eq!(scopes[1].cause(), Some(CancelCause::Dropped));
    assert_eq!(request.cause(), None, "the caller goes on");
}

#[tokio::test]
async fn conforms() {
    Conformance::new(RetryLayer::new()).run().await;
}

#[test]
fn debug_names_the_policy_and_settings() {
    let layer = RetryLayer::new().max_attempts(0);
    let text = format!("{layer:?}");
    assert!(text.starts_with("RetryLayer { policy: \"middleware_std::retry::policy::DefaultRetryPolicy\", max_attempts: 1,"), "{text}");
    let svc = Retry::new(());
    assert!(format!("{svc:?}").starts_with("Retry { inner: (),"));
}

#[tokio::test(start_paused = true)]
async fn every_attempt_sends_the_request_as_the_caller_made_it() {
    #[derive(Clone, Debug, PartialEq)]
    struct Tag(u8);
    /// What one attempt carried: method, URI, version, headers, the other extension.
    type Sent = (Method, String, http::Version, HeaderMap, Option<Tag>);
    let seen: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let upstream = {
        let seen = Arc::clone(&seen);
        service_fn(move |req: Request<String>| {
            let mut seen = seen.lock().unwrap();
            seen.push((
                req.method().clone(),
                req.uri().to_string(),
                req.version(),
                req.headers().clone(),
                req.extensions().get::<Tag>().cloned(),
            ));
            let status = if seen.len() < 3 { 503 } else { 200 };
            async move { Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap()) }
        })
    };
    let make = |tag: Option<Tag>| {
        let mut req = Request::builder()
            .method(Method::PUT)
            .uri("http://upstream.example/items/7?x=1")
            .version(http::Version::HTTP_2)
            .header("x-one", "1")
            .header("x-many", "a")
            .header("x-many", "b")
            .body(String::from("body"))
            .unwrap();
        req.extensions_mut().insert(caller(Duration::from_secs(10)));
        if let Some(tag) = tag {
            req.extensions_mut().insert(tag);
        }
        req
    };
    // The context alone (the copy is made without the extension map), then with another
    // extension (the copy keeps it).
    for tag in [None, Some(Tag(7))] {
        seen.lock().unwrap().clear();
        let res = RetryLayer::new()
            .layer(upstream.clone())
            .oneshot(make(tag.clone()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for attempt in seen.iter() {
            assert_eq!(attempt.0, Method::PUT);
            assert_eq!(attempt.1, "http://upstream.example/items/7?x=1");
            assert_eq!(attempt.2, http::Version::HTTP_2);
            assert_eq!(attempt.3["x-one"], "1");
            assert_eq!(
                attempt.3.get_all("x-many").iter().collect::<Vec<_>>(),
                ["a", "b"]
            );
            assert_eq!(attempt.4, tag);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_policy_that_reads_extensions_sees_the_callers_context() {
    #[derive(Clone)]
    struct ByCaller(Arc<Mutex<Vec<bool>>>);
    impl<B, RB, E> RetryPolicy<B, RB, E> for ByCaller {
        fn should_retry(&self, request: &Request<B>, outcome: Result<&Response<RB>, &E>) -> bool {
            self.0.lock().unwrap().push(request.try_context().is_some());
            outcome.is_ok_and(|res| res.status() == StatusCode::SERVICE_UNAVAILABLE)
        }
    }
    let asked = Arc::default();
    let upstream = Upstream::new(vec![503, 200]);
    let res = RetryLayer::new()
        .policy(ByCaller(Arc::clone(&asked)))
        .layer(upstream.service())
        .oneshot(get(&caller(Duration::from_secs(10))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(*asked.lock().unwrap(), [true, true]);
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn caller(budget: Duration) -> Context {
    let cx = Context::new();
    cx.set_timeout(budget);
    cx
}

fn get(cx: &Context) -> Request<String> {
    let mut req = Request::new(String::from("body"));
    req.extensions_mut().insert(cx.clone());
    req
}

/// An upstream that answers the statuses of its script in turn, and records what it saw.
#[derive(Clone, Default)]
struct Upstream {
    script: Arc<Vec<u16>>,
    retry_after: Option<&'static str>,
    delay: Duration,
    seen: Arc<Mutex<Vec<(Context, String, Instant)>>>,
}

impl Upstream {
    fn new(script: Vec<u16>) -> Self {
        Self {
            script: Arc::new(script),
            ..Self::default()
        }
    }

    fn retry_after(mut self, value: &str) -> Self {
        self.retry_after = Some(Box::leak(value.to_owned().into_boxed_str()));
        self
    }

    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn service(&self) -> BoxCloneService<Request<String>, Response<()>, Infallible> {
        let this = self.clone();
        BoxCloneService::new(service_fn(move |req: Request<String>| {
            let mut seen = this.seen.lock().unwrap();
            let n = seen.len();
            seen.push((
                req.try_context().expect("a context").clone(),
                req.body().clone(),
                Instant::now(),
            ));
            let status = this.script[n];
            let (retry_after, delay) = (this.retry_after, this.delay);
            async move {
                tokio::time::sleep(delay).await;
                let mut res = Response::builder().status(status);
                if let Some(value) = retry_after {
                    res = res.header("retry-after", value);
                }
                Ok(res.body(()).unwrap())
            }
        }))
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn scopes(&self) -> Vec<Context> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone())
            .collect()
    }

    fn bodies(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.1.clone())
            .collect()
    }

    fn times(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().iter().map(|s| s.2).collect()
    }
}
