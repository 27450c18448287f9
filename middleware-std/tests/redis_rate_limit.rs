//! The Redis rate-limit store against a real `redis-server` (`REDIS_URL`; skipped loudly
//! without it, a failure under `CI=true`).

#![cfg(feature = "redis")]

#[path = "redis_support/mod.rs"]
mod support;

use std::{
    convert::Infallible,
    net::SocketAddr,
    time::{Duration, Instant},
};

use http::{Request, Response, StatusCode};
use middleware_std::{
    rate_limit::{Check, Decision, Key, Policy, RateLimitLayer, RateLimitStore},
    redis::{Fallback, Redis, RedisRateLimitStore},
};
use proptest::{prelude::*, test_runner::TestRunner};
use tower::{ServiceBuilder, ServiceExt, service_fn};

async fn decide<S: RateLimitStore>(store: &S, key: &Key) -> Decision {
    match store.check(key) {
        Check::Ready(decision) => decision,
        Check::Pending(future) => future.await,
    }
}

fn store(url: &str, prefix: &str, policy: Policy) -> RedisRateLimitStore {
    RedisRateLimitStore::new(Redis::open(url).unwrap(), policy).prefix(prefix)
}

#[tokio::test]
async fn a_burst_admits_exactly_the_quota_and_counts_down() {
    let Some(url) = support::redis_url("a_burst_admits_exactly_the_quota_and_counts_down") else {
        return;
    };
    let store = store(&url, &support::prefix("burst"), Policy::per_minute(10));
    let key = Key::from_bytes(b"client");
    let mut remaining = Vec::new();
    let mut refused = 0;
    for _ in 0..30 {
        let decision = decide(&store, &key).await;
        if decision.is_allowed() {
            remaining.push(decision.remaining());
        } else {
            refused += 1;
            // The next request's worth comes back in a sixth of a second... of a minute.
            assert!(decision.reset() > Duration::from_secs(5));
            assert!(decision.reset() <= Duration::from_secs(6));
        }
    }
    assert_eq!(remaining, (0..10).rev().collect::<Vec<u32>>());
    assert_eq!(refused, 20);
    assert!(!store.is_degraded());
    // Decided by Redis, not by the local fallback.
    assert!(store.local().is_empty());
}

#[tokio::test]
async fn stores_with_one_prefix_share_a_quota_and_other_prefixes_do_not() {
    let Some(url) =
        support::redis_url("stores_with_one_prefix_share_a_quota_and_other_prefixes_do_not")
    else {
        return;
    };
    let prefix = support::prefix("share");
    let a = store(&url, &prefix, Policy::per_minute(4));
    let b = store(&url, &prefix, Policy::per_minute(4));
    let other = store(&url, &support::prefix("other"), Policy::per_minute(4));
    let key = Key::from_bytes(b"tenant");
    let mut allowed = 0;
    for i in 0..12 {
        let s = if i % 2 == 0 { &a } else { &b };
        allowed += u32::from(decide(s, &key).await.is_allowed());
    }
    assert_eq!(allowed, 4);
    assert!(decide(&other, &key).await.is_allowed());
}

#[tokio::test]
async fn concurrent_callers_on_many_connections_never_overspend() {
    let Some(url) = support::redis_url("concurrent_callers_on_many_connections_never_overspend")
    else {
        return;
    };
    let prefix = support::prefix("race");
    let stores: Vec<_> = (0..4)
        .map(|_| std::sync::Arc::new(store(&url, &prefix, Policy::per_minute(25))))
        .collect();
    let key = Key::from_bytes(b"hot");
    let mut tasks = Vec::new();
    for i in 0..250 {
        let store = std::sync::Arc::clone(&stores[i % 4]);
        let key = key.clone();
        tasks.push(tokio::spawn(async move { decide(&*store, &key).await }));
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += u32::from(task.await.unwrap().is_allowed());
    }
    assert_eq!(allowed, 25);
}

#[tokio::test]
async fn a_key_expires_in_redis_when_its_quota_is_whole_again() {
    let Some(url) = support::redis_url("a_key_expires_in_redis_when_its_quota_is_whole_again")
    else {
        return;
    };
    let prefix = support::prefix("ttl");
    let store = store(&url, &prefix, Policy::new(3, Duration::from_millis(300)));
    let key = Key::from_bytes(b"idle");
    for _ in 0..3 {
        assert!(decide(&store, &key).await.is_allowed());
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut redis_key = prefix.as_bytes().to_vec();
    redis_key.extend_from_slice(key.as_bytes());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=300).contains(&ttl), "PTTL {ttl}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    // The quota is whole again.
    assert_eq!(decide(&store, &key).await.remaining(), 2);
}

