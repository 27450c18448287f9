//! Redis killed mid-run and restarted, with a `redis-server` of the test's own: requests keep
//! being decided within their bound by the fallback, decisions go back to shared state after
//! the restart, and the switch and the recovery are logged once each.

#![cfg(feature = "redis")]

#[path = "redis_support/mod.rs"]
mod support;

use std::{
    io,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use middleware_std::{
    breaker::{BreakerConfig, CircuitBreaker},
    rate_limit::{Check, Decision, Key, Policy, RateLimitStore},
    redis::{Redis, RedisBreakerStore, RedisRateLimitStore},
};

/// The log lines of the test, as `tracing_subscriber::fmt` writes them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A decision and how long it took.
async fn timed<S: RateLimitStore>(store: &S, key: &Key) -> (Decision, Duration) {
    let started = Instant::now();
    let decision = match store.check(key) {
        Check::Ready(decision) => decision,
        Check::Pending(future) => future.await,
    };
    (decision, started.elapsed())
}

#[test]
fn redis_killed_and_restarted_falls_back_in_bounded_time_and_recovers_logged_once() {
    let test = "redis_killed_and_restarted_falls_back_in_bounded_time_and_recovers_logged_once";
    let Some(mut server) = support::RedisServer::start(test) else {
        return;
    };
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let timeout = Duration::from_millis(50);
        // The bound of a decision: the call's timeout, and scheduling slack.
        let bound = timeout + Duration::from_millis(100);
        let open = || {
            Redis::open(&server.url())
                .unwrap()
                .timeout(timeout)
                .retry_every(Duration::from_millis(100))
        };
        let prefix = support::prefix("fault");
        let a = RedisRateLimitStore::new(open(), Policy::per_minute(5)).prefix(&prefix);
        let b = RedisRateLimitStore::new(open(), Policy::per_minute(5)).prefix(&prefix);

        // Shared: 5 over both stores.
        let key = Key::from_bytes(b"before");
        let mut allowed = 0;
        for i in 0..10 {
            let store = if i % 2 == 0 { &a } else { &b };
            allowed += u32::from(timed(store, &key).await.0.is_allowed());
        }
        assert_eq!(allowed, 5);

        server.kill();
        let key = Key::from_bytes(b"during");
        let mut worst = Duration::ZERO;
        let mut allowed_by_a = 0;
        for _ in 0..200 {
            let (decision, took) = timed(&a, &key).await;
            worst = worst.max(took);
            allowed_by_a += u32::from(decision.is_allowed());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(worst < bound, "a decision took {worst:?} with Redis down");
        assert!(a.is_degraded());
        // The local fallback, same policy: this instance alone admits the quota.
        assert_eq!(allowed_by_a, 5);

        server.restart();
        let until = Instant::now() + Duration::from_secs(10);
        let key = Key::from_bytes(b"probe");
        while a.is_degraded() || b.is_degraded() {
            assert!(Instant::now() < until, "no recovery 10 s after the restart");
            let (_, took) = timed(&a, &key).await;
            assert!(took < bound + Duration::from_millis(500), "{took:?}");
            let _ = timed(&b, &key).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Shared again: 5 over both stores.
        let key = Key::from_bytes(b"after");
        let mut allowed = 0;
        for i in 0..10 {
            let store = if i % 2 == 0 { &a } else { &b };
            allowed += u32::from(timed(store, &key).await.0.is_allowed());
        }
        assert_eq!(allowed, 5);
    });
    let logged = logs.text();
    // Each store switched once and recovered once: two of each line, not one per request.
    assert_eq!(
        logged
            .matches("redis unavailable: deciding by the fallback")
            .count(),
        2,
        "{logged}"
    );
    assert_eq!(
        logged
            .matches("redis recovered: deciding by shared state again")
            .count(),
        2,
        "{logged}"
    );
    assert!(logged.contains("by_fallback="), "{logged}");
}

/// Captures the log lines of the current thread (the tests' runtimes are current-thread).
fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn redis_out_of_memory_switches_the_rate_limit_once_and_does_not_flap() {
    let test = "redis_out_of_memory_switches_the_rate_limit_once_and_does_not_flap";
    let Some(server) = support::RedisServer::start(test) else {
        return;
    };
    let (logs, _guard) = capture();
    runtime().block_on(async {
        let redis = Redis::open(&server.url())
            .unwrap()
            .retry_every(Duration::from_millis(5));
        let store =
            RedisRateLimitStore::new(redis, Policy::per_minute(1)).prefix(&support::prefix("oom"));
        let spent = Key::from_bytes(b"spent");
        assert!(timed(&store, &spent).await.0.is_allowed());
        // Spent: its checks are limited decisions.
        assert!(!timed(&store, &spent).await.0.is_allowed());
        admin(&server.url(), &["CONFIG", "SET", "maxmemory", "1"]).await;
        for i in 0..150u32 {
            // A fresh key (an allowed decision, a write: OOM) and the spent one (limited, and
            // no write were it not for the script's own), in turns first: either may be the
            // retry.
            let fresh = Key::from_bytes(&i.to_be_bytes());
            let (first, second) = if i % 2 == 0 {
                (&fresh, &spent)
            } else {
                (&spent, &fresh)
            };
            let _ = timed(&store, first).await;
            let _ = timed(&store, second).await;
            tokio::time::sleep(Duration::from_millis(6)).await;
        }
        assert!(store.is_degraded());
        // Memory again: the next retry recovers, once.
        admin(&server.url(), &["CONFIG", "SET", "maxmemory", "0"]).await;
        let until = Instant::now() + Duration::from_secs(2);
        while store.is_degraded() {
            assert!(
                Instant::now() < until,
                "no recovery once Redis has memory again"
            );
            let _ = timed(&store, &spent).await;
            tokio::time::sleep(Duration::from_millis(6)).await;
        }
    });
    let logged = logs.text();
    assert_eq!(logged.matches("redis unavailable").count(), 1, "{logged}");
    assert_eq!(logged.matches("redis recovered").count(), 1, "{logged}");
}

#[test]
fn redis_out_of_memory_switches_the_breaker_once_and_does_not_flap() {
    let test = "redis_out_of_memory_switches_the_breaker_once_and_does_not_flap";
    let Some(server) = support::RedisServer::start(test) else {
        return;
    };
    let (logs, _guard) = capture();
    runtime().block_on(async {
        let redis = Redis::open(&server.url())
            .unwrap()
            .retry_every(Duration::from_millis(5));
        let store = RedisBreakerStore::new(redis, BreakerConfig::new().consecutive_failures(1000))
            .prefix(&support::prefix("cb-oom"))
            .refresh(Duration::from_millis(5));
        let breaker = CircuitBreaker::with_store(store);
        breaker.ask("up").unwrap().report(true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!breaker.store().is_degraded());
        admin(&server.url(), &["CONFIG", "SET", "maxmemory", "1"]).await;
        // Outcomes write (and fail); refreshes would only read, were it not for their write.
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if let Ok(ticket) = breaker.ask("up") {
                ticket.report(true);
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        assert!(breaker.store().is_degraded());
    });
    let logged = logs.text();
    assert_eq!(logged.matches("redis unavailable").count(), 1, "{logged}");
    assert_eq!(logged.matches("redis recovered").count(), 0, "{logged}");
}

/// A loopback forwarder: each new connection goes to `*target` as it is at accept time (a
/// DNS name or a virtual IP that a failover moves).
async fn forwarder(target: Arc<Mutex<std::net::SocketAddr>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = *target.lock().unwrap();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    addr
}

fn loopback(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn a_failover_to_a_read_only_replica_reconnects() {
    let test = "a_failover_to_a_read_only_replica_reconnects";
    let (Some(old), Some(new)) = (
        support::RedisServer::start(test),
        support::RedisServer::start(test),
    ) else {
        return;
    };
    runtime().block_on(async {
        let target = Arc::new(Mutex::new(loopback(old.port())));
        let front = forwarder(Arc::clone(&target)).await;
        let redis = Redis::open(&format!("redis://{front}"))
            .unwrap()
            .retry_every(Duration::from_millis(50));
        let store = RedisRateLimitStore::new(redis, Policy::per_minute(1000))
            .prefix(&support::prefix("failover"));
        assert!(
            timed(&store, &Key::from_bytes(b"warm"))
                .await
                .0
                .is_allowed()
        );
        // Fail over: the new server is the primary, the old one a replica of it, and the
        // name moves to the new one.
        admin(&new.url(), &["REPLICAOF", "NO", "ONE"]).await;
        let new_port = new.port().to_string();
        admin(&old.url(), &["REPLICAOF", "127.0.0.1", &new_port]).await;
        *target.lock().unwrap() = loopback(new.port());
        let until = Instant::now() + Duration::from_secs(5);
        let mut shared_in_a_row = 0;
        for i in 0u32.. {
            // A fresh key each time: an allowed decision, a write.
            let _ = timed(&store, &Key::from_bytes(&i.to_be_bytes())).await;
            shared_in_a_row = if store.is_degraded() {
                0
            } else {
                shared_in_a_row + 1
            };
            if shared_in_a_row > 5 && i > 10 {
                break;
            }
            assert!(
                Instant::now() < until,
                "still writing to the demoted primary after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// A loopback forwarder whose open connections can be blackholed: from
/// [`blackhole`](Self::blackhole) on, the bytes of the connections already open vanish both
/// ways (a frozen peer, a dropped route: nothing closes them), while new connections work.
#[derive(Clone)]
struct Blackholing {
    addr: std::net::SocketAddr,
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl Blackholing {
    async fn start(to: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let epoch = Arc::new(AtomicU64::new(0));
        let current = Arc::clone(&epoch);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                    continue;
                };
                let born = current.load(Ordering::SeqCst);
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                for (mut from, mut into) in [(ri, wo), (ro, wi)].map(|(r, w)| {
                    (
                        Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(w) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    )
                }) {
                    let current = Arc::clone(&current);
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = [0; 4096];
                        while let Ok(n @ 1..) = from.read(&mut buf).await {
                            if current.load(Ordering::SeqCst) != born {
                                continue; // blackholed: the bytes vanish
                            }
                            if into.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self { addr, epoch }
    }

    fn blackhole(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_connection_gone_silent_is_replaced_by_the_retry() {
    let test = "a_connection_gone_silent_is_replaced_by_the_retry";
    let Some(server) = support::RedisServer::start(test) else {
        return;
    };
    runtime().block_on(async {
        let front = Blackholing::start(loopback(server.port())).await;
        let redis = Redis::open(&format!("redis://{}", front.addr))
            .unwrap()
            .timeout(Duration::from_millis(50))
            .retry_every(Duration::from_millis(50));
        let store = RedisRateLimitStore::new(redis, Policy::per_minute(1000))
            .prefix(&support::prefix("silent"));
        let key = Key::from_bytes(b"k");
        assert!(timed(&store, &key).await.0.is_allowed());
        assert!(!store.is_degraded());
        // The open connection goes silent (nothing closes it); a new one would work.
        front.blackhole();
        let _ = timed(&store, &key).await;
        assert!(store.is_degraded());
        let until = Instant::now() + Duration::from_secs(5);
        while store.is_degraded() {
            assert!(
                Instant::now() < until,
                "still waiting on the silent connection after 5 s"
            );
            let _ = timed(&store, &key).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// A loopback forwarder to `to` that holds each new connection for `handshake` before it
/// forwards a byte (a far or TLS-terminated Redis: a fresh connection costs several round
/// trips); an open connection then forwards at once.
async fn slow_handshake(to: std::net::SocketAddr, handshake: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(handshake).await;
                if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    addr
}

#[test]
fn a_store_recovers_when_a_fresh_connection_needs_longer_than_the_timeout() {
    let test = "a_store_recovers_when_a_fresh_connection_needs_longer_than_the_timeout";
    let Some(server) = support::RedisServer::start(test) else {
        return;
    };
    runtime().block_on(async {
        // A connection takes 400 ms to set up, longer than a call's 100 ms but within the
        // connection bound; a call on an open connection takes a loopback round trip.
        let front = slow_handshake(loopback(server.port()), Duration::from_millis(400)).await;
        let redis = Redis::open(&format!("redis://{front}"))
            .unwrap()
            .timeout(Duration::from_millis(100))
            .retry_every(Duration::from_millis(50));
        let store = RedisRateLimitStore::new(redis, Policy::per_second(1000))
            .prefix(&support::prefix("slow-handshake"));
        let key = Key::from_bytes(b"k");
        // The first call (and the probes while the connection is set up) time out.
        let _ = timed(&store, &key).await;
        let until = Instant::now() + Duration::from_secs(5);
        let mut shared_in_a_row = 0;
        while shared_in_a_row < 5 {
            assert!(
                Instant::now() < until,
                "still on the fallback after 5 s: each retry starts a fresh connection over"
            );
            let (_, took) = timed(&store, &key).await;
            assert!(
                took < Duration::from_millis(300),
                "a decision took {took:?}"
            );
            shared_in_a_row = if store.is_degraded() {
                0
            } else {
                shared_in_a_row + 1
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn a_breaker_script_refused_for_memory_writes_nothing() {
    let test = "a_breaker_script_refused_for_memory_writes_nothing";
    let Some(server) = support::RedisServer::start(test) else {
        return;
    };
    runtime().block_on(async {
        let prefix = support::prefix("cb-oom-write");
        let store = RedisBreakerStore::new(
            Redis::open(&server.url()).unwrap(),
            BreakerConfig::new().consecutive_failures(2),
        )
        .prefix(&prefix);
        let breaker = CircuitBreaker::with_store(store);
        breaker.ask("up").unwrap().report(false);
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let consec = || {
            let mut conn = conn.clone();
            let key = format!("{prefix}c:up");
            async move {
                redis::cmd("HGET")
                    .arg(key)
                    .arg("consec")
                    .query_async::<Option<i64>>(&mut conn)
                    .await
                    .unwrap()
            }
        };
        let until = Instant::now() + Duration::from_secs(2);
        while consec().await != Some(1) {
            assert!(Instant::now() < until, "the first failure was not counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        admin(&server.url(), &["CONFIG", "SET", "maxmemory", "1"]).await;
        // The second failure would open the circuit: Redis refuses the script's first write.
        breaker.ask("up").unwrap().report(false);
        let until = Instant::now() + Duration::from_secs(2);
        while !breaker.store().is_degraded() {
            assert!(Instant::now() < until, "the refused script was not seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(consec().await, Some(1), "the circuit's hash was changed");
        let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    });
}

/// A field of `INFO`, as a number.
async fn info_field(url: &str, section: &str, field: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

#[test]
fn a_flood_of_distinct_keys_at_maxmemory_evicts_instead_of_degrading() {
    let test = "a_flood_of_distinct_keys_at_maxmemory_evicts_instead_of_degrading";
    let Some(server) = support::RedisServer::start(test) else {
        return;
    };
    runtime().block_on(async {
        // The deployment the docs require: a memory bound, and a policy that evicts keys with
        // a TTL (every rate-limit key has one). A megabyte over what the server holds now.
        let used = info_field(&server.url(), "memory", "used_memory").await;
        let max = (used + (1 << 20)).to_string();
        admin(&server.url(), &["CONFIG", "SET", "maxmemory", &max]).await;
        admin(
            &server.url(),
            &["CONFIG", "SET", "maxmemory-policy", "volatile-ttl"],
        )
        .await;
        // A bound for the machine's load, not Redis's health: this test is about memory.
        let redis = Redis::open(&server.url())
            .unwrap()
            .timeout(Duration::from_secs(1));
        let store = Arc::new(
            RedisRateLimitStore::new(redis, Policy::new(10, Duration::from_secs(86_400)))
                .prefix(&support::prefix("flood")),
        );
        let mut allowed = 0;
        for batch in 0..200u32 {
            let mut calls = tokio::task::JoinSet::new();
            for i in 0..100u32 {
                let store = Arc::clone(&store);
                let key = Key::from_bytes(&(batch * 100 + i).to_be_bytes());
                calls.spawn(async move { timed(&*store, &key).await.0.is_allowed() });
            }
            while let Some(decision) = calls.join_next().await {
                allowed += u32::from(decision.unwrap());
            }
        }
        assert!(
            info_field(&server.url(), "stats", "evicted_keys").await > 0,
            "the flood did not reach maxmemory"
        );
        assert!(
            !store.is_degraded(),
            "a distinct-key flood took the shared limit down"
        );
        assert_eq!(allowed, 20_000, "every fresh key is allowed");
        assert!(store.local().is_empty(), "decided by Redis throughout");
    });
}

/// Runs one admin command (`CONFIG SET`, `REPLICAOF`…) on its own connection.
async fn admin(url: &str, args: &[&str]) {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("the admin connection");
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd.query_async(&mut conn).await.expect("the admin command");
}
