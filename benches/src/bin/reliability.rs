//! The reliability suite: load and soak, faults under load, overload with the protection
//! layers on, rate limits shared through Redis (with `REDIS_URL`) and Redis killed under load, request-id uniqueness and hostile input, in one bounded, loopback-only run. See `benches/RELIABILITY.md` for the checks and
//! the figures of the last full run.
//!
//! ```text
//! cargo run -j2 --release -p middleware-benches --bin reliability           # full: 1M requests, 64 connections
//! cargo run -j2 -p middleware-benches --bin reliability -- --ci             # CI: 20k requests, 32 connections
//! cargo run ... --bin reliability -- --requests N --connections C --protect N --ids N --auth N --seed S
//! ```
//!
//! Progress goes to stderr every few seconds; the summary table goes to stdout; the exit code
//! is non-zero when any check fails.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// a test harness reports to its user
// An unpublished binary: its items are neither a public API nor documented for panics.
#![allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    // `status` / `stats`, `sent` / `send`: the names say what they hold.
    clippy::similar_names
)]
// Rates and percentages from counts: precision far beyond what the figures need.
#![allow(clippy::cast_precision_loss)]

#[path = "reliability/access.rs"]
mod access;
#[path = "reliability/client.rs"]
mod client;
#[path = "reliability/hostile.rs"]
mod hostile;
#[path = "reliability/inputs.rs"]
mod inputs;
#[path = "reliability/mix.rs"]
mod mix;
#[path = "reliability/protect.rs"]
mod protect;
#[path = "reliability/redis.rs"]
mod redis;
#[path = "reliability/server.rs"]
mod server;

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    thread,
    time::{Duration, Instant},
};

use middleware_std::request_id::{DefaultMakeRequestId, MakeRequestId, is_valid_request_id};
use tokio::runtime::{Handle, Runtime};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::{
    client::ClientStats,
    mix::{OUTCOMES, Route},
    server::STATS,
};

/// The run's shape.
#[derive(Clone, Debug)]
struct Config {
    mode: &'static str,
    requests: u64,
    warmup: u64,
    connections: usize,
    ids: u64,
    id_threads: usize,
    auth: u64,
    others: u64,
    /// The protection phase: warm-up and load requests, connections (more than its places).
    protect_warmup: u64,
    protect_requests: u64,
    protect_connections: usize,
    seed: u64,
    progress: Duration,
    /// The load phase stops taking new requests after this long (a failed check).
    limit: Duration,
}

impl Config {
    fn full() -> Self {
        Self {
            mode: "full",
            requests: 1_000_000,
            warmup: 50_000,
            connections: 64,
            ids: 10_000_000,
            id_threads: 16,
            auth: 2_000_000,
            others: 500_000,
            protect_warmup: 20_000,
            protect_requests: 200_000,
            protect_connections: 64,
            seed: 0x5eed,
            progress: Duration::from_secs(5),
            limit: Duration::from_secs(20 * 60),
        }
    }

    fn ci() -> Self {
        Self {
            mode: "ci",
            requests: 20_000,
            warmup: 10_000,
            connections: 32,
            ids: 1_000_000,
            id_threads: 16,
            auth: 1_000_000,
            others: 100_000,
            protect_warmup: 2_000,
            protect_requests: 10_000,
            protect_connections: 32,
            seed: 0x5eed,
            progress: Duration::from_secs(2),
            limit: Duration::from_secs(4 * 60),
        }
    }

