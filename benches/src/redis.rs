//! A rate-limit decision through Redis on loopback vs in process (`--redis`): latency per
//! decision (p50/p99) with one caller and with 32 concurrent callers, and decisions per second
//! with 32 callers. Needs `REDIS_URL`; without it the section says it was skipped.

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use middleware_std::{
    rate_limit::{Check, Key, MemoryStore, Policy, RateLimitStore},
    redis::{Redis, RedisRateLimitStore},
};

/// Concurrent callers of the throughput figure.
pub const CALLERS: usize = 32;

/// One store's figures.
#[derive(Clone, Debug)]
pub struct Figures {
    pub store: &'static str,
    pub p50_one: Duration,
    pub p99_one: Duration,
    pub p50_many: Duration,
    pub p99_many: Duration,
    pub per_second: f64,
}

async fn decide<S: RateLimitStore>(store: &S, key: &Key) -> bool {
    match store.check(key) {
        Check::Ready(decision) => decision.is_allowed(),
        Check::Pending(future) => future.await.is_allowed(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The figures of `store`: `decisions` by one caller, then by [`CALLERS`] at once.
async fn measure<S: RateLimitStore + Send + Sync + 'static>(
    name: &'static str,
    store: S,
    decisions: usize,
) -> Figures
where
    S::Future: Send,
{
    let store = Arc::new(store);
    // Warm-up: the connection, the script cached on the server.
    for i in 0..100 {
        decide(&*store, &Key::from_bytes(format!("warm-{i}").as_bytes())).await;
    }
    let key = Key::from_bytes(b"one-caller");
    let mut one = Vec::with_capacity(decisions);
    for _ in 0..decisions {
        let started = Instant::now();
        assert!(
            decide(&*store, &key).await,
            "the quota is large enough for the run"
        );
        one.push(started.elapsed());
    }
    one.sort();
    let per_caller = decisions.div_ceil(CALLERS);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let key = Key::from_bytes(format!("caller-{caller}").as_bytes());
                let mut times = Vec::with_capacity(per_caller);
                for _ in 0..per_caller {
                    let started = Instant::now();
                    decide(&*store, &key).await;
                    times.push(started.elapsed());
                }
                times
            })
        })
        .collect();
    let mut many = Vec::with_capacity(per_caller * CALLERS);
    for task in tasks {
        many.extend(task.await.expect("a caller"));
    }
    let elapsed = started.elapsed();
    many.sort();
    #[allow(clippy::cast_precision_loss)]
    let per_second = many.len() as f64 / elapsed.as_secs_f64();
    Figures {
        store: name,
        p50_one: percentile(&one, 0.5),
        p99_one: percentile(&one, 0.99),
        p50_many: percentile(&many, 0.5),
        p99_many: percentile(&many, 0.99),
        per_second,
    }
}

/// The figures of both stores, or `None` without `REDIS_URL`.
///
/// # Panics
///
/// When Redis does not answer, or the store falls back (the figures would not be Redis's).
pub fn figures(decisions: usize) -> Option<Vec<Figures>> {
    let url = std::env::var("REDIS_URL").ok()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    Some(rt.block_on(async {
        // A quota no run exhausts: every decision is a full GCRA step that allows.
        let policy = Policy::new(1_000_000, Duration::from_secs(1));
        let memory = measure(
            "in process (MemoryStore)",
            MemoryStore::new(policy.clone()),
            decisions,
        )
        .await;
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let redis = Redis::open(&url)
            .expect("a Redis URL")
            .timeout(Duration::from_secs(1));
        let store = RedisRateLimitStore::new(redis, policy).prefix(&format!("bench:{run}:"));
        let through = measure("Redis on loopback (RedisRateLimitStore)", store, decisions).await;
        vec![memory, through]
    }))
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// The report section: the table, or a line saying why it was skipped.
pub fn section(decisions: usize) -> String {
    let mut out = String::from("## A rate-limit decision: Redis on loopback vs in process\n\n");
    let Some(rows) = figures(decisions) else {
        out.push_str(
            "Skipped: REDIS_URL is not set (run `redis-server --port 6379 --save ''` and set \
             `REDIS_URL=redis://127.0.0.1:6379`).\n",
        );
        return out;
    };
    let _ = writeln!(
        out,
        "{decisions} decisions by one caller, then {decisions} by {CALLERS} concurrent callers \
         (one key each) on a 2-worker runtime; one connection (multiplexed) per store.\n"
    );
    out.push_str("| store | p50, 1 caller | p99, 1 caller | p50, 32 callers | p99, 32 callers | decisions/s, 32 callers |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} |",
            r.store,
            micros(r.p50_one),
            micros(r.p99_one),
            micros(r.p50_many),
            micros(r.p99_many),
            r.per_second
        );
    }
    out
}
