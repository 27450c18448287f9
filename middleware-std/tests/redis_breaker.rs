//! The Redis breaker store against a real `redis-server` (`REDIS_URL`; skipped loudly without
//! it, a failure under `CI=true`).

#![cfg(feature = "redis")]

#[path = "redis_support/mod.rs"]
mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use middleware_std::{
    breaker::{BreakerConfig, BreakerState, CircuitBreaker, Transition},
    redis::{Fallback, Redis, RedisBreakerStore},
};

/// The bound on how late an instance sees a change another made: the refresh, a round trip.
const REFRESH: Duration = Duration::from_millis(50);
const SEEN_WITHIN: Duration = Duration::from_millis(400);

type Seen = Arc<Mutex<Vec<Transition>>>;

fn breaker(
    url: &str,
    prefix: &str,
    config: BreakerConfig,
) -> (
    CircuitBreaker<RedisBreakerStore, impl Fn(&str, Transition) + Send + Sync + 'static>,
    Seen,
) {
    let seen = Seen::default();
    let log = Arc::clone(&seen);
    let store = RedisBreakerStore::new(Redis::open(url).unwrap(), config)
        .prefix(prefix)
        .refresh(REFRESH);
    let breaker = CircuitBreaker::with_store(store)
        .on_state_change(move |_: &str, t: Transition| log.lock().unwrap().push(t));
    (breaker, seen)
}

/// Waits until `f` holds, at most `within`.
async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

#[tokio::test]
async fn failures_seen_by_one_instance_open_the_circuit_for_the_others() {
    let Some(url) =
        support::redis_url("failures_seen_by_one_instance_open_the_circuit_for_the_others")
    else {
        return;
    };
    let prefix = support::prefix("cb-open");
    let config = BreakerConfig::new()
        .consecutive_failures(3)
        .cool_down(Duration::from_secs(30));
    let (a, seen_a) = breaker(&url, &prefix, config);
    let (b, seen_b) = breaker(&url, &prefix, config);
    let (c, seen_c) = breaker(&url, &prefix, config);
    assert!(b.ask("upstream").is_ok() && c.ask("upstream").is_ok());
    for _ in 0..3 {
        a.ask("upstream").unwrap().report(false);
    }
    let started = Instant::now();
    assert!(
        eventually(SEEN_WITHIN, || b.ask("upstream").is_err()
            && c.ask("upstream").is_err())
        .await
    );
    let took = started.elapsed();
    assert_eq!(b.state("upstream"), BreakerState::Open);
    assert_eq!(c.state("upstream"), BreakerState::Open);
    assert!(eventually(SEEN_WITHIN, || a.ask("upstream").is_err()).await);
    // Reported once, by the instance whose failure opened it.
    assert_eq!(
        *seen_a.lock().unwrap(),
        [Transition {
            from: BreakerState::Closed,
            to: BreakerState::Open
        }]
    );
    assert!(seen_b.lock().unwrap().is_empty() && seen_c.lock().unwrap().is_empty());
    // Another circuit is not affected.
    assert!(b.ask("other").is_ok());
    assert!(took < SEEN_WITHIN, "{took:?}");
}