    fn from_args() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut config = if args.iter().any(|a| a == "--ci") {
            Self::ci()
        } else {
            Self::full()
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> Result<u64, String> {
                it.next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .ok_or_else(|| format!("{name} wants a number"))
            };
            match arg.as_str() {
                "--ci" => {}
                "--requests" => {
                    config.requests = value(arg)?;
                    config.warmup = (config.requests / 20).max(1_000);
                }
                "--connections" => {
                    config.connections = usize::try_from(value(arg)?).map_err(|e| e.to_string())?;
                }
                "--ids" => config.ids = value(arg)?,
                "--auth" => config.auth = value(arg)?,
                "--others" => config.others = value(arg)?,
                "--protect" => {
                    config.protect_requests = value(arg)?;
                    config.protect_warmup = (config.protect_requests / 10).max(1_000);
                }
                "--seed" => config.seed = value(arg)?,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if config.connections == 0 {
            return Err(String::from("--connections must be at least 1"));
        }
        Ok(config)
    }
}

/// A check's line in the summary.
struct Check {
    name: String,
    figure: String,
    pass: bool,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    tables: String,
}

impl Report {
    fn check(&mut self, name: impl Into<String>, figure: impl Into<String>, pass: bool) {
        self.checks.push(Check {
            name: name.into(),
            figure: figure.into(),
            pass,
        });
    }
}

fn main() {
    let config = match Config::from_args() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("reliability: {err}");
            std::process::exit(2);
        }
    };
    install_panic_hook();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(access::AccessCounter)
            .with(redis::SwitchCounter),
    )
    .expect("the only subscriber");

    let started = Instant::now();
    let mut report = Report::default();
    eprintln!("reliability ({}): {config:?}", config.mode);
    load_and_faults(&config, &mut report);
    protect::phase(&config, &mut report);
    redis::phase(&config, &mut report);
    request_ids(&config, &mut report);
    hostile_input(&config, &mut report);

    let failed = report.checks.iter().filter(|c| !c.pass).count();
    println!("{}", summary(&config, &report, started.elapsed()));
    if failed > 0 {
        eprintln!("reliability: {failed} check(s) failed");
        std::process::exit(1);
    }
}

/// Counts our deliberate panics instead of printing them; anything else goes to the usual
/// hook (and fails the run).
static DELIBERATE_PANICS: AtomicU64 = AtomicU64::new(0);
static OTHER_PANICS: AtomicU64 = AtomicU64::new(0);

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with(server::PANIC_TEXT) {
            DELIBERATE_PANICS.fetch_add(1, Relaxed);
        } else {
            OTHER_PANICS.fetch_add(1, Relaxed);
            previous(info);
        }
    }));
    // Chains to the hook above: records each panic's location for the panic log.
    middleware_std::catch_panic::install_panic_hook();
}

