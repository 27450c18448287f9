//! The scaling benchmark (issue 18): cost per request as the work grows, in three tables and
//! one chart.
//!
//! 1. **Context values**: a request writes `n` typed values into its context and the handler
//!    reads all `n` back (n = 1, 4, 16, 64), next to the same through `http::Extensions` (a
//!    hash map). Flat per value means lookups do not grow with the list.
//! 2. **Chain depth**: `d` around-style steps (d = 1, 5, 20) as one chain of ours (one
//!    `MiddlewareLayer`) against `d` hand-written tower layers doing the same (each appends a
//!    response header).
//! 3. **Threads**: end to end over 127.0.0.1, 64 keep-alive connections, the std stack served
//!    by 1 and 2 worker threads: server CPU per request (user + system of the server's threads)
//!    and requests per second. Per-request shared state that serialized threads would show as
//!    more CPU per request at 2 threads.
//!
//! `cargo run -p middleware-benches --release --bin scaling` (about a minute);
//! `--smoke` for a quick check that it runs; `--svg PATH` writes the chart.

// A benchmark reports to its user; its figures are ratios of counts far below 2^52.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss
)]

use std::{
    convert::Infallible,
    fmt::Write as _,
    future::Future,
    net::SocketAddr,
    pin::{Pin, pin},
    task::{Context as TaskContext, Poll, ready},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use middleware_std::{Middleware, MiddlewareLayer, Next, Outcome, RequestExt, stack::StackLayer};
use pin_project_lite::pin_project;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

#[path = "../loopback.rs"]
mod loopback;

use crate::loopback::{load, server_runtime, threads_cpu_us};

type Res = Response<Full<Bytes>>;

fn ok() -> Res {
    Response::new(Full::new(Bytes::from_static(b"ok")))
}

// ----- 1. context values ---------------------------------------------------------------------

/// A distinct value type per `N`.
#[derive(Clone, Copy)]
struct V<const N: usize>(u64);

macro_rules! value_ops {
    ($write:ident, $read:ident, $write_ext:ident, $read_ext:ident; $($n:literal)*) => {
        fn $write(cx: &mut middleware_std::Context) {
            $( cx.insert(V::<$n>($n)); )*
        }
        fn $read(cx: &middleware_std::Context) -> u64 {
            0 $( + cx.get::<V<$n>>().expect("written").0 )*
        }
        fn $write_ext(ext: &mut http::Extensions) {
            $( ext.insert(V::<$n>($n)); )*
        }
        fn $read_ext(ext: &http::Extensions) -> u64 {
            0 $( + ext.get::<V<$n>>().expect("written").0 )*
        }
    };
}

value_ops!(write_1, read_1, write_ext_1, read_ext_1; 0);
value_ops!(write_4, read_4, write_ext_4, read_ext_4; 0 1 2 3);
value_ops!(write_16, read_16, write_ext_16, read_ext_16; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
value_ops!(write_64, read_64, write_ext_64, read_ext_64; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);

type Ops = (
    fn(&mut middleware_std::Context),
    fn(&middleware_std::Context) -> u64,
);
type ExtOps = (fn(&mut http::Extensions), fn(&http::Extensions) -> u64);

/// A request's work, as a plain function.
type Work = fn() -> u64;

const VALUE_COUNTS: [(usize, Ops, ExtOps); 4] = [
    (1, (write_1, read_1), (write_ext_1, read_ext_1)),
    (4, (write_4, read_4), (write_ext_4, read_ext_4)),
    (16, (write_16, read_16), (write_ext_16, read_ext_16)),
    (64, (write_64, read_64), (write_ext_64, read_ext_64)),
];

/// One request: the context is created, `n` values written, then read back.
fn context_request((write, read): Ops) -> u64 {
    let mut req = Request::new(());
    write(req.context());
    let cx = req.try_context().expect("created");
    read(cx)
}

/// The same with typed values straight in the request's extensions.
fn extensions_request((write, read): ExtOps) -> u64 {
    let mut req = Request::new(());
    write(req.extensions_mut());
    read(req.extensions())
}

// ----- 2. chain depth ------------------------------------------------------------------------

/// One around-style step of ours: appends a response header.
#[derive(Clone, Copy)]
struct Hop;

impl Middleware for Hop {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let mut res = next.run(req).await?;
        res.headers_mut()
            .append("x-hop", HeaderValue::from_static("1"));
        Ok(res)
    }
}

/// The hand-written tower twin of [`Hop`].
#[derive(Clone, Copy)]
struct HopLayer;

#[derive(Clone)]
struct HopService<S>(S);

impl<S> Layer<S> for HopLayer {
    type Service = HopService<S>;
    fn layer(&self, inner: S) -> HopService<S> {
        HopService(inner)
    }
}

pin_project! {
    struct HopFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B, E> Future for HopFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut res = ready!(self.project().inner.poll(cx))?;
        res.headers_mut()
            .append("x-hop", HeaderValue::from_static("1"));
        Poll::Ready(Ok(res))
    }
}

