//! Three server instances (each its own thread, tokio runtime, stack and Redis connection,
//! serving real TCP on 127.0.0.1) share a rate limit and a circuit breaker through one Redis
//! (`REDIS_URL`; skipped loudly without it, a failure under `CI=true`).

#[path = "../../middleware-std/tests/redis_support/mod.rs"]
mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use http::HeaderName;
use middleware_std::{
    breaker::{BreakerConfig, CircuitBreaker},
    rate_limit::{Policy, RateLimitLayer},
    redis::{Redis, RedisBreakerStore, RedisRateLimitStore},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};

/// The shared limit, per tenant, for a window far longer than the test (nothing is
/// replenished while it runs: the bound is exact).
const LIMIT: u32 = 20;

/// How late an instance may see a circuit another opened: the refresh, a round trip, slack.
const REFRESH: Duration = Duration::from_millis(50);
const PROPAGATION: Duration = Duration::from_millis(500);

struct Instance {
    addr: SocketAddr,
    upstream_calls: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
struct App {
    breaker: CircuitBreaker<RedisBreakerStore>,
    upstream_calls: Arc<AtomicUsize>,
}

/// The upstream is down: every call fails. The breaker decides whether it is called at all.
async fn upstream(State(app): State<App>) -> (StatusCode, &'static str) {
    match app.breaker.ask("payments") {
        Ok(ticket) => {
            app.upstream_calls.fetch_add(1, Ordering::SeqCst);
            ticket.report(false);
            (StatusCode::BAD_GATEWAY, "upstream failed")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "circuit open"),
    }
}

/// One instance on its own thread and runtime.
fn start(url: &str, prefix: &str) -> Instance {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    let upstream_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&upstream_calls);
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // Each instance its own connection.
            let redis = Redis::open(&url).unwrap();
            let limit = RedisRateLimitStore::new(
                redis.clone(),
                Policy::new(LIMIT, Duration::from_secs(3600)),
            )
            .prefix(&format!("{prefix}rl:"));
            let breaker = CircuitBreaker::with_store(
                RedisBreakerStore::new(
                    redis,
                    BreakerConfig::new()
                        .consecutive_failures(3)
                        .cool_down(Duration::from_secs(60)),
                )
                .prefix(&format!("{prefix}cb:"))
                .refresh(REFRESH),
            );
            let app = App {
                breaker,
                upstream_calls: calls,
            };
            let router = Router::new()
                .route(
                    "/limited",
                    get(|| async { "ok" }).layer(
                        RateLimitLayer::with_store(limit)
                            .per_header(HeaderName::from_static("x-tenant")),
                    ),
                )
                .route("/upstream", get(upstream))
                .with_state(app);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    Instance {
        addr: addr_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        upstream_calls,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// `GET path` on a fresh connection; the status code.
async fn status(addr: SocketAddr, path: &str) -> u16 {
    status_of(addr, path, "acme").await
}

/// `GET path` as `tenant` on a fresh connection; the status code.
async fn status_of(addr: SocketAddr, path: &str, tenant: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: fleet\r\nx-tenant: {tenant}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_admit_at_most_the_shared_limit_of_a_burst_of_ten_times_it() {
    let Some(url) = support::redis_url(
        "three_instances_admit_at_most_the_shared_limit_of_a_burst_of_ten_times_it",
    ) else {
        return;
    };
    let prefix = support::prefix("fleet-limit");
    let fleet: Vec<Instance> = (0..3).map(|_| start(&url, &prefix)).collect();
    // Each instance connected to Redis (another tenant's quota).
    for instance in &fleet {
        assert_eq!(status_of(instance.addr, "/limited", "warm-up").await, 200);
    }
    let mut burst = Vec::new();
    for i in 0..(10 * LIMIT as usize) {
        let addr = fleet[i % 3].addr;
        burst.push(tokio::spawn(async move {
            (i % 3, status(addr, "/limited").await)
        }));
    }
    let mut admitted = [0; 3];
    let mut refused = 0;
    for request in burst {
        match request.await.unwrap() {
            (instance, 200) => admitted[instance] += 1,
            (_, 429) => refused += 1,
            (_, other) => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        admitted.iter().sum::<u32>(),
        LIMIT,
        "admitted per instance: {admitted:?}"
    );
    assert_eq!(refused, 9 * LIMIT);
    // Each instance alone would have admitted `LIMIT` of its third of the burst.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_by_failures_on_one_instance_answers_open_on_the_others() {
    let Some(url) = support::redis_url(
        "a_breaker_opened_by_failures_on_one_instance_answers_open_on_the_others",
    ) else {
        return;
    };
    let prefix = support::prefix("fleet-breaker");
    let fleet: Vec<Instance> = (0..3).map(|_| start(&url, &prefix)).collect();
    let (a, b, c) = (&fleet[0], &fleet[1], &fleet[2]);
    for _ in 0..3 {
        assert_eq!(status(a.addr, "/upstream").await, 502);
    }
    assert_eq!(a.upstream_calls.load(Ordering::SeqCst), 3);
    tokio::time::sleep(PROPAGATION).await;
    for _ in 0..10 {
        assert_eq!(status(b.addr, "/upstream").await, 503);
        assert_eq!(status(c.addr, "/upstream").await, 503);
        assert_eq!(status(a.addr, "/upstream").await, 503);
    }
    // B and C never called the upstream; A stopped after the three failures.
    assert_eq!(b.upstream_calls.load(Ordering::SeqCst), 0);
    assert_eq!(c.upstream_calls.load(Ordering::SeqCst), 0);
    assert_eq!(a.upstream_calls.load(Ordering::SeqCst), 3);
}