fn proc_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kb() -> u64 {
    proc_status("VmRSS:")
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Waits (bounded) until the server runtime's live tasks and the process's descriptors are
/// back to `tasks` and `fds` (or below), so that a slow teardown is not mistaken for a leak.
fn settle(server: &Handle, tasks: usize, fds_target: usize, bound: Duration) -> (usize, usize) {
    let until = Instant::now() + bound;
    loop {
        let now = (server.metrics().num_alive_tasks(), fds());
        if (now.0 <= tasks && now.1 <= fds_target) || Instant::now() >= until {
            return now;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn runtime(name: &str, workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

#[allow(clippy::too_many_lines)] // one phase, read top to bottom
fn load_and_faults(config: &Config, report: &mut Report) {
    let total = config.warmup + config.requests;
    access::init(total);
    // Two server workers: when one is busy (or preempted on a shared machine), the other
    // still turns the timer wheel, so a budget's 503 is not late because of the load client.
    let server_rt = runtime("rel-server", 2);
    let client_rt = runtime("rel-client", 1);
    let (addr, accept) = server_rt.block_on(server::start());
    eprintln!("server on {addr}");
    let settle_bound = mix::BUDGET + Duration::from_secs(3);

    // Warm-up: the same mix and concurrency, so buffers and allocator pools reach their size.
    let warm = Arc::new(ClientStats::default());
    client_rt.block_on(client::load(
        addr,
        config.connections,
        0..config.warmup,
        Instant::now() + config.limit,
        Arc::clone(&warm),
    ));
    let (tasks_base, fds_base) = settle(server_rt.handle(), 1, 0, settle_bound);
    let rss_base = rss_kb();
    eprintln!(
        "warm-up: {} requests, {} errors; baseline: {tasks_base} server tasks, {fds_base} fds, {rss_base} kB RSS",
        config.warmup,
        warm.errors()
    );

    // The load run, with a progress line every few seconds.
    let stats = Arc::new(ClientStats::default());
    let finished = Arc::new(AtomicBool::new(false));
    let reporter = {
        let stats = Arc::clone(&stats);
        let finished = Arc::clone(&finished);
        let every = config.progress;
        let n = config.requests;
        thread::spawn(move || {
            let start = Instant::now();
            let mut last = (start, 0u64);
            while !finished.load(Relaxed) {
                thread::park_timeout(every);
                if finished.load(Relaxed) {
                    break;
                }
                let done = stats.done.load(Relaxed);
                let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), done);
                eprintln!(
                    "[{:>5.0}s] {done}/{n} requests, {rate:.0} req/s, errors so far {} (transport {}, promise {}, hangs {}), RSS {} kB",
                    start.elapsed().as_secs_f64(),
                    stats.errors(),
                    stats.transport.load(Relaxed),
                    stats.promise.load(Relaxed),
                    stats.hangs.load(Relaxed),
                    rss_kb(),
                );
            }
        })
    };
    let load_start = Instant::now();
    client_rt.block_on(client::load(
        addr,
        config.connections,
        config.warmup..total,
        load_start + config.limit,
        Arc::clone(&stats),
    ));
    let load_time = load_start.elapsed();
    finished.store(true, Relaxed);
    reporter.thread().unpark();
    reporter.join().expect("progress reporter");
    let (tasks_after, fds_after) = settle(server_rt.handle(), tasks_base, fds_base, settle_bound);
    let rss_after = rss_kb();
    let done = stats.done.load(Relaxed);

    // ----- reconcile -------------------------------------------------------------------------
    let mut per_route = vec![[0u64; 9]; Route::ALL.len()];
    let mut causes = vec![[0u64; 6]; Route::ALL.len()];
    let (mut missing, mut doubled, mut wrong) = (0u64, 0u64, 0u64);
    let mut wrong_examples = Vec::new();
    let mut outcome_totals = [0u64; 9];
    for i in 0..total {
        let route = Route::of(i);
        let (events, outcome, cause, status) = access::fields(access::slot(i));
        match events {
            0 => missing += 1,
            1 => {
                per_route[route.index()][usize::try_from(outcome).unwrap_or(8).min(8)] += 1;
                causes[route.index()][usize::try_from(cause).unwrap_or(5).min(5)] += 1;
                outcome_totals[usize::try_from(outcome).unwrap_or(8).min(8)] += 1;
                if mix::outcome_name(outcome) != route.outcome().as_str() {
                    wrong += 1;
                    if wrong_examples.len() < 5 {
                        wrong_examples.push(format!(
                            "#{i} {}: outcome {} (status {status}, cause {})",
                            route.name(),
                            mix::outcome_name(outcome),
                            access::cause_name(cause)
                        ));
                    }
                }
            }
            _ => doubled += 1,
        }
    }
    let admitted = STATS.admitted.load(Relaxed);
    let events = access::EVENTS.load(Relaxed);
    let completed = outcome_totals[1];
    let failed = outcome_totals[2] + outcome_totals[3] + outcome_totals[4] + outcome_totals[7];
    let cancelled = outcome_totals[5] + outcome_totals[6];

    report.check(
        "requests sent (warm-up + load) within the time limit",
        format!(
            "{} + {done} of {} + {} in {:.1} s ({:.0} req/s, {} connections, {} (re)connects)",
            warm.done.load(Relaxed),
            config.warmup,
            config.requests,
            load_time.as_secs_f64(),
            done as f64 / load_time.as_secs_f64(),
            config.connections,
            warm.connections.load(Relaxed) + stats.connections.load(Relaxed),
        ),
        done == config.requests && warm.done.load(Relaxed) == config.warmup,
    );
    let all = [&warm, &stats];
    let sum = |f: fn(&ClientStats) -> u64| all.iter().map(|s| f(s)).sum::<u64>();
    report.check(
        "zero transport errors, zero hangs",
        format!(
            "transport {}, hangs {}",
            sum(|s| s.transport.load(Relaxed)),
            sum(|s| s.hangs.load(Relaxed))
        ),
        sum(|s| s.transport.load(Relaxed)) == 0 && sum(|s| s.hangs.load(Relaxed)) == 0,
    );
    report.check(
        "every status (and body) what its route promises",
        format!("{} broken promises", sum(|s| s.promise.load(Relaxed))),
        sum(|s| s.promise.load(Relaxed)) == 0,
    );
    for s in all {
        for e in s.examples.lock().expect("examples").iter() {
            eprintln!("  client failure: {e}");
        }
    }
    report.check(
        "exactly one access record per request",
        format!(
            "{events} records for {total} requests: {missing} without, {doubled} with several, {} unattributed",
            access::UNATTRIBUTED.load(Relaxed)
        ),
        missing == 0 && doubled == 0 && access::UNATTRIBUTED.load(Relaxed) == 0 && events == total,
    );
    report.check(
        "one terminal outcome per request, the one its route promises",
        format!("{wrong} unexpected outcomes"),
        wrong == 0,
    );
    for e in &wrong_examples {
        eprintln!("  unexpected outcome: {e}");
    }
    report.check(
        "admitted = completed + failed + cancelled",
        format!("{admitted} = {completed} + {failed} + {cancelled}"),
        admitted == completed + failed + cancelled && admitted == total,
    );
    let panics_sent: u64 = [Route::PanicHandler, Route::PanicPoll, Route::PanicBody]
        .iter()
        .map(|r| {
            all.iter()
                .map(|s| s.sent[r.index()].load(Relaxed))
                .sum::<u64>()
        })
        .sum();
    // Cause code 4 is `panicked` (see `access::cause_code`).
    let panicked_cause: u64 = [Route::PanicHandler, Route::PanicPoll, Route::PanicBody]
        .iter()
        .map(|r| causes[r.index()][4])
        .sum();
    report.check(
        "every panic caught and logged once, its request cancelled with cause \"panicked\"; no other panic",
        format!(
            "{panics_sent} panic requests, {} panics, {} panic log events, {panicked_cause} access records with cancel_cause=panicked, {} other panics",
            DELIBERATE_PANICS.load(Relaxed),
            access::PANIC_EVENTS.load(Relaxed),
            OTHER_PANICS.load(Relaxed)
        ),
        DELIBERATE_PANICS.load(Relaxed) == panics_sent
            && access::PANIC_EVENTS.load(Relaxed) == panics_sent
            && panicked_cause == panics_sent
            && OTHER_PANICS.load(Relaxed) == 0,
    );
    let slow_sent: u64 = all
        .iter()
        .map(|s| s.sent[Route::Slow.index()].load(Relaxed))
        .sum();
    report.check(
        "over budget: 503 within deadline + 50 ms; handler futures dropped after cancel(deadline)",
        format!(
            "{slow_sent} sent, {} started, {} dropped ({} with cause deadline), {} completed; latest drop {:.1} ms past the deadline ({} over 50 ms); at the client (queueing included) slowest 503 {:.1} ms after sending, {} over 100 ms",
            STATS.slow_started.load(Relaxed),
            STATS.slow_dropped.load(Relaxed),
            STATS.slow_dropped_deadline.load(Relaxed),
            STATS.slow_completed.load(Relaxed),
            STATS.slow_late_max_us.load(Relaxed) as f64 / 1000.0,
            STATS.slow_late_over.load(Relaxed),
            all.iter().map(|s| s.slow_max_us.load(Relaxed)).max().unwrap_or(0) as f64 / 1000.0,
            all.iter().map(|s| s.slow_late.load(Relaxed)).sum::<u64>(),
        ),
        STATS.slow_started.load(Relaxed) == slow_sent
            && STATS.slow_dropped.load(Relaxed) == slow_sent
            && STATS.slow_dropped_deadline.load(Relaxed) == slow_sent
            && STATS.slow_completed.load(Relaxed) == 0
            && STATS.slow_late_over.load(Relaxed) == 0,
    );
    let watched = |r: Route, c: usize| STATS.watched[r.index()][c].load(Relaxed);
    let aborted = |r: Route| {
        all.iter()
            .map(|s| s.sent[r.index()].load(Relaxed))
            .sum::<u64>()
    };
    report.check(
        "aborted clients: cancellation fires with cause \"dropped\" (cancelled() watchers)",
        format!(
            "before the response: {} of {} dropped; mid response body: {} of {} dropped; mid request body (the body's error cancels, then the handler answers 400): {} of {} dropped, {} logged with cause dropped; completed streams/uploads never cancelled: {} + {}",
            watched(Route::AbortPending, 2),
            aborted(Route::AbortPending),
            watched(Route::AbortStream, 2),
            aborted(Route::AbortStream),
            watched(Route::AbortUpload, 2),
            aborted(Route::AbortUpload),
            causes[Route::AbortUpload.index()][2],
            watched(Route::Stream, 1) + watched(Route::Stream, 2) + watched(Route::Stream, 3),
            watched(Route::Upload, 1) + watched(Route::Upload, 2) + watched(Route::Upload, 3),
        ),
        watched(Route::AbortPending, 2) == aborted(Route::AbortPending)
            && watched(Route::AbortStream, 2) == aborted(Route::AbortStream)
            && watched(Route::AbortUpload, 2) == aborted(Route::AbortUpload)
            && causes[Route::AbortUpload.index()][2] == aborted(Route::AbortUpload)
            && (1..4).all(|c| watched(Route::Stream, c) == 0 && watched(Route::Upload, c) == 0),
    );
    report.check(
        "secrets never logged; logged Authorization headers redacted",
        format!(
            "{} leaks; {} of {} logged Authorization headers redacted",
            access::SECRET_LEAKS.load(Relaxed),
            access::AUTH_REDACTED.load(Relaxed),
            access::AUTH_HEADERS.load(Relaxed)
        ),
        access::SECRET_LEAKS.load(Relaxed) == 0
            && access::AUTH_HEADERS.load(Relaxed) == access::AUTH_REDACTED.load(Relaxed)
            && access::AUTH_HEADERS.load(Relaxed) > 0,
    );
    let rss_growth = rss_after as f64 / rss_base.max(1) as f64 - 1.0;
    report.check(
        "RSS after the run within 10 % of RSS after warm-up",
        format!(
            "{rss_base} kB → {rss_after} kB ({:+.1} %)",
            rss_growth * 100.0
        ),
        rss_growth <= 0.10,
    );
    report.check(
        "live tokio tasks (server runtime) back to baseline",
        format!("{tasks_base} → {tasks_after}"),
        tasks_after <= tasks_base,
    );
    report.check(
        "file descriptors back to baseline",
        format!("{fds_base} → {fds_after}"),
        fds_after <= fds_base,
    );
    report.check(
        "the server (and the process) never died",
        String::from("accept loop still running"),
        !accept.is_finished(),
    );

    // ----- per-route table -------------------------------------------------------------------
    let t = &mut report.tables;
    let _ = writeln!(
        t,
        "\n### Per route (warm-up + load, {total} requests)\n\n| route | promise | sent | as promised | outcomes (access log) | cancel causes (log) | watchers: none / deadline / dropped |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for route in Route::ALL {
        let k = route.index();
        let outcomes: Vec<String> = (1..=OUTCOMES.len() + 1)
            .filter(|&o| per_route[k][o] > 0)
            .map(|o| format!("{} {}", mix::outcome_name(o as u64), per_route[k][o]))
            .collect();
        let cause_list: Vec<String> = (0..6)
            .filter(|&c| causes[k][c] > 0)
            .map(|c| format!("{} {}", access::cause_name(c as u64), causes[k][c]))
            .collect();
        let w = &STATS.watched[k];
        let watchers = if w.iter().all(|c| c.load(Relaxed) == 0) {
            String::from("–")
        } else {
            format!(
                "{} / {} / {}",
                w[0].load(Relaxed),
                w[1].load(Relaxed),
                w[2].load(Relaxed)
            )
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {watchers} |",
            route.name(),
            route.promise(),
            all.iter().map(|s| s.sent[k].load(Relaxed)).sum::<u64>(),
            all.iter().map(|s| s.kept[k].load(Relaxed)).sum::<u64>(),
            outcomes.join(", "),
            cause_list.join(", "),
        );
    }
    accept.abort();
    drop(client_rt);
    drop(server_rt);
}

/// Generates ids on `threads` threads with the default generator and checks: every id valid
/// and a UUID v7, strictly increasing within each thread, no duplicate across all of them.
fn request_ids(config: &Config, report: &mut Report) {
    let start = Instant::now();
    let per_thread = config.ids / config.id_threads as u64;
    let handles: Vec<_> = (0..config.id_threads)
        .map(|_| {
            thread::spawn(move || {
                let make = DefaultMakeRequestId;
                let mut out = Vec::with_capacity(usize::try_from(per_thread).unwrap_or(0));
                let (mut invalid, mut unordered) = (0u64, 0u64);
                let mut last = 0u128;
                for _ in 0..per_thread {
                    let id = make.make_request_id();
                    let text = id.as_str();
                    let bytes = text.as_bytes();
                    if !is_valid_request_id(bytes) || bytes.len() != 36 || bytes[14] != b'7' {
                        invalid += 1;
                    }
                    let hex: String = text.chars().filter(|&c| c != '-').collect();
                    let value = u128::from_str_radix(&hex, 16).unwrap_or(0);
                    if value <= last {
                        unordered += 1;
                    }
                    last = value;
                    out.push(value);
                }
                (out, invalid, unordered)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(usize::try_from(config.ids).unwrap_or(0));
    let (mut invalid, mut unordered) = (0, 0);
    for handle in handles {
        let (ids, i, u) = handle.join().expect("id thread");
        all.extend(ids);
        invalid += i;
        unordered += u;
    }
    let generated = start.elapsed();
    all.sort_unstable();
    let duplicates = all.windows(2).filter(|w| w[0] == w[1]).count();
    report.check(
        format!(
            "{} request ids from {} threads: unique, valid UUID v7",
            all.len(),
            config.id_threads
        ),
        format!(
            "{duplicates} duplicates, {invalid} invalid; {unordered} not above the previous id of their thread (a figure: the docs promise strict order); generated in {:.1} s, checked in {:.1} s",
            generated.as_secs_f64(),
            start.elapsed().as_secs_f64() - generated.as_secs_f64()
        ),
        duplicates == 0 && invalid == 0 && all.len() as u64 == per_thread * config.id_threads as u64,
    );
}

fn hostile_input(config: &Config, report: &mut Report) {
    let run = inputs::run(config.seed, config.auth, config.others);
    for (name, cases, took, note) in run.rows {
        let failure = run.failures.iter().find(|f| f.starts_with(name));
        report.check(
            format!("hostile input: {name}"),
            failure.map_or_else(
                || {
                    format!(
                        "{cases} generated cases in {:.1} s; {note}",
                        took.as_secs_f64()
                    )
                },
                Clone::clone,
            ),
            failure.is_none(),
        );
    }
}

fn summary(config: &Config, report: &Report, took: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Reliability run ({} mode, {:.0} s, seed {})\n\n| check | figures | result |\n| --- | --- | --- |",
        config.mode,
        took.as_secs_f64(),
        config.seed
    );
    for c in &report.checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            c.name,
            c.figure,
            if c.pass { "pass" } else { "**FAIL**" }
        );
    }
    out.push_str(&report.tables);
    out
}