impl<S, R, B> Service<Request<R>> for HopService<S>
where
    S: Service<Request<R>, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = HopFuture<S::Future>;
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, req: Request<R>) -> Self::Future {
        HopFuture {
            inner: self.0.call(req),
        }
    }
}

macro_rules! ours_chain {
    ($first:expr $(, $rest:expr)*) => { $first $(.then($rest))* };
}

macro_rules! hand_chain {
    ($($hop:expr),+) => { ServiceBuilder::new() $(.layer($hop))+ };
}

fn handler()
-> impl Service<Request<String>, Response = Res, Error = Infallible, Future: Send> + Clone + Send {
    service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(ok()) })
}

/// A boxed runner: sends `n` requests through one service and drains each body.
trait Runner {
    fn run(&mut self, rt: &Runtime, n: u64) -> Duration;
}

struct Svc<S>(S);

impl<S, B> Runner for Svc<S>
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    fn run(&mut self, rt: &Runtime, n: u64) -> Duration {
        let svc = &mut self.0;
        rt.block_on(async move {
            let start = Instant::now();
            for _ in 0..n {
                let res = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(Request::new(String::new()));
                let res = res.await.expect("call");
                let mut body = pin!(res.into_body());
                while let Some(frame) = body.as_mut().frame().await {
                    std::hint::black_box(frame.expect("frame"));
                }
            }
            start.elapsed()
        })
    }
}

struct Plain(fn() -> u64);

impl Runner for Plain {
    fn run(&mut self, _: &Runtime, n: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box((self.0)());
        }
        start.elapsed()
    }
}

fn depth_variants() -> Vec<(String, Box<dyn Runner>)> {
    let bare: Box<dyn Runner> = Box::new(Svc(handler()));
    let ours_1 = MiddlewareLayer::new(ours_chain!(Hop)).layer(handler());
    let ours_5 = MiddlewareLayer::new(ours_chain!(Hop, Hop, Hop, Hop, Hop)).layer(handler());
    let ours_20 = MiddlewareLayer::new(ours_chain!(
        Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop, Hop,
        Hop, Hop
    ))
    .layer(handler());
    let hand_1 = hand_chain!(HopLayer).service(handler());
    let hand_5 = hand_chain!(HopLayer, HopLayer, HopLayer, HopLayer, HopLayer).service(handler());
    let hand_20 = hand_chain!(
        HopLayer, HopLayer, HopLayer, HopLayer, HopLayer, HopLayer, HopLayer, HopLayer, HopLayer,
        HopLayer, HopLayer, HopLayer, HopLayer, HopLayer, HopLayer, HopLayer, HopLayer, HopLayer,
        HopLayer, HopLayer
    )
    .service(handler());
    vec![
        ("bare".into(), bare),
        ("ours-1".into(), Box::new(Svc(ours_1))),
        ("hand-1".into(), Box::new(Svc(hand_1))),
        ("ours-5".into(), Box::new(Svc(ours_5))),
        ("hand-5".into(), Box::new(Svc(hand_5))),
        ("ours-20".into(), Box::new(Svc(ours_20))),
        ("hand-20".into(), Box::new(Svc(hand_20))),
    ]
}

fn value_variants() -> Vec<(String, Box<dyn Runner>)> {
    let mut out: Vec<(String, Box<dyn Runner>)> = Vec::new();
    out.push((
        "empty".into(),
        Box::new(Plain(|| {
            let req = Request::new(());
            u64::from(req.extensions().is_empty())
        })),
    ));
    for (n, ..) in VALUE_COUNTS {
        // A `fn() -> u64` per count: no closure state, so each count is its own item.
        let (ours, ext): (Work, Work) = match n {
            1 => (
                || context_request(VALUE_COUNTS[0].1),
                || extensions_request(VALUE_COUNTS[0].2),
            ),
            4 => (
                || context_request(VALUE_COUNTS[1].1),
                || extensions_request(VALUE_COUNTS[1].2),
            ),
            16 => (
                || context_request(VALUE_COUNTS[2].1),
                || extensions_request(VALUE_COUNTS[2].2),
            ),
            _ => (
                || context_request(VALUE_COUNTS[3].1),
                || extensions_request(VALUE_COUNTS[3].2),
            ),
        };
        out.push((format!("context-{n}"), Box::new(Plain(ours))));
        out.push((format!("extensions-{n}"), Box::new(Plain(ext))));
    }
    out
}

