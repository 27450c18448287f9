//! End to end: a hyper server on 127.0.0.1 (one worker thread) serves each variant to a bounded
//! Rust load client (another worker thread) over HTTP/1.1 keep-alive connections. Rounds are
//! interleaved; every loop is bounded by a request count.

use std::{convert::Infallible, fmt::Write as _, net::SocketAddr};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use middleware_std::BoxError;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use crate::{
    Config,
    loopback::{self, load, threads_cpu_us},
};

const SERVER_THREAD: &str = "bench-server";

#[derive(Clone, Debug)]
pub struct E2eRow {
    pub name: &'static str,
    /// Per round: (requests/s, p99 µs, server CPU µs per request).
    pub rounds: Vec<(f64, f64, f64)>,
}

impl E2eRow {
    fn median(&self, pick: impl Fn(&(f64, f64, f64)) -> f64) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

type Serve = Box<dyn Fn(&tokio::runtime::Runtime) -> (SocketAddr, tokio::task::JoinHandle<()>)>;

fn server<S, B>(svc: S) -> Serve
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Box::new(move |rt| {
        let svc = svc.clone();
        let listener = rt
            .block_on(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let svc = svc.clone();
                tokio::spawn(async move {
                    let hyper_svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        svc.clone().oneshot(req.map(Body::new))
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), hyper_svc)
                        .await;
                });
            }
        });
        (addr, handle)
    })
}

fn servers() -> Vec<(&'static str, Serve)> {
    vec![
        ("bare", server(crate::inner())),
        ("hand-written", server(crate::hand_written())),
        ("tower-http", server(crate::tower_http())),
        ("tower-http-digest", server(crate::tower_http_digest())),
        ("tower-http-stack", server(crate::tower_http_stack())),
        (
            "tower-http-stack-digest",
            server(crate::tower_http_stack_digest()),
        ),
        ("axum-from-fn", server(crate::axum_from_fn())),
        ("ours-chain-5", server(crate::ours_chain())),
        ("ours-std-5", server(crate::ours_std_five())),
        ("ours-std-stack", server(crate::ours_std_stack())),
    ]
}

/// The benchmark request, as an authenticated client sends it.
fn request() -> Request<Empty<Bytes>> {
    loopback::get("/bench")
        .header(header::AUTHORIZATION, "Bearer secret-token")
        .body(Empty::<Bytes>::new())
        .expect("request")
}

pub fn run(config: &Config) -> Vec<E2eRow> {
    let server_rt = loopback::server_runtime(1, SERVER_THREAD);
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let servers = servers();
    let mut rows: Vec<E2eRow> = servers
        .iter()
        .map(|(name, _)| E2eRow {
            name,
            rounds: Vec::new(),
        })
        .collect();
    for round in 0..config.e2e_rounds {
        for (i, (name, serve)) in servers.iter().enumerate() {
            let (addr, handle) = serve(&server_rt);
            // Warm-up: connections, allocator, caches.
            client_rt.block_on(load(
                addr,
                config.e2e_connections,
                config.e2e_requests / 10 + 1,
                request,
            ));
            let cpu_before = threads_cpu_us(SERVER_THREAD);
            let (elapsed, mut latencies) = client_rt.block_on(load(
                addr,
                config.e2e_connections,
                config.e2e_requests,
                request,
            ));
            let cpu = threads_cpu_us(SERVER_THREAD) - cpu_before;
            handle.abort();
            latencies.sort_unstable();
            let n = latencies.len();
            let p99 = f64::from(latencies[(n * 99 / 100).min(n - 1)]);
            let rps = n as f64 / elapsed.as_secs_f64();
            rows[i].rounds.push((rps, p99, cpu / n as f64));
            eprintln!(
                "e2e round {}/{} {name}: {rps:.0} req/s, p99 {p99} µs",
                round + 1,
                config.e2e_rounds
            );
        }
    }
    rows
}

pub fn table(rows: &[E2eRow], config: &Config) -> String {
    let bare_rps = rows[0].median(|r| r.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## End to end ({} rounds × {} requests, {} keep-alive connections, HTTP/1.1, 127.0.0.1)\n",
        config.e2e_rounds, config.e2e_requests, config.e2e_connections
    );
    out.push_str("| variant | req/s median (min–max) | × bare | p99 µs median | server CPU µs/req median |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    for r in rows {
        let rps: Vec<f64> = r.rounds.iter().map(|x| x.0).collect();
        let min = rps.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rps.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "| {} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.0} | {:.1} |",
            r.name,
            r.median(|x| x.0),
            min,
            max,
            r.median(|x| x.0) / bare_rps,
            r.median(|x| x.1),
            r.median(|x| x.2),
        );
    }
    out
}