#[tokio::test]
async fn hostile_keys_stay_under_the_prefix_and_apart() {
    let Some(url) = support::redis_url("hostile_keys_stay_under_the_prefix_and_apart") else {
        return;
    };
    let prefix = support::prefix("hostile");
    let store = store(&url, &prefix, Policy::per_minute(1));
    let hostile: [&[u8]; 6] = [
        b"*",
        b"\r\nFLUSHALL\r\n",
        b"a:b",
        b"\0\xff\xfe",
        b"'); redis.call('FLUSHALL') --",
        &[b'x'; 4096],
    ];
    for bytes in hostile {
        let key = Key::from_bytes(bytes);
        assert!(decide(&store, &key).await.is_allowed(), "{bytes:?}");
        assert!(!decide(&store, &key).await.is_allowed(), "{bytes:?}");
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 6);
    for key in keys {
        assert!(key.starts_with(prefix.as_bytes()));
        assert!(key.len() <= prefix.len() + middleware_std::rate_limit::MAX_KEY_LEN);
    }
}

#[test]
fn any_two_distinct_keys_count_apart() {
    let Some(url) = support::redis_url("any_two_distinct_keys_count_apart") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let bytes = || proptest::collection::vec(any::<u8>(), 0..100);
    runner
        .run(&(bytes(), bytes()), |(a, b)| {
            prop_assume!(a != b);
            rt.block_on(async {
                let store = store(&url, &support::prefix("prop"), Policy::per_minute(1));
                let (a, b) = (Key::from_bytes(&a), Key::from_bytes(&b));
                prop_assert!(decide(&store, &a).await.is_allowed());
                prop_assert!(decide(&store, &b).await.is_allowed());
                prop_assert!(!decide(&store, &a).await.is_allowed());
                Ok(())
            })
        })
        .unwrap();
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_one_timeout_then_nothing() {
    let addr = support::silent_server();
    let redis = Redis::open(&format!("redis://{addr}"))
        .unwrap()
        .timeout(Duration::from_millis(40))
        .retry_every(Duration::from_secs(60));
    let store = RedisRateLimitStore::new(redis, Policy::per_minute(2));
    let key = Key::from_bytes(b"k");
    let started = Instant::now();
    assert!(decide(&store, &key).await.is_allowed());
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(40), "{first:?}");
    assert!(first < Duration::from_millis(500), "{first:?}");
    assert!(store.is_degraded());
    // Degraded: decided at once by the local store, with the same policy.
    assert!(matches!(store.check(&key), Check::Ready(d) if d.is_allowed()));
    assert!(matches!(store.check(&key), Check::Ready(d) if !d.is_allowed()));
    assert_eq!(store.local().len(), 1);
}

