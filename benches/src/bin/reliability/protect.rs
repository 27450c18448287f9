//! The protection phase (issue 14): the full stack with a concurrency limit (load shedding), a
//! keyed rate limit and a request body limit on, overloaded by more connections than it has
//! places, and reconciled request by request.
//!
//! The server is [`StackLayer`] with [`ConcurrencyLimitLayer::new`]`(`[`PERMITS`]`)`,
//! a [`RateLimitLayer`] keyed by `x-api-key` ([`HOT_QUOTA`] a day per key) and a
//! [`RequestBodyLimitLayer`] of [`BODY_LIMIT`] bytes, around a handler that reads the body and
//! holds its place for [`HOLD`]. The client speaks raw HTTP/1.1 (so it decides exactly what goes
//! on the wire) over `connections` keep-alive connections; request number `i` is one of:
//!
//! - **tenant** (80 %): a 64-byte body under the key `t-<i / 32>` (at most 32 requests a key,
//!   half the quota: never throttled): `200`, or `503` when shed;
//! - **hot** (10 %): the same under one shared key: `200` for exactly the first
//!   [`HOT_QUOTA`] that reach the rate limit, `429` after, or `503` when shed first;
//! - **big, declared** (5 %): `Content-Length: 1000000` with `Expect: 100-continue` and no body
//!   sent: `413` before the handler (or `503` when shed first);
//! - **big, chunked** (5 %): a chunked body of 1536 bytes (no declared length): cut while
//!   streaming, `413` (or `503`).
//!
//! Every request must get exactly one of 200 / 413 / 429 / 503 with its own `x-request-id`
//! and one access record with the same status; the counts must match the limits; afterwards
//! no place is held (`in_flight` and `waiting` back to 0), and memory, tasks and descriptors
//! are back to their baseline.