#[tokio::test]
async fn open_to_half_open_happens_once_across_the_fleet_with_bounded_probes() {
    let Some(url) =
        support::redis_url("open_to_half_open_happens_once_across_the_fleet_with_bounded_probes")
    else {
        return;
    };
    let prefix = support::prefix("cb-probe");
    let config = BreakerConfig::new()
        .consecutive_failures(1)
        .cool_down(Duration::from_millis(300))
        .probes(2);
    let fleet: Vec<_> = (0..3).map(|_| breaker(&url, &prefix, config)).collect();
    fleet[0].0.ask("up").unwrap().report(false);
    assert!(
        eventually(SEEN_WITHIN, || fleet
            .iter()
            .all(|(b, _)| b.ask("up").is_err()))
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every instance asks, many times, for a while: two probes in all.
    let mut probes = Vec::new();
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        for (b, _) in &fleet {
            if let Ok(ticket) = b.ask("up") {
                assert!(ticket.is_probe());
                probes.push(ticket);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(probes.len(), 2);
    // Reported once across the fleet (with the reporter's next call).
    for (b, _) in &fleet {
        let _ = b.ask("up");
    }
    let half_open: usize = fleet
        .iter()
        .map(|(_, seen)| {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|t| t.to == BreakerState::HalfOpen)
                .count()
        })
        .sum();
    assert_eq!(half_open, 1);
    // A probe's success closes the circuit for the whole fleet.
    probes.pop().unwrap().report(true);
    assert!(
        eventually(SEEN_WITHIN, || fleet
            .iter()
            .all(|(b, _)| b.ask("up").is_ok()))
        .await
    );
    assert!(
        fleet
            .iter()
            .all(|(b, _)| b.state("up") == BreakerState::Closed)
    );
}

#[tokio::test]
async fn a_probe_failure_reopens_the_circuit_for_the_fleet() {
    let Some(url) = support::redis_url("a_probe_failure_reopens_the_circuit_for_the_fleet") else {
        return;
    };
    let prefix = support::prefix("cb-reopen");
    let config = BreakerConfig::new()
        .consecutive_failures(1)
        .cool_down(Duration::from_millis(200));
    let (a, _) = breaker(&url, &prefix, config);
    let (b, _) = breaker(&url, &prefix, config);
    a.ask("up").unwrap().report(false);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let probe = loop {
        if let Ok(ticket) = a.ask("up") {
            break ticket;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(probe.is_probe());
    probe.report(false);
    assert_eq!(a.state("up"), BreakerState::Open);
    assert!(eventually(SEEN_WITHIN, || b.state("up") == BreakerState::Open).await);
}

#[tokio::test]
async fn an_unbounded_cool_down_opens_the_shared_circuit_cleanly() {
    let Some(url) = support::redis_url("an_unbounded_cool_down_opens_the_shared_circuit_cleanly")
    else {
        return;
    };
    let prefix = support::prefix("cb-max");
    let config = BreakerConfig::new()
        .consecutive_failures(1)
        .cool_down(Duration::MAX);
    let (a, seen) = breaker(&url, &prefix, config);
    a.ask("up").unwrap().report(false);
    assert!(eventually(SEEN_WITHIN, || a.ask("up").is_err()).await);
    // The pending transition is collected by that call.
    assert!(!a.store().is_degraded());
    assert_eq!(
        *seen.lock().unwrap(),
        [Transition {
            from: BreakerState::Closed,
            to: BreakerState::Open
        }],
        "Closed → Open reported"
    );
    // Open in Redis for a year at most, and the hash still expires.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}c:up"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "PTTL {ttl}");
}

#[tokio::test]
async fn a_call_admitted_before_the_circuit_opened_does_not_count_after_it_closed() {
    let Some(url) = support::redis_url(
        "a_call_admitted_before_the_circuit_opened_does_not_count_after_it_closed",
    ) else {
        return;
    };
    let config = BreakerConfig::new()
        .consecutive_failures(2)
        .cool_down(Duration::from_millis(100));
    let (a, _) = breaker(&url, &support::prefix("cb-stale"), config);
    let stale = a.ask("up").unwrap(); // a slow call, still out
    a.ask("up").unwrap().report(false);
    a.ask("up").unwrap().report(false); // opens
    assert!(eventually(SEEN_WITHIN, || a.state("up") == BreakerState::Open).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let probe = loop {
        if let Ok(ticket) = a.ask("up") {
            break ticket;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(probe.is_probe());
    probe.report(true); // closes
    assert!(eventually(SEEN_WITHIN, || a.state("up") == BreakerState::Closed).await);
    // Refreshes come and go meanwhile: the closed circuit's view keeps its generation.
    tokio::time::sleep(Duration::from_millis(150)).await;
    stale.report(false); // the old call fails at last
    a.ask("up").unwrap().report(false); // one fresh failure
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        a.state("up"),
        BreakerState::Closed,
        "as MemoryStore: the stale call is ignored"
    );
    // Fresh failures still count: a second one opens it.
    a.ask("up").unwrap().report(false);
    assert!(eventually(SEEN_WITHIN, || a.state("up") == BreakerState::Open).await);
}

#[tokio::test]
async fn the_outcomes_of_a_circuit_whose_view_was_evicted_still_count() {
    let Some(url) =
        support::redis_url("the_outcomes_of_a_circuit_whose_view_was_evicted_still_count")
    else {
        return;
    };
    let prefix = support::prefix("cb-evicted");
    let config = BreakerConfig::new()
        .consecutive_failures(3)
        .cool_down(Duration::from_millis(100));
    let (a, _) = breaker(&url, &prefix, config);
    // Open and close `victim` once: its generation in Redis is past 0.
    for _ in 0..3 {
        a.ask("victim").unwrap().report(false);
    }
    assert!(eventually(SEEN_WITHIN, || a.state("victim") == BreakerState::Open).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let probe = loop {
        if let Ok(ticket) = a.ask("victim") {
            break ticket;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(probe.is_probe());
    probe.report(true);
    assert!(eventually(SEEN_WITHIN, || a.state("victim") == BreakerState::Closed).await);
    // Each round, a flood of other circuits evicts its view before its call fails.
    for round in 0..3 {
        for i in 0..1100 {
            drop(a.ask(&format!("flood-{round}-{i}")));
        }
        a.ask("victim").unwrap().report(false);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // In Redis, where every instance reads it (the outcomes may queue behind the flood's).
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let st: Option<i64> = redis::cmd("HGET")
            .arg(format!("{prefix}c:victim"))
            .arg("st")
            .query_async(&mut conn)
            .await
            .unwrap();
        if st == Some(1) {
            break;
        }
        assert!(
            Instant::now() < until,
            "three failures did not open the circuit in Redis: st {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_full_view_still_sees_a_circuit_opened_later() {
    let Some(url) = support::redis_url("a_full_view_still_sees_a_circuit_opened_later") else {
        return;
    };
    let prefix = support::prefix("cb-full");
    let config = BreakerConfig::new()
        .consecutive_failures(1)
        .cool_down(Duration::from_secs(30));
    let (a, _) = breaker(&url, &prefix, config);
    let (b, _) = breaker(&url, &prefix, config);
    // A flood of hostile circuits, opened in Redis: more than a view holds.
    for i in 0..1100 {
        if let Ok(ticket) = a.ask(&format!("junk-{i}")) {
            ticket.report(false);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A legitimate upstream fails, on A: open in Redis, and seen by A.
    a.ask("payments").unwrap().report(false);
    assert!(
        eventually(SEEN_WITHIN, || a.ask("payments").is_err()).await,
        "open fleet-wide, yet this instance keeps calling the dead upstream"
    );
    // B, whose view the refreshes filled with the flood, lets one call through at most: its
    // outcome's answer gives the circuit a view.
    if let Ok(ticket) = b.ask("payments") {
        ticket.report(false);
    }
    assert!(
        eventually(SEEN_WITHIN, || b.ask("payments").is_err()).await,
        "open fleet-wide, yet the other instance keeps calling the dead upstream"
    );
    // Redis lists (and every refresh ships) a bounded number of them.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let listed: usize = redis::cmd("HLEN")
        .arg(format!("{prefix}tripped"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(listed, 1024);
}

#[tokio::test]
async fn a_late_release_of_an_expired_probe_slot_frees_no_other_slot() {
    let Some(url) =
        support::redis_url("a_late_release_of_an_expired_probe_slot_frees_no_other_slot")
    else {
        return;
    };
    let prefix = support::prefix("cb-lease");
    // One probe at a time; its lease is a second (the cool-down is shorter).
    let config = BreakerConfig::new()
        .consecutive_failures(1)
        .cool_down(Duration::from_millis(100))
        .probes(1);
    let (a, _) = breaker(&url, &prefix, config);
    let (b, _) = breaker(&url, &prefix, config);
    let (c, _) = breaker(&url, &prefix, config);
    a.ask("up").unwrap().report(false);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let first = loop {
        if let Ok(ticket) = a.ask("up") {
            break ticket;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(first.is_probe());
    // A's probe outlasts its lease: B gets the slot again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut second = None;
    let until = Instant::now() + SEEN_WITHIN;
    while second.is_none() && Instant::now() < until {
        second = b.ask("up").ok();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = second.expect("a probe once the first one's lease is over");
    assert!(second.is_probe());
    // A's call ends at last, abandoned: it must not free B's slot.
    drop(first);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        assert!(
            c.ask("up").is_err(),
            "a second probe while B's is still out"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(second);
}

#[tokio::test]
async fn a_redis_that_never_answers_leaves_the_breaker_to_the_local_one() {
    let addr = support::silent_server();
    let redis = Redis::open(&format!("redis://{addr}"))
        .unwrap()
        .timeout(Duration::from_millis(30));
    let store = RedisBreakerStore::new(redis, BreakerConfig::new().consecutive_failures(2))
        .refresh(Duration::from_millis(10));
    let breaker = CircuitBreaker::with_store(store);
    // Never waits: the store answers from its view.
    let started = Instant::now();
    for _ in 0..100 {
        drop(breaker.ask("up"));
    }
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(eventually(Duration::from_secs(3), || breaker.store().is_degraded()).await);
    breaker.ask("up").unwrap().report(false);
    breaker.ask("up").unwrap().report(false);
    assert!(breaker.ask("up").is_err());
    assert_eq!(breaker.store().local().len(), 1);
}

#[tokio::test]
async fn fail_open_and_fail_closed_breakers_without_redis() {
    let url = format!("redis://{}", support::refused_addr());
    let config = BreakerConfig::new().consecutive_failures(1);
    let open = CircuitBreaker::with_store(
        RedisBreakerStore::new(Redis::open(&url).unwrap(), config)
            .fallback(Fallback::FailOpen)
            .refresh(Duration::from_millis(10)),
    );
    let closed = CircuitBreaker::with_store(
        RedisBreakerStore::new(Redis::open(&url).unwrap(), config)
            .fallback(Fallback::FailClosed)
            .refresh(Duration::from_millis(10)),
    );
    assert!(
        eventually(Duration::from_secs(2), || open.store().is_degraded()
            && closed.store().is_degraded())
        .await
    );
    for _ in 0..3 {
        open.ask("up").unwrap().report(false);
        assert!(closed.ask("up").is_err());
    }
    assert_eq!(closed.state("up"), BreakerState::Open);
    assert_eq!(open.state("up"), BreakerState::Closed);
}

#[tokio::test]
async fn many_keys_keep_the_local_view_bounded() {
    let Some(url) = support::redis_url("many_keys_keep_the_local_view_bounded") else {
        return;
    };
    let prefix = support::prefix("cb-many");
    let config = BreakerConfig::new().consecutive_failures(1);
    let (a, _) = breaker(&url, &prefix, config);
    let opened = Arc::new(AtomicU32::new(0));
    for i in 0..1500 {
        let key = format!("host-{i}\r\n*");
        if let Ok(ticket) = a.ask(&key) {
            ticket.report(false);
            opened.fetch_add(1, Ordering::Relaxed);
        }
    }
    assert_eq!(opened.load(Ordering::Relaxed), 1500);
    // The circuits opened in Redis; the view holds at most 1024 of them (the others answer
    // closed, as an unknown circuit does) and keeps working.
    let seen_open = || {
        (0..1500)
            .filter(|i| a.state(&format!("host-{i}\r\n*")) == BreakerState::Open)
            .count()
    };
    assert!(eventually(Duration::from_secs(5), || seen_open() >= 1000).await);
    assert!(seen_open() <= 1024, "{}", seen_open());
    assert!(!a.store().is_degraded());
    assert!(a.ask("fresh").is_ok());
}

/// Redis killed and restarted, with a `redis-server` of the test's own (killing it hurts no other
/// test).
#[test]
fn a_breaker_falls_back_to_local_circuits_while_redis_is_killed_and_shares_again_after() {
    let test =
        "a_breaker_falls_back_to_local_circuits_while_redis_is_killed_and_shares_again_after";
    let Some(mut server) = support::RedisServer::start(test) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let prefix = support::prefix("cb-fault");
        let config = BreakerConfig::new()
            .consecutive_failures(2)
            .cool_down(Duration::from_secs(60));
        let breaker = || {
            CircuitBreaker::with_store(
                RedisBreakerStore::new(
                    Redis::open(&server.url())
                        .unwrap()
                        .timeout(Duration::from_millis(50)),
                    config,
                )
                .prefix(&prefix)
                .refresh(Duration::from_millis(20)),
            )
        };
        let (a, b) = (breaker(), breaker());
        server.kill();
        // The refresh finds Redis gone (refused at once, or within a second).
        let mut degraded = false;
        for _ in 0..300 {
            if a.store().is_degraded() && b.store().is_degraded() {
                degraded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(degraded, "the stores did not notice Redis was gone");
        // Local circuits: A's failures open A's circuit only.
        a.ask("up").unwrap().report(false);
        a.ask("up").unwrap().report(false);
        assert!(a.ask("up").is_err());
        assert!(b.ask("up").is_ok());

        server.restart();
        let mut recovered = false;
        for _ in 0..500 {
            if !a.store().is_degraded() && !b.store().is_degraded() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(recovered, "no recovery after the restart");
        // Shared again: A's failures open the circuit for B.
        a.ask("again").unwrap().report(false);
        a.ask("again").unwrap().report(false);
        let mut seen = false;
        for _ in 0..100 {
            if b.state("again") == BreakerState::Open {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen);
    });
}
