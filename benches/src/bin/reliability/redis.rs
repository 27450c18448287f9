//! The Redis phase (issue 15): three server instances (each its own runtime, stack and Redis
//! connection, real TCP on 127.0.0.1) share per-tenant rate limits through `REDIS_URL`; then
//! one instance on a `redis-server` of the phase's own, killed and restarted under load.
//!
//! - **Shared limit**: `tenants` tenants, each sent `3 × QUOTA` requests spread over the three
//!   instances: every tenant must get exactly [`QUOTA`] `200`s, the rest `429`, nothing else.
//! - **Fault**: requests keep coming while the server is killed (SIGKILL) and restarted: every
//!   request must be answered (`200`/`429`, by the local fallback while Redis is down) within
//!   [`BOUND`]; the store must be back on shared state after the restart; the switch and the
//!   recovery must be logged once each (counted by [`SwitchCounter`]).
//!
//! Without `REDIS_URL` the phase is skipped with a line in the report; under `--ci` with
//! `CI=true` that is a failed check.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{Router, routing::get};
use http::HeaderName;
use middleware_std::{
    rate_limit::{HeaderKey, Policy, RateLimitLayer},
    redis::{Redis, RedisRateLimitStore},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};
use tracing::{Event, Subscriber, field::Visit};
use tracing_subscriber::{Layer, layer::Context};

use crate::{Config, Report, runtime};

/// Requests per tenant per hour (nothing is replenished during the phase).
pub const QUOTA: u32 = 20;

/// The most a request may take, Redis up or down: the store's 50 ms timeout and slack for a
/// loaded two-core machine.
pub const BOUND: Duration = Duration::from_millis(500);

static SWITCHES: AtomicU64 = AtomicU64::new(0);
static RECOVERIES: AtomicU64 = AtomicU64::new(0);

/// Counts the Redis stores' "unavailable" and "recovered" log events.
pub struct SwitchCounter;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for SwitchCounter {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "middleware_std::redis" {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0.starts_with("redis unavailable") {
            SWITCHES.fetch_add(1, Relaxed);
        } else if message.0.starts_with("redis recovered") {
            RECOVERIES.fetch_add(1, Relaxed);
        }
    }
}

/// The layer of an instance: `GET /` limited per `x-tenant` through `store`.
fn limit(store: RedisRateLimitStore) -> RateLimitLayer<HeaderKey, RedisRateLimitStore> {
    RateLimitLayer::with_store(store).per_header(HeaderName::from_static("x-tenant"))
}

/// An instance's router.
fn router(layer: RateLimitLayer<HeaderKey, RedisRateLimitStore>) -> Router {
    Router::new().route("/", get(|| async { "ok" }).layer(layer))
}