#[tokio::test]
async fn the_request_budget_bounds_the_call_below_the_timeout() {
    let addr = support::silent_server();
    let redis = Redis::open(&format!("redis://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(5));
    let store = RedisRateLimitStore::new(redis, Policy::per_minute(2));
    let started = Instant::now();
    let decision = match store.check_within(&Key::from_bytes(b"k"), Some(Duration::from_millis(30)))
    {
        Check::Pending(f) => f.await,
        Check::Ready(_) => panic!("a healthy store asks Redis"),
    };
    assert!(decision.is_allowed());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The request's deadline ran out, not Redis's timeout: Redis is not marked down for it.
    assert!(!store.is_degraded());
}

#[tokio::test]
async fn two_policies_with_default_prefixes_do_not_share_a_key() {
    let Some(url) = support::redis_url("two_policies_with_default_prefixes_do_not_share_a_key")
    else {
        return;
    };
    let redis = Redis::open(&url).unwrap();
    // This run's own key: the default prefixes are shared by every run on the server.
    let key = Key::from_bytes(support::prefix("default-prefix").as_bytes());
    let login = RedisRateLimitStore::new(redis.clone(), Policy::per_minute(5));
    let global = RedisRateLimitStore::new(redis, Policy::per_second(100));
    assert!(decide(&login, &key).await.is_allowed());
    assert!(
        decide(&global, &key).await.is_allowed(),
        "one login attempt locked the client out of the global limit"
    );
    // An explicit prefix still wins: two policies under one prefix share the key.
    let prefix = support::prefix("explicit");
    let a = store(&url, &prefix, Policy::per_minute(5));
    let b = store(&url, &prefix, Policy::per_second(100));
    assert!(decide(&a, &key).await.is_allowed());
    assert!(!decide(&b, &key).await.is_allowed());
}

#[tokio::test]
async fn a_spent_request_budget_is_not_a_redis_failure() {
    let Some(url) = support::redis_url("a_spent_request_budget_is_not_a_redis_failure") else {
        return;
    };
    let store = store(&url, &support::prefix("budget"), Policy::per_minute(5));
    let key = Key::from_bytes(b"k");
    // Connected: only the budget can cut a call short.
    assert!(decide(&store, &key).await.is_allowed());
    for _ in 0..20 {
        match store.check_within(&key, Some(Duration::ZERO)) {
            // No time left: decided at once, without a call that could not answer in time.
            Check::Ready(_) => {}
            Check::Pending(f) => drop(f.await),
        }
    }
    assert!(
        !store.is_degraded(),
        "a request's deadline switched the store to its fallback"
    );
    assert!(
        matches!(store.check(&key), Check::Pending(_)),
        "still decided by Redis"
    );
}

#[tokio::test]
async fn fail_open_and_fail_closed_decide_without_redis() {
    let url = format!("redis://{}", support::refused_addr());
    let open = RedisRateLimitStore::new(Redis::open(&url).unwrap(), Policy::per_minute(1))
        .fallback(Fallback::FailOpen);
    let closed = RedisRateLimitStore::new(Redis::open(&url).unwrap(), Policy::per_minute(1))
        .fallback(Fallback::FailClosed);
    let key = Key::from_bytes(b"k");
    for _ in 0..3 {
        assert!(decide(&open, &key).await.is_allowed());
        let refused = decide(&closed, &key).await;
        assert!(!refused.is_allowed());
        assert!(refused.is_unavailable(), "fail-closed is not a quota");
        assert!(refused.reset() >= Duration::from_secs(1));
    }
    assert!(open.local().is_empty() && closed.local().is_empty());
}

#[tokio::test]
async fn the_layer_answers_429_from_the_shared_quota() {
    let Some(url) = support::redis_url("the_layer_answers_429_from_the_shared_quota") else {
        return;
    };
    let prefix = support::prefix("layer");
    let svc = |store| {
        ServiceBuilder::new()
            .layer(RateLimitLayer::with_store(store))
            .service(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            }))
    };
    let a = svc(store(&url, &prefix, Policy::per_minute(2)));
    let b = svc(store(&url, &prefix, Policy::per_minute(2)));
    let req = || {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(SocketAddr::from(([10, 0, 0, 1], 4000)));
        req
    };
    let first = a.clone().oneshot(req()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["ratelimit"], r#""default";r=1;t=30"#);
    assert_eq!(
        b.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::OK
    );
    let refused = a.oneshot(req()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "30");
}

#[tokio::test]
async fn a_fail_open_layer_lets_requests_through_without_quota_headers() {
    // Needs no Redis: the store's address refuses connections, so it fails open at once.
    let url = format!("redis://{}", support::refused_addr());
    let store = RedisRateLimitStore::new(Redis::open(&url).unwrap(), Policy::per_minute(5))
        .fallback(Fallback::FailOpen);
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::with_store(store))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    // The first request tries Redis (a pending check), the next are decided at once.
    for _ in 0..3 {
        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.headers().get("ratelimit").is_none(),
            "a quota the server does not have: {:?}",
            res.headers().get("ratelimit")
        );
        assert!(res.headers().get("ratelimit-policy").is_none());
    }
}

#[tokio::test]
async fn a_fail_closed_layer_answers_503_with_retry_after_and_no_quota_headers() {
    // Needs no Redis: the store's address refuses connections, so it fails closed at once.
    let url = format!("redis://{}", support::refused_addr());
    let store = RedisRateLimitStore::new(Redis::open(&url).unwrap(), Policy::per_minute(5))
        .fallback(Fallback::FailClosed);
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::with_store(store))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(
        res.headers().get("ratelimit").is_none(),
        "no quota to report"
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}