use std::{
    convert::Infallible,
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use axum::body::Body;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use middleware_std::{
    body_limit::{LimitedBody, RequestBodyLimitLayer},
    limit::ConcurrencyLimitLayer,
    logging::LogLayer,
    rate_limit::{MemoryStore, Policy, RateLimitLayer},
    stack::StackLayer,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tower::{Layer, ServiceExt, service_fn};

use super::{access, mix};
use crate::{Config, Report, fds, rss_kb, runtime, settle};

/// Places in the concurrency limit (load shedding: no queue).
pub const PERMITS: usize = 8;
/// Requests a key may make in [`WINDOW`] (the whole quota is the burst; the phase is far
/// shorter than the 22.5 minutes a spent key waits for its next request, so the count is
/// exact).
pub const HOT_QUOTA: u32 = 64;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The request body limit, in bytes.
pub const BODY_LIMIT: u64 = 1024;
/// How long an admitted request holds its place in the handler.
pub const HOLD: Duration = Duration::from_millis(2);
/// Consecutive request numbers that share a tenant key (half of [`HOT_QUOTA`]).
const TENANT_SPAN: u64 = 32;
/// The body of tenant and hot requests.
const SMALL: usize = 64;
/// A chunked body of this many 512-byte chunks (over [`BODY_LIMIT`]).
const BIG_CHUNKS: usize = 3;
/// The longest one exchange may take before it counts as a hang.
const BOUND: Duration = Duration::from_secs(10);

/// What request number `i` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tenant,
    Hot,
    BigDeclared,
    BigChunked,
}

impl Kind {
    const ALL: [Self; 4] = [Self::Tenant, Self::Hot, Self::BigDeclared, Self::BigChunked];

    /// A fixed hash of `i` (reproducible runs): 80 / 10 / 5 / 5 %.
    fn of(i: u64) -> Self {
        let mut z = i.wrapping_add(0x2545_f491_4f6c_dd1d);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        match (z ^ (z >> 31)) % 100 {
            0..10 => Self::Hot,
            10..15 => Self::BigDeclared,
            15..20 => Self::BigChunked,
            _ => Self::Tenant,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Tenant => "tenant key (64 B)",
            Self::Hot => "hot key (64 B)",
            Self::BigDeclared => "Content-Length 1000000 + Expect: 100-continue",
            Self::BigChunked => "chunked 1536 B",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }

    /// Whether the client hangs up after this request (the server does not read an
    /// oversized body to its end, so the connection cannot carry another request).
    const fn closes(self) -> bool {
        matches!(self, Self::BigDeclared | Self::BigChunked)
    }
}

/// The statuses a request may get, in the columns of the counters.
const STATUSES: [u16; 4] = [200, 413, 429, 503];

fn column(status: u16) -> usize {
    STATUSES.iter().position(|&s| s == status).unwrap_or(4)
}

/// What the client saw.
#[derive(Debug, Default)]
struct ClientStats {
    /// Per kind, per status column (the fifth: any other status).
    got: [[AtomicU64; 5]; 4],
    sent: AtomicU64,
    transport: AtomicU64,
    hangs: AtomicU64,
    /// Responses without their own `x-request-id`, and `503`/`429` without `Retry-After`.
    wrong_id: AtomicU64,
    no_retry_after: AtomicU64,
    examples: Mutex<Vec<String>>,
}

impl ClientStats {
    fn got(&self, kind: Kind, status: u16) -> u64 {
        self.got[kind.index()][column(status)].load(Relaxed)
    }

    fn status_total(&self, status: u16) -> u64 {
        Kind::ALL.iter().map(|&k| self.got(k, status)).sum()
    }

    fn example(&self, text: String) {
        let mut examples = self.examples.lock().expect("examples lock");
        if examples.len() < 10 {
            examples.push(text);
        }
    }
}

/// What only the server sees: handler calls, places taken in the handler now and at most.
static CALLS: AtomicU64 = AtomicU64::new(0);
static INSIDE: AtomicU64 = AtomicU64::new(0);
static INSIDE_MAX: AtomicU64 = AtomicU64::new(0);

/// Leaves the handler's gauge when dropped (a handler future dropped early leaves too).
struct Inside;

impl Inside {
    fn enter() -> Self {
        CALLS.fetch_add(1, Relaxed);
        let now = INSIDE.fetch_add(1, Relaxed) + 1;
        INSIDE_MAX.fetch_max(now, Relaxed);
        Self
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, Relaxed);
    }
}

async fn handler(req: Request<LimitedBody<Incoming>>) -> Result<Response<Body>, Infallible> {
    let _inside = Inside::enter();
    let read = req.into_body().collect().await;
    tokio::time::sleep(HOLD).await;
    // Over the limit, the layer answers `413` whatever the handler says.
    if read.is_ok() {
        return Ok(Response::new(Body::from("ok")));
    }
    let mut res = Response::new(Body::from("bad body"));
    *res.status_mut() = StatusCode::BAD_REQUEST;
    Ok(res)
}

struct Server {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    limit: ConcurrencyLimitLayer,
    rate: RateLimitLayer<middleware_std::rate_limit::HeaderKey, MemoryStore>,
}

async fn start() -> Server {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let limit = ConcurrencyLimitLayer::new(PERMITS);
    let rate = RateLimitLayer::with_store(MemoryStore::new(Policy::new(HOT_QUOTA, WINDOW)))
        .per_header(HeaderName::from_static("x-api-key"));
    let app = StackLayer::new(mix::BUDGET)
        .log(LogLayer::new())
        .concurrency_limit(limit.clone())
        .rate_limit(rate.clone())
        .body_limit(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(service_fn(handler));
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let res = app.clone().oneshot(req);
                    async move {
                        let Ok(res) = res.await;
                        Ok::<_, Infallible>(res.map(Body::new))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server {
        addr,
        accept,
        limit,
        rate,
    }
}

/// The bytes of request `i`; `hot` is the shared key of this stage.
fn request(i: u64, kind: Kind, hot: &str) -> Vec<u8> {
    let mut out = format!("POST /work HTTP/1.1\r\nhost: 127.0.0.1\r\nx-request-id: prot-{i}\r\n");
    match kind {
        Kind::Tenant | Kind::Hot => {
            let key = if kind == Kind::Hot {
                hot.to_owned()
            } else {
                format!("t-{}", i / TENANT_SPAN)
            };
            let _ = write!(out, "x-api-key: {key}\r\ncontent-length: {SMALL}\r\n\r\n");
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&[b'a'; SMALL]);
            bytes
        }
        Kind::BigDeclared => {
            let _ = write!(
                out,
                "x-api-key: t-{}\r\ncontent-length: 1000000\r\nexpect: 100-continue\r\n\r\n",
                i / TENANT_SPAN
            );
            out.into_bytes()
        }
        Kind::BigChunked => {
            let _ = write!(
                out,
                "x-api-key: t-{}\r\ntransfer-encoding: chunked\r\n\r\n",
                i / TENANT_SPAN
            );
            for _ in 0..BIG_CHUNKS {
                out.push_str("200\r\n");
                out.push_str(&"b".repeat(0x200));
                out.push_str("\r\n");
            }
            out.push_str("0\r\n\r\n");
            out.into_bytes()
        }
    }
}

/// A response as the client read it.
struct Answer {
    status: u16,
    request_id: Option<String>,
    retry_after: bool,
    close: bool,
}

/// Reads one response (skipping `100 Continue`, which the server must never send here:
/// counted as a wrong status) from `conn`, whose unread bytes are in `buf`.
async fn read_answer(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Answer, String> {
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        fill(conn, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut answer = Answer {
        status,
        request_id: None,
        retry_after: false,
        close: false,
    };
    let (mut length, mut chunked) = (None, false);
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => answer.close = value.eq_ignore_ascii_case("close"),
            "x-request-id" => answer.request_id = Some(value.to_owned()),
            "retry-after" => answer.retry_after = true,
            _ => {}
        }
    }
    if chunked {
        loop {
            let line = read_line(conn, buf).await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(conn, buf).await?.is_empty() {}
                break;
            }
            while buf.len() < size + 2 {
                fill(conn, buf).await?;
            }
            buf.drain(..size + 2);
        }
    } else if let Some(length) = length {
        while buf.len() < length {
            fill(conn, buf).await?;
        }
        buf.drain(..length);
    } else if answer.close {
        // Delimited by the end of the connection.
        while fill(conn, buf).await.is_ok() {}
        buf.clear();
    }
    Ok(answer)
}

async fn read_line(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    loop {
        if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..at]).into_owned();
            buf.drain(..at + 2);
            return Ok(line);
        }
        fill(conn, buf).await?;
    }
}

async fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    match conn.read(&mut chunk).await {
        Ok(0) => Err(String::from("connection closed before the whole response")),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Client-side status of each request (0: none seen), for the access-log comparison.
static CLIENT_STATUS: std::sync::OnceLock<Vec<AtomicU16>> = std::sync::OnceLock::new();

async fn one(
    addr: SocketAddr,
    i: u64,
    kind: Kind,
    hot: &str,
    conn: &mut Option<(TcpStream, Vec<u8>)>,
    stats: &ClientStats,
) -> Result<(), String> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        *conn = Some((stream, Vec::new()));
    }
    let (stream, buf) = conn.as_mut().expect("connected above");
    stream
        .write_all(&request(i, kind, hot))
        .await
        .map_err(|e| format!("write: {e}"))?;
    let answer = read_answer(stream, buf).await?;
    if answer.close || kind.closes() {
        *conn = None;
    }
    if let Some(slot) = CLIENT_STATUS
        .get()
        .and_then(|s| s.get(usize::try_from(i).ok()?))
    {
        slot.store(answer.status, Relaxed);
    }
    stats.got[kind.index()][column(answer.status)].fetch_add(1, Relaxed);
    if column(answer.status) == 4 {
        stats.example(format!("#{i} {}: status {}", kind.name(), answer.status));
    }
    if answer.request_id.as_deref() != Some(format!("prot-{i}").as_str()) {
        stats.wrong_id.fetch_add(1, Relaxed);
        stats.example(format!(
            "#{i} {}: x-request-id {:?}",
            kind.name(),
            answer.request_id
        ));
    }
    if matches!(answer.status, 429 | 503) && !answer.retry_after {
        stats.no_retry_after.fetch_add(1, Relaxed);
    }
    Ok(())
}