/// One instance on a runtime of its own; its address.
fn start(rt: &tokio::runtime::Runtime, store: impl FnOnce() -> RedisRateLimitStore) -> SocketAddr {
    rt.block_on(async {
        let app = router(limit(store()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    })
}

/// `GET /` as `tenant` on a fresh connection: the status (0 for a failure) and the time taken.
async fn get_status(addr: SocketAddr, tenant: &str) -> (u16, Duration) {
    let started = Instant::now();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request =
            format!("GET / HTTP/1.1\r\nhost: r\r\nx-tenant: {tenant}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        String::from_utf8_lossy(&response)
            .split(' ')
            .nth(1)?
            .parse()
            .ok()
    };
    let status = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    (status, started.elapsed())
}

fn prefix(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("reliability:{what}:{}:{nanos:x}:", std::process::id())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let index = ((sorted.len().saturating_sub(1)) as f64 * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn phase(config: &Config, report: &mut Report) {
    let Ok(url) = std::env::var("REDIS_URL") else {
        let required = config.mode == "ci" && std::env::var("CI").is_ok_and(|v| v == "true");
        eprintln!("redis phase: skipped, REDIS_URL is not set");
        report.check(
            "redis: phase ran",
            if required {
                "REDIS_URL not set under CI=true"
            } else {
                "skipped: REDIS_URL not set"
            },
            !required,
        );
        return;
    };
    shared_limit(config, report, &url);
    fault(config, report);
}

fn shared_limit(config: &Config, report: &mut Report, url: &str) {
    let tenants: u32 = if config.mode == "ci" { 30 } else { 300 };
    let prefix = prefix("limit");
    let runtimes: Vec<_> = (0..3).map(|i| runtime(&format!("redis-{i}"), 1)).collect();
    let addrs: Vec<SocketAddr> = runtimes
        .iter()
        .map(|rt| {
            start(rt, || {
                RedisRateLimitStore::new(
                    Redis::open(url).expect("REDIS_URL is a Redis URL"),
                    Policy::new(QUOTA, Duration::from_secs(3600)),
                )
                .prefix(&prefix)
            })
        })
        .collect();
    let client = runtime("redis-client", 2);
    let started = Instant::now();
    let (admitted, refused, other, mut times) = client.block_on(async {
        let places = Arc::new(Semaphore::new(32));
        let mut tasks = Vec::new();
        for i in 0..(tenants * 3 * QUOTA) {
            let addr = addrs[(i % 3) as usize];
            let tenant = format!("t{}", i % tenants);
            let places = Arc::clone(&places);
            tasks.push(tokio::spawn(async move {
                let _place = places.acquire_owned().await;
                (i % tenants, get_status(addr, &tenant).await)
            }));
        }
        let mut admitted = vec![0_u32; tenants as usize];
        let (mut refused, mut other) = (0_u64, 0_u64);
        let mut times = Vec::new();
        for task in tasks {
            let (tenant, (status, took)) = task.await.expect("a request task");
            times.push(took);
            match status {
                200 => admitted[tenant as usize] += 1,
                429 => refused += 1,
                _ => other += 1,
            }
        }
        (admitted, refused, other, times)
    });
    let took = started.elapsed();
    times.sort();
    let exact = admitted.iter().filter(|&&n| n == QUOTA).count();
    let total = u64::from(tenants) * 3 * u64::from(QUOTA);
    report.check(
        "redis: 3 instances share each tenant's limit",
        format!(
            "{total} requests, {tenants} tenants × {QUOTA}/h: {exact}/{tenants} tenants admitted exactly {QUOTA} (max {}), {refused} × 429, {other} other",
            admitted.iter().max().copied().unwrap_or(0)
        ),
        exact == tenants as usize && other == 0,
    );
    let _ = write!(
        report.tables,
        "\n### Redis: shared limit over three instances\n\n| requests | tenants | quota | admitted | 429 | other | p50 | p99 | max | requests/s |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n| {total} | {tenants} | {QUOTA}/h | {} | {refused} | {other} | {} | {} | {} | {:.0} |\n",
        admitted.iter().map(|&n| u64::from(n)).sum::<u64>(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
        total as f64 / took.as_secs_f64()
    );
    drop(runtimes);
}

/// A `redis-server` child of the phase's own.
struct Server {
    child: Option<Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let dir =
            std::env::temp_dir().join(format!("reliability-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.restart().then_some(server)
    }

    fn restart(&mut self) -> bool {
        self.kill();
        self.child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return self.child.is_some();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[allow(clippy::too_many_lines)] // one phase, read top to bottom
fn fault(config: &Config, report: &mut Report) {
    let Some(mut server) = Server::start() else {
        let required = config.mode == "ci" && std::env::var("CI").is_ok_and(|v| v == "true");
        report.check(
            "redis: fault phase ran",
            "redis-server is not on PATH",
            !required,
        );
        return;
    };
    let url = format!("redis://127.0.0.1:{}", server.port);
    let (before_switches, before_recoveries) = (SWITCHES.load(Relaxed), RECOVERIES.load(Relaxed));
    let rt = runtime("redis-fault", 1);
    let store_prefix = prefix("fault");
    let (addr, layer) = rt.block_on(async {
        let layer = limit(
            RedisRateLimitStore::new(
                Redis::open(&url)
                    .expect("a Redis URL")
                    .retry_every(Duration::from_millis(100)),
                Policy::new(1_000_000, Duration::from_secs(3600)),
            )
            .prefix(&store_prefix),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // A clone shares the store: the phase watches it.
        let app = router(layer.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, layer)
    });
    let client = runtime("redis-fault-client", 1);
    let phase = if config.mode == "ci" {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let run = |client: &tokio::runtime::Runtime, for_: Duration| {
        client.block_on(async {
            let until = Instant::now() + for_;
            let places = Arc::new(Semaphore::new(16));
            let mut tasks = Vec::new();
            let mut i = 0_u64;
            while Instant::now() < until {
                let places = Arc::clone(&places);
                let tenant = format!("f{}", i % 64);
                i += 1;
                let place = places.acquire_owned().await;
                tasks.push(tokio::spawn(async move {
                    let _place = place;
                    get_status(addr, &tenant).await
                }));
            }
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.expect("a request task"));
            }
            results
        })
    };
    let up = run(&client, phase);
    server.kill();
    let down = run(&client, phase);
    let restarted = server.restart();
    let recovery_started = Instant::now();
    let after = run(&client, phase);
    // Back on shared state: requests go through Redis again (they did during `after`).
    let recovered = !layer.store().is_degraded();
    let recovery = recovery_started.elapsed();
    let summarize = |results: &[(u16, Duration)]| {
        let mut times: Vec<Duration> = results.iter().map(|r| r.1).collect();
        times.sort();
        let failed = results.iter().filter(|r| r.0 != 200 && r.0 != 429).count();
        (
            results.len(),
            failed,
            percentile(&times, 0.99),
            times.last().copied().unwrap_or_default(),
        )
    };
    let (rows, worst) = {
        let mut rows = String::new();
        let mut worst = Duration::ZERO;
        let mut failed_all = 0;
        for (name, results) in [("up", &up), ("killed", &down), ("restarted", &after)] {
            let (n, failed, p99, max) = summarize(results);
            worst = worst.max(max);
            failed_all += failed;
            let _ = writeln!(
                rows,
                "| {name} | {n} | {failed} | {} | {} |",
                ms(p99),
                ms(max)
            );
        }
        (rows, (worst, failed_all))
    };
    let switches = SWITCHES.load(Relaxed) - before_switches;
    let recoveries = RECOVERIES.load(Relaxed) - before_recoveries;
    report.check(
        "redis: killed and restarted under load",
        format!(
            "{} requests, {} unanswered, slowest {} (bound {}); back on shared state: {recovered} ({} of load after the restart)",
            up.len() + down.len() + after.len(),
            worst.1,
            ms(worst.0),
            ms(BOUND),
            ms(recovery)
        ),
        restarted && recovered && worst.1 == 0 && worst.0 < BOUND,
    );
    report.check(
        "redis: switch and recovery logged once each",
        format!("{switches} switch line, {recoveries} recovery line"),
        switches == 1 && recoveries == 1,
    );
    let _ = write!(
        report.tables,
        "\n### Redis: killed and restarted under load (local fallback)\n\n| period | requests | unanswered | p99 | max |\n| --- | --- | --- | --- | --- |\n{rows}"
    );
    drop(rt);
}