/// Interleaved rounds: every variant runs `per_round` requests in each round; the median
/// nanoseconds per request of each.
fn measure(
    rt: &Runtime,
    variants: &mut [(String, Box<dyn Runner>)],
    rounds: usize,
    per_round: u64,
) -> Vec<(String, f64)> {
    for (_, runner) in variants.iter_mut() {
        runner.run(rt, per_round / 10 + 1);
    }
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (i, (_, runner)) in variants.iter_mut().enumerate() {
            let took = runner.run(rt, per_round);
            samples[i].push(took.as_nanos() as f64 / per_round as f64);
        }
    }
    variants
        .iter()
        .zip(samples)
        .map(|((name, _), mut s)| {
            s.sort_by(f64::total_cmp);
            (name.clone(), s[s.len() / 2])
        })
        .collect()
}

fn get(rows: &[(String, f64)], name: &str) -> f64 {
    rows.iter()
        .find(|(n, _)| n == name)
        .map_or(f64::NAN, |r| r.1)
}

// ----- 3. threads, end to end ----------------------------------------------------------------

const SERVER_THREAD: &str = "scaling-server";

fn serve<S, B>(rt: &Runtime, svc: S) -> (SocketAddr, tokio::sync::oneshot::Sender<()>)
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("address");
    rt.spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        }
    });
    (addr, stop)
}

/// The request of the thread table.
fn request() -> Request<Empty<Bytes>> {
    loopback::get("/scaling")
        .body(Empty::<Bytes>::new())
        .expect("request")
}

struct ThreadRow {
    threads: usize,
    variant: &'static str,
    cpu_us_per_request: f64,
    requests_per_second: f64,
}

