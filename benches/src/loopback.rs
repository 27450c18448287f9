//! What the end-to-end runs share (`e2e.rs` of the bench, the thread table of `scaling`): the
//! CPU time of the server's threads, and the keep-alive load client.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, runtime::Runtime};

/// A runtime of `workers` threads named `name`, for a server whose CPU time
/// [`threads_cpu_us`] reads.
pub(crate) fn server_runtime(workers: usize, name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("server runtime")
}

/// CPU time (user + system) of the threads named `thread` (a server runtime's workers), in
/// microseconds.
pub(crate) fn threads_cpu_us(thread: &str) -> f64 {
    let mut ticks = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != thread {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
            let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
            ticks += utime + stime;
        }
    }
    // Linux reports these in clock ticks of 1/100 s (USER_HZ).
    ticks as f64 * 10_000.0
}

/// A `GET` of `path` on the loopback server (`Host: 127.0.0.1`).
pub(crate) fn get(path: &str) -> http::request::Builder {
    Request::get(path).header(header::HOST, "127.0.0.1")
}

/// Sends `requests` requests made by `request` to `addr`, spread over `connections` HTTP/1.1
/// keep-alive connections, each answered `200` and read to its end. Returns the time taken
/// and every request's latency in microseconds.
pub(crate) async fn load(
    addr: SocketAddr,
    connections: usize,
    requests: u64,
    request: fn() -> Request<Empty<Bytes>>,
) -> (Duration, Vec<u32>) {
    let per_conn = requests / connections as u64;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(usize::try_from(per_conn).unwrap_or(0));
            for _ in 0..per_conn {
                let req = request();
                let sent = Instant::now();
                sender.ready().await.expect("connection ready");
                let res = sender.send_request(req).await.expect("response");
                assert_eq!(res.status(), 200);
                res.into_body().collect().await.expect("body");
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(usize::try_from(requests).unwrap_or(0));
    for task in tasks {
        all.extend(task.await.expect("load task"));
    }
    (start.elapsed(), all)
}