/// Sends requests `range` over `connections` raw keep-alive connections.
async fn load(
    addr: SocketAddr,
    connections: usize,
    range: std::ops::Range<u64>,
    hot: &'static str,
    stats: Arc<ClientStats>,
) {
    let next = Arc::new(AtomicU64::new(range.start));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let next = Arc::clone(&next);
            let stats = Arc::clone(&stats);
            let end = range.end;
            tokio::spawn(async move {
                let mut conn = None;
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= end {
                        break;
                    }
                    let kind = Kind::of(i);
                    stats.sent.fetch_add(1, Relaxed);
                    match tokio::time::timeout(BOUND, one(addr, i, kind, hot, &mut conn, &stats))
                        .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            stats.transport.fetch_add(1, Relaxed);
                            stats.example(format!("#{i} {}: transport: {e}", kind.name()));
                            conn = None;
                        }
                        Err(_) => {
                            stats.hangs.fetch_add(1, Relaxed);
                            stats.example(format!("#{i} {}: no answer in {BOUND:?}", kind.name()));
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("protection load worker");
    }
}

/// Runs the phase and adds its checks to `report`.
#[allow(clippy::too_many_lines)] // one phase, read top to bottom
pub fn phase(config: &Config, report: &mut Report) {
    let (warmup, requests, connections) = (
        config.protect_warmup,
        config.protect_requests,
        config.protect_connections,
    );
    let total = warmup + requests;
    let phase_start = Instant::now();
    eprintln!("protection: {warmup} warm-up + {requests} requests over {connections} connections");
    access::init_protect(total);
    CLIENT_STATUS
        .set((0..total).map(|_| AtomicU16::new(0)).collect())
        .expect("init once");
    let server_rt = runtime("prot-server", 2);
    let client_rt = runtime("prot-client", 1);
    // Descriptors before the server: with its listener, the floor the warm-up settles to.
    let fds_floor = fds() + 1;
    let server = server_rt.block_on(start());
    let settle_bound = mix::BUDGET + Duration::from_secs(3);

    // Warm-up under its own hot key, so the load's hot key starts with a whole quota.
    let warm = Arc::new(ClientStats::default());
    client_rt.block_on(load(
        server.addr,
        connections,
        0..warmup,
        "hot-warm-up",
        Arc::clone(&warm),
    ));
    let (tasks_base, fds_base) = settle(server_rt.handle(), 1, fds_floor, settle_bound);
    let rss_base = rss_kb();

    let stats = Arc::new(ClientStats::default());
    let start = Instant::now();
    client_rt.block_on(load(
        server.addr,
        connections,
        warmup..total,
        "hot-load",
        Arc::clone(&stats),
    ));
    let took = start.elapsed();
    let (tasks_after, fds_after) = settle(server_rt.handle(), tasks_base, fds_base, settle_bound);
    // The last bodies end on the server a moment after the client read them.
    let until = Instant::now() + settle_bound;
    while (server.limit.in_flight() > 0 || INSIDE.load(Relaxed) > 0) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (in_flight, waiting, inside) = (
        server.limit.in_flight(),
        server.limit.waiting(),
        INSIDE.load(Relaxed),
    );
    let rss_after = rss_kb();
    eprintln!(
        "protection: load in {:.1} s, phase in {:.1} s",
        took.as_secs_f64(),
        phase_start.elapsed().as_secs_f64()
    );
    for s in [&warm, &stats] {
        for e in s.examples.lock().expect("examples").iter() {
            eprintln!("  protection: {e}");
        }
    }

    // ----- reconcile -------------------------------------------------------------------------
    let all = [&warm, &stats];
    let sum = |f: &dyn Fn(&ClientStats) -> u64| all.iter().map(|s| f(s)).sum::<u64>();
    let answered: u64 = sum(&|s| STATUSES.iter().map(|&st| s.status_total(st)).sum());
    let other: u64 = sum(&|s| {
        Kind::ALL
            .iter()
            .map(|&k| s.got[k.index()][4].load(Relaxed))
            .sum()
    });
    let (transport, hangs) = (
        sum(&|s| s.transport.load(Relaxed)),
        sum(&|s| s.hangs.load(Relaxed)),
    );
    let (wrong_id, no_retry) = (
        sum(&|s| s.wrong_id.load(Relaxed)),
        sum(&|s| s.no_retry_after.load(Relaxed)),
    );
    let [ok, too_large, throttled, shed] =
        STATUSES.map(|st| sum(&|s: &ClientStats| s.status_total(st)));
    report.check(
        "protection: every request got exactly one of 200 / 413 / 429 / 503, with its own x-request-id (and Retry-After on 429 / 503)",
        format!(
            "{answered} of {total} answered ({warmup} warm-up + {requests} load over {connections} connections in {:.1} s): 200 {ok}, 413 {too_large}, 429 {throttled}, 503 {shed}; other {other}, transport {transport}, hangs {hangs}, wrong id {wrong_id}, no Retry-After {no_retry}",
            took.as_secs_f64()
        ),
        answered == total
            && other == 0
            && transport == 0
            && hangs == 0
            && wrong_id == 0
            && no_retry == 0,
    );

    let (mut missing, mut doubled, mut mismatched) = (0u64, 0u64, 0u64);
    let statuses = CLIENT_STATUS.get().expect("initialised above");
    for i in 0..total {
        let (events, _, _, status) = access::fields(access::protect_slot(i));
        match events {
            0 => missing += 1,
            1 => {
                let client = statuses[usize::try_from(i).expect("fits")].load(Relaxed);
                if u64::from(client) != status {
                    mismatched += 1;
                }
            }
            _ => doubled += 1,
        }
    }
    report.check(
        "protection: one access record per request, with the status the client got",
        format!("{missing} without, {doubled} with several, {mismatched} with another status"),
        missing == 0 && doubled == 0 && mismatched == 0,
    );

    // The statuses each kind may get, in both stages.
    let got = |k: Kind, st: u16| sum(&|s: &ClientStats| s.got(k, st));
    let misplaced = got(Kind::Tenant, 413)
        + got(Kind::Tenant, 429)
        + got(Kind::Hot, 413)
        + got(Kind::BigDeclared, 200)
        + got(Kind::BigDeclared, 429)
        + got(Kind::BigChunked, 200)
        + got(Kind::BigChunked, 429);
    let calls = CALLS.load(Relaxed);
    let expected_calls = ok + got(Kind::BigChunked, 413);
    report.check(
        "protection: 413 only for oversized bodies (a declared one never reaches the handler), 429 only for the hot key",
        format!(
            "{misplaced} misplaced statuses; 413: {} declared + {} chunked; handler calls {calls} = 200s {ok} + chunked 413s {}",
            got(Kind::BigDeclared, 413),
            got(Kind::BigChunked, 413),
            got(Kind::BigChunked, 413)
        ),
        misplaced == 0 && calls == expected_calls,
    );

    let hot_ok = stats.got(Kind::Hot, 200);
    let hot_reached = hot_ok + stats.got(Kind::Hot, 429);
    let hot_expected = hot_reached.min(u64::from(HOT_QUOTA));
    report.check(
        format!("protection: the hot key gets exactly its quota ({HOT_QUOTA} a day) of the requests that reach the rate limit"),
        format!(
            "load stage: {hot_reached} of {} hot requests reached the rate limit (the rest shed): {hot_ok} allowed, {} throttled; {} keys tracked",
            hot_reached + stats.got(Kind::Hot, 503),
            stats.got(Kind::Hot, 429),
            server.rate.store().len()
        ),
        hot_ok == hot_expected,
    );

    let inside_max = INSIDE_MAX.load(Relaxed);
    report.check(
        format!(
            "protection: at most {PERMITS} requests inside at once; the overload is shed with 503"
        ),
        format!(
            "most inside the handler at once {inside_max}; 503 for {shed} of {total} ({:.1} %)",
            shed as f64 * 100.0 / total.max(1) as f64
        ),
        inside_max <= PERMITS as u64 && inside_max > 0 && shed > 0,
    );
    report.check(
        "protection: no place leaked (in flight and waiting back to 0)",
        format!("in flight {in_flight}, waiting {waiting}, inside the handler {inside}"),
        in_flight == 0 && waiting == 0 && inside == 0,
    );
    let rss_growth = rss_after as f64 / rss_base.max(1) as f64 - 1.0;
    report.check(
        "protection: RSS, live tasks and descriptors back to baseline (RSS within 10 %)",
        format!(
            "RSS {rss_base} kB → {rss_after} kB ({:+.1} %); tasks {tasks_base} → {tasks_after}; fds {fds_base} → {fds_after}",
            rss_growth * 100.0
        ),
        rss_growth <= 0.10 && tasks_after <= tasks_base && fds_after <= fds_base,
    );
    report.check(
        "protection: the server never died",
        String::from("accept loop still running"),
        !server.accept.is_finished(),
    );

    // ----- per-kind table --------------------------------------------------------------------
    let t = &mut report.tables;
    let _ = writeln!(
        t,
        "\n### Protection phase ({total} requests, {PERMITS} places, {HOT_QUOTA} a day per key, {BODY_LIMIT}-byte bodies)\n\n| request | answered | 200 | 413 | 429 | 503 |\n| --- | --- | --- | --- | --- | --- |"
    );
    for kind in Kind::ALL {
        let counts = STATUSES.map(|st| got(kind, st));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            kind.name(),
            counts.iter().sum::<u64>(),
            counts[0],
            counts[1],
            counts[2],
            counts[3]
        );
    }
    server.accept.abort();
    drop(client_rt);
    drop(server_rt);
}