fn e2e(threads: usize, rounds: usize, requests: u64) -> Vec<ThreadRow> {
    const CONNECTIONS: usize = 64;
    let server_rt = server_runtime(threads, SERVER_THREAD);
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let bare =
        service_fn(|_req: Request<hyper::body::Incoming>| async { Ok::<_, Infallible>(ok()) });
    let stack = StackLayer::new(Duration::from_secs(30)).layer(bare);
    let servers = [
        ("bare", serve(&server_rt, bare)),
        ("std-stack", serve(&server_rt, stack)),
    ];
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); servers.len()];
    for (_, (addr, _)) in &servers {
        client_rt.block_on(load(*addr, CONNECTIONS, requests / 10, request));
    }
    for _ in 0..rounds {
        for (i, (_, (addr, _))) in servers.iter().enumerate() {
            let cpu = threads_cpu_us(SERVER_THREAD);
            let start = Instant::now();
            client_rt.block_on(load(*addr, CONNECTIONS, requests, request));
            let took = start.elapsed();
            let cpu = threads_cpu_us(SERVER_THREAD) - cpu;
            samples[i].0.push(cpu / requests as f64);
            samples[i].1.push(requests as f64 / took.as_secs_f64());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rows = servers
        .iter()
        .zip(samples)
        .map(|((name, _), (cpu, rps))| ThreadRow {
            threads,
            variant: name,
            cpu_us_per_request: median(cpu),
            requests_per_second: median(rps),
        })
        .collect();
    for (_, (_, stop)) in servers {
        let _ = stop.send(());
    }
    server_rt.shutdown_timeout(Duration::from_secs(1));
    rows
}

// ----- report --------------------------------------------------------------------------------

struct Config {
    rounds: usize,
    per_round: u64,
    e2e_rounds: usize,
    e2e_requests: u64,
    svg: Option<String>,
}

fn parse_args() -> Result<Config, String> {
    let mut config = Config {
        rounds: 15,
        per_round: 20_000,
        e2e_rounds: 5,
        e2e_requests: 32_000,
        svg: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => {
                config.rounds = 3;
                config.per_round = 500;
                config.e2e_rounds = 1;
                config.e2e_requests = 640;
            }
            "--svg" => config.svg = Some(args.next().ok_or("--svg needs a path")?),
            "--help" | "-h" => {
                return Err("usage: scaling [--smoke] [--svg PATH]".to_owned());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(config)
}

/// One panel of the chart: a title, bars (label, first, second) and the two series' names.
type Panel = (
    &'static str,
    Vec<(String, f64, f64)>,
    (&'static str, &'static str),
);

/// A three-panel SVG: ns per value (ours, extensions) against n; ours/hand against depth;
/// server CPU per request against threads.
fn svg(values: &[(usize, f64, f64)], depth: &[(usize, f64, f64)], threads: &[ThreadRow]) -> String {
    let mut out = String::new();
    let (w, h, pad) = (260.0, 180.0, 40.0);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"#,
        3.0 * (w + pad) + pad,
        h + 2.0 * pad + 20.0
    );
    let panels: [Panel; 3] = [
        (
            "ns per value (write + read) vs values",
            values
                .iter()
                .map(|&(n, a, b)| (n.to_string(), a, b))
                .collect(),
            ("context", "extensions"),
        ),
        (
            "overhead ns over bare vs chain depth",
            depth
                .iter()
                .map(|&(d, a, b)| (d.to_string(), a, b))
                .collect(),
            ("ours", "hand-written"),
        ),
        (
            "server CPU µs/request vs threads",
            [1, 2]
                .iter()
                .map(|&t| {
                    let of = |v: &str| {
                        threads
                            .iter()
                            .find(|r| r.threads == t && r.variant == v)
                            .map_or(0.0, |r| r.cpu_us_per_request)
                    };
                    (t.to_string(), of("std-stack"), of("bare"))
                })
                .collect(),
            ("std stack", "bare"),
        ),
    ];
    for (p, (title, bars, (la, lb))) in panels.iter().enumerate() {
        let x0 = pad + p as f64 * (w + pad);
        let y0 = pad;
        let max = bars.iter().map(|b| b.1.max(b.2)).fold(1e-9, f64::max);
        let _ = writeln!(
            out,
            r#"<text x="{x0}" y="{}" font-weight="bold">{title}</text>"#,
            y0 - 12.0
        );
        let _ = writeln!(
            out,
            r#"<line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            y0 + h,
            x0 + w,
            y0 + h
        );
        let group = w / bars.len().max(1) as f64;
        for (i, (label, a, b)) in bars.iter().enumerate() {
            let gx = x0 + i as f64 * group + group * 0.15;
            let bw = group * 0.35;
            for (j, (v, color)) in [(a, "#3b6ea5"), (b, "#c7793a")].iter().enumerate() {
                let bh = (*v / max * (h - 14.0)).max(0.0);
                let x = gx + j as f64 * bw;
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9">{v:.1}</text>"#,
                    y0 + h - bh,
                    bw - 2.0,
                    x + bw / 2.0,
                    y0 + h - bh - 2.0
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
                gx + bw,
                y0 + h + 14.0
            );
        }
        let _ = writeln!(
            out,
            r##"<rect x="{x0}" y="{}" width="10" height="10" fill="#3b6ea5"/><text x="{}" y="{}">{la}</text><rect x="{}" y="{}" width="10" height="10" fill="#c7793a"/><text x="{}" y="{}">{lb}</text>"##,
            y0 + h + 24.0,
            x0 + 14.0,
            y0 + h + 33.0,
            x0 + 110.0,
            y0 + h + 24.0,
            x0 + 124.0,
            y0 + h + 33.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn main() {
    let config = match parse_args() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut values = value_variants();
    let rows = measure(&rt, &mut values, config.rounds, config.per_round);
    let empty = get(&rows, "empty");
    println!(
        "## Context values: write n, read n (median ns per request, {} rounds)\n",
        config.rounds
    );
    println!("| n | context ns | per value | extensions ns | per value |");
    println!("|---:|---:|---:|---:|---:|");
    let mut value_points = Vec::new();
    for (n, ..) in VALUE_COUNTS {
        let ours = get(&rows, &format!("context-{n}")) - empty;
        let ext = get(&rows, &format!("extensions-{n}")) - empty;
        let (per_ours, per_ext) = (ours / n as f64, ext / n as f64);
        println!("| {n} | {ours:.0} | {per_ours:.1} | {ext:.0} | {per_ext:.1} |");
        value_points.push((n, per_ours, per_ext));
    }

    let mut depth = depth_variants();
    let rows = measure(&rt, &mut depth, config.rounds, config.per_round);
    let bare = get(&rows, "bare");
    println!("\n## Chain depth (median ns per request over bare {bare:.0} ns)\n");
    println!("| depth | ours (one chain) | hand-written tower | ours / hand |");
    println!("|---:|---:|---:|---:|");
    let mut depth_points = Vec::new();
    for d in [1, 5, 20] {
        let ours = get(&rows, &format!("ours-{d}")) - bare;
        let hand = get(&rows, &format!("hand-{d}")) - bare;
        println!("| {d} | {ours:.0} | {hand:.0} | {:.2}× |", ours / hand);
        depth_points.push((d, ours, hand));
    }

    let mut threads = e2e(1, config.e2e_rounds, config.e2e_requests);
    threads.extend(e2e(2, config.e2e_rounds, config.e2e_requests));
    println!(
        "\n## Threads, end to end (64 connections, {} rounds × {} requests; medians)\n",
        config.e2e_rounds, config.e2e_requests
    );
    println!("| server threads | variant | server CPU µs/request | requests/s |");
    println!("|---:|---|---:|---:|");
    for row in &threads {
        println!(
            "| {} | {} | {:.1} | {:.0} |",
            row.threads, row.variant, row.cpu_us_per_request, row.requests_per_second
        );
    }
    if let Some(path) = config.svg {
        std::fs::write(&path, svg(&value_points, &depth_points, &threads))
            .expect("write the chart");
        println!("\nchart written to {path}");
    }
}
