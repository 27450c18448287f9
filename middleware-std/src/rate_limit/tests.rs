use std::{
    convert::Infallible,
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use middleware_core::testing::Conformance;
use proptest::prelude::*;
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;

const ONE_NANO: Duration = Duration::from_nanos(1);

#[tokio::test(start_paused = true)]
async fn a_burst_of_the_quota_passes_then_429_with_every_header() {
    let layer = RateLimitLayer::new(Policy::new(3, Duration::from_secs(3)));
    let svc = layer.layer(ok());
    for remaining in [2, 1, 0] {
        let res = svc.clone().oneshot(from(V4)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[RATELIMIT_POLICY], r#""default";q=3;w=3"#);
        let reset = 3 - remaining;
        assert_eq!(
            res.headers()[RATELIMIT],
            format!(r#""default";r={remaining};t={reset}"#).as_str()
        );
    }
    let res = svc.clone().oneshot(from(V4)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    assert_eq!(res.headers()[RATELIMIT], r#""default";r=0;t=1"#);
    assert_eq!(res.headers()[RATELIMIT_POLICY], r#""default";q=3;w=3"#);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test(start_paused = true)]
async fn the_next_request_passes_at_the_exact_refill_instant_and_not_a_nanosecond_before() {
    let (svc, calls) = counting(RateLimitLayer::new(Policy::new(2, Duration::from_secs(2))));
    for _ in 0..2 {
        assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    }
    assert_eq!(status(&svc, from(V4)).await, StatusCode::TOO_MANY_REQUESTS);
    advance(Duration::from_nanos(999_999_999)).await;
    assert_eq!(status(&svc, from(V4)).await, StatusCode::TOO_MANY_REQUESTS);
    advance(ONE_NANO).await;
    assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    assert_eq!(status(&svc, from(V4)).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a refused request never reaches the service"
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_that_waited_a_whole_window_bursts_again_but_no_more() {
    let (svc, _) = counting(RateLimitLayer::new(Policy::new(4, Duration::from_secs(4))));
    for _ in 0..4 {
        assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    }
    advance(Duration::from_secs(60)).await;
    for _ in 0..4 {
        assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    }
    assert_eq!(status(&svc, from(V4)).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(start_paused = true)]
async fn a_sub_second_wait_says_retry_after_one_second() {
    let (svc, _) = counting(RateLimitLayer::new(Policy::per_second(10)));
    for _ in 0..10 {
        assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    }
    let res = svc.clone().oneshot(from(V4)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
}

#[tokio::test(start_paused = true)]
async fn keys_are_counted_apart() {
    let (svc, _) = counting(RateLimitLayer::new(Policy::per_minute(1)));
    assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    assert_eq!(status(&svc, from(V4)).await, StatusCode::TOO_MANY_REQUESTS);
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    assert_eq!(status(&svc, from(other)).await, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn ipv6_counts_by_64_and_mapped_ipv4_counts_as_ipv4() {
    let (svc, _) = counting(RateLimitLayer::new(Policy::per_minute(1)));
    let a = IpAddr::V6("2001:db8:1:2::1".parse().unwrap());
    let b = IpAddr::V6("2001:db8:1:2:ffff::9".parse().unwrap());
    let c = IpAddr::V6("2001:db8:1:3::1".parse().unwrap());
    assert_eq!(status(&svc, from(a)).await, StatusCode::OK);
    assert_eq!(status(&svc, from(b)).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status(&svc, from(c)).await, StatusCode::OK);
    assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert_eq!(
        status(&svc, from(mapped)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(Key::ip(V4), Key::ip(mapped));
    assert_ne!(Key::ip(IpAddr::V6(Ipv6Addr::LOCALHOST)), Key::ip(V4));
}

#[tokio::test(start_paused = true)]
async fn clones_and_every_layered_service_share_one_store() {
    let layer = RateLimitLayer::new(Policy::per_minute(2));
    let first = layer.layer(ok());
    let second = layer.layer(ok());
    assert_eq!(status(&first.clone(), from(V4)).await, StatusCode::OK);
    assert_eq!(status(&second.clone(), from(V4)).await, StatusCode::OK);
    assert_eq!(
        status(&first, from(V4)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(layer.store().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn requests_without_a_key_share_the_anonymous_quota() {
    let (svc, _) = counting(RateLimitLayer::new(Policy::per_minute(1)));
    assert_eq!(status(&svc, Request::new(())).await, StatusCode::OK);
    assert_eq!(
        status(&svc, Request::new(())).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_header_key_counts_per_value_and_a_missing_header_is_anonymous() {
    let name = HeaderName::from_static("x-api-key");
    let (svc, _) = counting(RateLimitLayer::new(Policy::per_minute(1)).per_header(name.clone()));
    let with = |value: &'static str| {
        let mut req = from(V4);
        req.headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
        req
    };
    assert_eq!(status(&svc, with("alpha")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, with("alpha")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&svc, with("beta")).await, StatusCode::OK);
    // The same client address without the header: not a way around the limit.
    assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    assert_eq!(status(&svc, from(V4)).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(start_paused = true)]
async fn the_unit_key_makes_one_global_quota() {
    let (svc, _) = counting(RateLimitLayer::new(Policy::per_minute(2)).key(()));
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    assert_eq!(status(&svc, from(V4)).await, StatusCode::OK);
    assert_eq!(status(&svc, from(other)).await, StatusCode::OK);
    assert_eq!(
        status(&svc, Request::new(())).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn a_closure_picks_the_key() {
    let layer = RateLimitLayer::new(Policy::per_minute(1))
        .key(|req: &Request<()>| Some(Key::from(req.uri().path())));
    let (svc, _) = counting(layer);
    let path = |p: &str| Request::builder().uri(p).body(()).unwrap();
    assert_eq!(status(&svc, path("/a")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, path("/a")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&svc, path("/b")).await, StatusCode::OK);
}

#[test]
fn huge_keys_are_bounded_and_still_told_apart() {
    let huge = vec![b'k'; 1 << 20];
    let mut other = huge.clone();
    *other.last_mut().unwrap() = b'j';
    let (a, b) = (Key::from_bytes(&huge), Key::from_bytes(&other));
    assert!(a.as_bytes().len() <= MAX_KEY_LEN);
    assert!(b.as_bytes().len() <= MAX_KEY_LEN);
    assert_ne!(a, b, "keys that differ only past the prefix");
    assert_eq!(a, Key::from_bytes(&huge));
    // A short key never equals a long key's shortened form.
    let prefix = &a.as_bytes()[1..];
    assert_ne!(Key::from_bytes(prefix), a);
    // Short keys are kept byte for byte; a tag keeps kinds apart.
    assert_eq!(&Key::from("abc").as_bytes()[1..], b"abc");
    assert_ne!(Key::from_bytes(&[192, 0, 2, 1]), Key::ip(V4));
}

#[test]
fn key_debug_shows_no_bytes() {
    let debug = format!("{:?}", Key::from("secret-api-key"));
    assert!(!debug.contains("secret"), "{debug}");
    assert!(debug.starts_with("Key"), "{debug}");
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_a_million_distinct_keys_never_holds_more_than_the_capacity() {
    let store = MemoryStore::with_capacity(Policy::per_minute(5), 1024);
    let capacity = store.capacity();
    assert!((1024..1024 + 16).contains(&capacity));
    for n in 0u32..1_000_000 {
        let key = Key::from_bytes(&n.to_be_bytes());
        let Check::Ready(decision) = store.check(&key) else {
            panic!("the memory store decides at once");
        };
        assert!(decision.is_allowed(), "a new key has its whole quota");
        if n % 4096 == 0 {
            assert!(store.len() <= capacity, "{} keys at {n}", store.len());
        }
    }
    assert!(store.len() <= capacity);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_forgotten() {
    let store = MemoryStore::with_capacity(Policy::new(2, Duration::from_secs(2)), 1024);
    for n in 0u8..40 {
        let _ = store.check(&Key::from_bytes(&[n]));
    }
    assert_eq!(store.len(), 40);
    store.forget_idle();
    assert_eq!(store.len(), 40, "not idle yet");
    advance(Duration::from_secs(2)).await;
    store.forget_idle();
    assert_eq!(store.len(), 0);
}

/// The memory store's decision, which it makes at once.
fn decide(store: &MemoryStore, key: &Key) -> Decision {
    let Check::Ready(decision) = store.check(key) else {
        panic!("the memory store decides at once");
    };
    decision
}

#[tokio::test(start_paused = true)]
async fn the_anonymous_key_is_counted_tracked_and_forgotten_like_any_other() {
    let store = MemoryStore::with_capacity(Policy::new(2, Duration::from_secs(2)), 64);
    assert!(store.is_empty());
    assert!(decide(&store, &Key::anonymous()).is_allowed());
    assert_eq!(store.len(), 1);
    let second = decide(&store, &Key::anonymous());
    assert!(second.is_allowed());
    assert_eq!(second.remaining(), 0);
    let third = decide(&store, &Key::anonymous());
    assert!(!third.is_allowed());
    assert_eq!(third.reset(), Duration::from_secs(1));
    // Other keys count apart.
    assert!(decide(&store, &Key::from("-")).is_allowed());
    assert_eq!(store.len(), 2);
    store.forget_idle();
    assert_eq!(store.len(), 2, "not idle yet");
    // Both requests' worth back (at 2 s), and the interval governor keeps as a margin.
    advance(Duration::from_secs(2)).await;
    store.forget_idle();
    assert_eq!(
        store.len(),
        1,
        "the key \"-\" (one request) is idle, the anonymous key not yet"
    );
    advance(Duration::from_secs(1)).await;
    store.forget_idle();
    assert_eq!(store.len(), 0);
    assert_eq!(
        decide(&store, &Key::anonymous()).remaining(),
        1,
        "a whole quota"
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn the_anonymous_quota_is_exact_across_threads() {
    // An hour per request: nothing comes back during the test.
    let store = Arc::new(MemoryStore::new(Policy::new(
        1000,
        Duration::from_secs(3600 * 1000),
    )));
    let allowed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, allowed) = (Arc::clone(&store), Arc::clone(&allowed));
            std::thread::spawn(move || {
                for _ in 0..500 {
                    if decide(&store, &Key::anonymous()).is_allowed() {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 1000);
    assert_eq!(store.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_nearly_full_table_is_swept_on_its_own() {
    let store = MemoryStore::with_capacity(Policy::new(1, Duration::from_millis(10)), 64);
    for n in 0u8..200 {
        let _ = store.check(&Key::from_bytes(&[n]));
    }
    assert!(store.len() <= store.capacity());
    assert!(store.len() > 16);
    advance(Duration::from_secs(2)).await;
    let _ = store.check(&Key::from("next"));
    assert!(store.len() <= 1, "{} keys left", store.len());
}

#[tokio::test(start_paused = true)]
async fn a_store_that_decides_later_is_awaited_with_the_ready_service() {
    let store = LaterStore::default();
    let layer = RateLimitLayer::with_store(store.clone_handle());
    let (svc, calls) = counting(layer);
    store.allow(true);
    let res = svc.clone().oneshot(from(V4)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[RATELIMIT], r#""later";r=7;t=3"#);
    store.allow(false);
    let res = svc.clone().oneshot(from(V4)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "5");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.checks.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn headers_can_be_left_off_allowed_responses_but_not_the_429() {
    let (svc, _) =
        counting(RateLimitLayer::new(Policy::per_minute(1)).without_headers_on_allowed());
    let res = svc.clone().oneshot(from(V4)).await.unwrap();
    assert!(res.headers().get(RATELIMIT).is_none());
    let res = svc.clone().oneshot(from(V4)).await.unwrap();
    assert!(res.headers().get(RATELIMIT).is_some());
}

#[test]
fn policy_names_are_escaped_and_checked() {
    let policy = Policy::per_minute(100).named(r#"a"b\c"#);
    assert_eq!(policy.header_value(), r#""a\"b\\c";q=100;w=60"#);
    let policy = Policy::new(5, Duration::from_millis(1500));
    assert_eq!(
        policy.header_value(),
        r#""default";q=5;w=2"#,
        "the window rounds up"
    );
    for bad in ["", "naïve", "tab\there", "new\nline"] {
        let result = std::panic::catch_unwind(|| Policy::per_second(1).named(bad));
        assert!(result.is_err(), "{bad:?}");
    }
    assert!(std::panic::catch_unwind(|| Policy::per_second(0)).is_err());
    assert!(std::panic::catch_unwind(|| Policy::new(10, Duration::from_nanos(5))).is_err());
}

#[tokio::test]
async fn the_layer_passes_the_conformance_kit() {
    Conformance::new(RateLimitLayer::new(Policy::per_second(1_000_000)))
        .run()
        .await;
    Conformance::new(RateLimitLayer::with_store(LaterStore::allowing()))
        .run()
        .await;
}

#[cfg(feature = "auth")]
#[tokio::test(start_paused = true)]
async fn the_principal_key_counts_per_authenticated_principal() {
    use middleware_core::RequestExt;

    use crate::auth::Principal;

    let (svc, _) = counting(RateLimitLayer::new(Policy::per_minute(1)).per_principal());
    let as_user = |id: &str| {
        let mut req = from(V4);
        req.context().insert(Principal::new(id));
        req
    };
    assert_eq!(status(&svc, as_user("ada")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, as_user("ada")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&svc, as_user("grace")).await, StatusCode::OK);
}

#[cfg(feature = "axum")]
#[tokio::test(start_paused = true)]
async fn the_peer_ip_key_reads_axums_connect_info() {
    let (svc, _) = counting(RateLimitLayer::new(Policy::per_minute(1)));
    let with_info = || {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::new(V4, 1234)));
        req
    };
    assert_eq!(status(&svc, with_info()).await, StatusCode::OK);
    assert_eq!(
        status(&svc, with_info()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The same address as a plain `SocketAddr`: the same key.
    assert_eq!(status(&svc, from(V4)).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        status(&svc, Request::new(())).await,
        StatusCode::OK,
        "anonymous"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any arrivals: no more than `quota + elapsed / interval` requests pass in any span
    /// that starts at the first arrival, and a refused request told to wait `t` passes at `t`.
    #[test]
    fn gcra_never_passes_more_than_the_quota_and_retry_after_is_honest(
        quota in 1u32..6,
        interval_ms in 1u64..500,
        gaps in proptest::collection::vec(0u64..700, 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let interval = Duration::from_millis(interval_ms);
            let store = MemoryStore::new(Policy::new(quota, interval * quota));
            let key = Key::from("k");
            let start = Instant::now();
            let mut passed = 0u64;
            for gap in gaps {
                advance(Duration::from_millis(gap)).await;
                let Check::Ready(decision) = store.check(&key) else { unreachable!() };
                if decision.is_allowed() {
                    passed += 1;
                    prop_assert!(decision.remaining() < quota);
                } else {
                    let wait = decision.reset();
                    prop_assert!(wait > Duration::ZERO && wait <= interval);
                    advance(wait).await;
                    let Check::Ready(retry) = store.check(&key) else { unreachable!() };
                    prop_assert!(retry.is_allowed(), "refused again after the advertised wait");
                    passed += 1;
                }
                let elapsed = start.elapsed().as_nanos();
                let bound = u128::from(quota) + elapsed / interval.as_nanos();
                prop_assert!(u128::from(passed) <= bound, "{passed} > {bound}");
            }
            Ok(())
        })?;
    }

    /// Any printable ASCII name is sent as a structured-field string that reads back as the
    /// name: quoted, with exactly `"` and `\` escaped.
    #[test]
    fn policy_names_round_trip_through_the_header(name in "[ -~]{1,40}") {
        let value = Policy::per_minute(7).named(&name).header_value();
        let text = value.to_str().unwrap();
        let quoted = text.strip_suffix(";q=7;w=60").unwrap();
        let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap();
        let mut unescaped = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let next = chars.next().unwrap();
                prop_assert!(next == '"' || next == '\\');
                unescaped.push(next);
            } else {
                prop_assert!(c != '"', "an unescaped quote");
                unescaped.push(c);
            }
        }
        prop_assert_eq!(unescaped, name);
    }

    /// Any bytes make a key of at most `MAX_KEY_LEN` bytes, equal only to itself.
    #[test]
    fn any_bytes_make_a_bounded_key(a in proptest::collection::vec(any::<u8>(), 0..300),
                                    b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (ka, kb) = (Key::from_bytes(&a), Key::from_bytes(&b));
        prop_assert!(ka.as_bytes().len() <= MAX_KEY_LEN);
        prop_assert_eq!(ka == kb, a == b);
    }
}

#[tokio::test]
async fn the_rate_limit_records_its_own_time_only_when_layer_times_are_asked_for() {
    let svc = RateLimitLayer::new(Policy::per_second(10))
        .key(())
        .layer(ok());
    for asked in [false, true] {
        let cx = middleware_core::Context::new();
        if asked {
            cx.request_layer_times();
        }
        let mut req = Request::new(());
        req.extensions_mut().insert(cx.clone());
        assert_eq!(status(&svc, req).await, StatusCode::OK);
        let names: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
        let expected: &[&str] = if asked { &["mw.rate_limit"] } else { &[] };
        assert_eq!(names, expected, "asked: {asked}");
    }
}

// Fixtures

const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn from(ip: IpAddr) -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut().insert(SocketAddr::new(ip, 40_000));
    req
}

fn ok() -> impl Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::from("ok"))) })
}

/// `layer` around a service that counts its calls.
fn counting<L: Layer<Counting>>(layer: L) -> (L::Service, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (layer.layer(Counting(Arc::clone(&calls))), calls)
}

/// Answers `200 ok` and counts its calls.
#[derive(Clone, Debug)]
struct Counting(Arc<AtomicUsize>);

impl<B> Service<Request<B>> for Counting {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(String::from("ok"))))
    }
}

async fn status<S>(svc: &S, req: Request<()>) -> StatusCode
where
    S: Service<Request<()>> + Clone,
    S::Response: ResponseStatus,
    S::Error: std::fmt::Debug,
{
    svc.clone().oneshot(req).await.unwrap().status()
}

trait ResponseStatus {
    fn status(&self) -> StatusCode;
}

impl<B> ResponseStatus for Response<B> {
    fn status(&self) -> StatusCode {
        Self::status(self)
    }
}

/// A store that decides on a later poll (like one across the network), as the test says.
#[derive(Default)]
struct LaterStore {
    allow: Arc<Mutex<bool>>,
    checks: Arc<AtomicUsize>,
    policy: Option<Policy>,
}

impl LaterStore {
    fn allowing() -> Self {
        let store = Self::default();
        store.allow(true);
        store.clone_handle()
    }

    fn clone_handle(&self) -> Self {
        Self {
            allow: Arc::clone(&self.allow),
            checks: Arc::clone(&self.checks),
            policy: Some(Policy::per_minute(8).named("later")),
        }
    }

    fn allow(&self, allow: bool) {
        *self.allow.lock().unwrap() = allow;
    }
}

impl std::fmt::Debug for LaterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LaterStore")
    }
}

impl RateLimitStore for LaterStore {
    type Future = Later;

    fn policy(&self) -> &Policy {
        self.policy.as_ref().unwrap()
    }

    fn check(&self, _key: &Key) -> Check<Later> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        let decision = if *self.allow.lock().unwrap() {
            Decision::allowed(7, Duration::from_millis(2500))
        } else {
            Decision::limited(Duration::from_millis(4200))
        };
        Check::Pending(Later {
            polled: false,
            decision,
        })
    }
}

/// Pending once, then the decision.
struct Later {
    polled: bool,
    decision: Decision,
}

impl Future for Later {
    type Output = Decision;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Decision> {
        if self.polled {
            Poll::Ready(self.decision)
        } else {
            self.polled = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
