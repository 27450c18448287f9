//! The load client: `connections` workers, each with one HTTP/1.1 keep-alive connection
//! (hyper's client), taking request numbers from a shared counter until the range or the time
//! limit is exhausted. Misbehaving clients (hang-ups, slow-loris bodies) use their own raw TCP
//! connections. Every wait is bounded by [`BOUND`].

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

use super::{
    hostile::TOKEN,
    mix::{self, Route},
};

/// The longest any single request may take before it counts as a hang.
pub const BOUND: Duration = Duration::from_secs(10);

/// What went wrong with one request.
#[derive(Debug)]
enum Failure {
    /// Connect, handshake, send or receive failed where the route promises a clean exchange.
    Transport(String),
    /// The answer was not what the route promises.
    Promise(String),
}

/// Client-side counters, shared by the workers and the progress reporter.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub done: AtomicU64,
    pub transport: AtomicU64,
    pub promise: AtomicU64,
    pub hangs: AtomicU64,
    /// Per route: requests sent, and requests answered as promised.
    pub sent: [AtomicU64; Route::ALL.len()],
    pub kept: [AtomicU64; Route::ALL.len()],
    /// `/slow`: worst time from sending to the `503`, in µs.
    pub slow_max_us: AtomicU64,
    /// `/slow` answers seen later than budget + grace after sending.
    pub slow_late: AtomicU64,
    pub connections: AtomicU64,
    pub examples: Mutex<Vec<String>>,
}

impl ClientStats {
    pub fn errors(&self) -> u64 {
        self.transport.load(Relaxed) + self.promise.load(Relaxed) + self.hangs.load(Relaxed)
    }

    fn example(&self, text: String) {
        let mut examples = self.examples.lock().expect("examples lock");
        if examples.len() < 20 {
            examples.push(text);
        }
    }
}

/// One worker's connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Hang up at once (the socket is owned by the connection task).
        self.task.abort();
    }
}

async fn connect(addr: SocketAddr, stats: &ClientStats) -> Result<Conn, Failure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::Transport(format!("connect: {e}")))?;
    stream
        .set_nodelay(true)
        .map_err(|e| Failure::Transport(format!("nodelay: {e}")))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Transport(format!("handshake: {e}")))?;
    stats.connections.fetch_add(1, Relaxed);
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn { sender, task })
}

/// Runs requests `range` over `connections` workers; stops taking new ones at `until`.
pub async fn load(
    addr: SocketAddr,
    connections: usize,
    range: std::ops::Range<u64>,
    until: Instant,
    stats: Arc<ClientStats>,
) {
    let next = Arc::new(AtomicU64::new(range.start));
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let next = Arc::clone(&next);
        let stats = Arc::clone(&stats);
        let end = range.end;
        workers.push(tokio::spawn(async move {
            let mut conn: Option<Conn> = None;
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= end || Instant::now() >= until {
                    break;
                }
                let route = Route::of(i);
                stats.sent[route.index()].fetch_add(1, Relaxed);
                match tokio::time::timeout(BOUND, one(addr, i, route, &mut conn, &stats)).await {
                    Ok(Ok(())) => {
                        stats.kept[route.index()].fetch_add(1, Relaxed);
                    }
                    Ok(Err(Failure::Transport(e))) => {
                        stats.transport.fetch_add(1, Relaxed);
                        stats.example(format!("#{i} {}: transport: {e}", route.name()));
                        conn = None;
                    }
                    Ok(Err(Failure::Promise(e))) => {
                        stats.promise.fetch_add(1, Relaxed);
                        stats.example(format!("#{i} {}: {e}", route.name()));
                        conn = None;
                    }
                    Err(_) => {
                        stats.hangs.fetch_add(1, Relaxed);
                        stats.example(format!("#{i} {}: no answer within {BOUND:?}", route.name()));
                        conn = None;
                    }
                }
                if route.closes() {
                    conn = None;
                }
                stats.done.fetch_add(1, Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await.expect("load worker");
    }
}

fn request(i: u64, route: Route) -> Request<Full<Bytes>> {
    let (method, path) = match route {
        Route::Ok => ("GET", "/ok"),
        Route::PrivateOk | Route::PrivateBad => ("GET", "/private"),
        Route::Stream => ("GET", "/stream"),
        Route::AbortStream => ("GET", "/stream?chunks="),
        Route::Upload | Route::AbortUpload | Route::SlowLoris => ("POST", "/upload"),
        Route::AbortPending => ("GET", "/hold"),
        Route::NotFound => ("GET", "/nope"),
        Route::PanicHandler => ("GET", "/panic/handler"),
        Route::PanicPoll => ("GET", "/panic/poll"),
        Route::PanicBody => ("GET", "/panic/body"),
        Route::Slow => ("GET", "/slow"),
        Route::InnerError => ("GET", "/error"),
    };
    let mut req = Request::builder().method(method);
    req = if route == Route::AbortStream {
        req.uri(format!("{path}{}", mix::ABORT_CHUNKS))
    } else {
        req.uri(path)
    };
    req = req
        .header(header::HOST, "127.0.0.1")
        .header("x-request-id", format!("rel-{i}"));
    match route {
        Route::PrivateOk => {
            req = req.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        }
        Route::PrivateBad => {
            let bad = match i % 5 {
                0 => format!("Bearer {TOKEN}x"),
                1 => format!("Bearer  {TOKEN}"),
                2 => format!("Basic {TOKEN}"),
                3 => String::from("Bearer"),
                _ => format!("bearer {}", TOKEN.to_uppercase()),
            };
            req = req.header(header::AUTHORIZATION, bad);
        }
        Route::Slow => {
            let ms = mix::SLOW_BUDGET.as_millis();
            req = req.header("grpc-timeout", format!("{ms}m"));
        }
        _ => {}
    }
    let body = if route == Route::Upload {
        Full::new(Bytes::from(vec![b'u'; mix::UPLOAD]))
    } else {
        Full::new(Bytes::new())
    };
    req.body(body).expect("a valid request")
}

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), Failure> {
    if cond {
        Ok(())
    } else {
        Err(Failure::Promise(what()))
    }
}

/// Sends request `i` and checks the answer against the route's promise.
async fn one(
    addr: SocketAddr,
    i: u64,
    route: Route,
    conn: &mut Option<Conn>,
    stats: &ClientStats,
) -> Result<(), Failure> {
    match route {
        Route::AbortUpload => return abort_upload(addr, i).await,
        Route::AbortPending => return abort_pending(addr, i).await,
        Route::SlowLoris => return slow_loris(addr, i).await,
        _ => {}
    }
    if conn.is_none() {
        *conn = Some(connect(addr, stats).await?);
    }
    let sender = &mut conn.as_mut().expect("connected").sender;
    sender
        .ready()
        .await
        .map_err(|e| Failure::Transport(format!("connection not ready: {e}")))?;
    let sent = Instant::now();
    let res = sender
        .send_request(request(i, route))
        .await
        .map_err(|e| Failure::Transport(format!("send: {e}")))?;
    let head_after = sent.elapsed();
    let status = res.status();
    let wanted = match route {
        Route::PrivateBad => StatusCode::UNAUTHORIZED,
        Route::NotFound => StatusCode::NOT_FOUND,
        Route::PanicHandler | Route::PanicPoll | Route::InnerError => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Route::Slow => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    expect(status == wanted, || {
        format!("status {status}, wanted {wanted}")
    })?;
    expect(
        res.headers().contains_key("x-request-id") || route == Route::InnerError,
        || String::from("no x-request-id"),
    )?;
    if route == Route::PrivateBad {
        expect(res.headers().contains_key(header::WWW_AUTHENTICATE), || {
            String::from("401 without a challenge")
        })?;
    }
    if route == Route::Slow {
        let us = u64::try_from(head_after.as_micros()).unwrap_or(u64::MAX);
        // A figure only: it includes the client's own queueing before the request reached
        // the server, where the deadline starts; the server-side probe is the check.
        stats.slow_max_us.fetch_max(us, Relaxed);
        if head_after > mix::SLOW_BUDGET + mix::SLOW_GRACE {
            stats.slow_late.fetch_add(1, Relaxed);
        }
    }
    let mut body = res.into_body();
    match route {
        Route::AbortStream => {
            let frame = body
                .frame()
                .await
                .ok_or_else(|| Failure::Promise(String::from("empty stream")))?
                .map_err(|e| Failure::Transport(format!("first chunk: {e}")))?;
            expect(frame.data_ref().is_some_and(|d| !d.is_empty()), || {
                String::from("no first chunk")
            })?;
            // Hang up mid-body: the caller drops the connection.
            Ok(())
        }
        Route::PanicBody => match body.collect().await {
            Err(_) => Ok(()),
            Ok(_) => Err(Failure::Promise(String::from("the body ended cleanly"))),
        },
        _ => {
            let bytes = body
                .collect()
                .await
                .map_err(|e| Failure::Transport(format!("body: {e}")))?
                .to_bytes();
            match route {
                Route::Ok => expect(bytes == "ok", || format!("body {bytes:?}")),
                Route::PrivateOk => {
                    expect(bytes == "hello load-client", || format!("body {bytes:?}"))
                }
                Route::Stream => expect(bytes.len() == mix::CHUNK * mix::CHUNKS as usize, || {
                    format!("{} bytes streamed", bytes.len())
                }),
                Route::Upload => expect(bytes == mix::UPLOAD.to_string(), || {
                    format!("body {bytes:?}")
                }),
                _ => Ok(()),
            }
        }
    }
}

fn head(i: u64, length: usize) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\nx-request-id: rel-{i}\r\ncontent-length: {length}\r\n\r\n"
    )
}

/// Sends a head and part of the body, lets the handler start reading, and hangs up.
async fn abort_upload(addr: SocketAddr, i: u64) -> Result<(), Failure> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::Transport(format!("connect: {e}")))?;
    stream
        .write_all(head(i, mix::UPLOAD).as_bytes())
        .await
        .map_err(|e| Failure::Transport(format!("write head: {e}")))?;
    stream
        .write_all(&[b'u'; 100])
        .await
        .map_err(|e| Failure::Transport(format!("write body: {e}")))?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(stream);
    Ok(())
}

/// Sends a `GET /hold`, waits until the handler is running, and hangs up.
async fn abort_pending(addr: SocketAddr, i: u64) -> Result<(), Failure> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::Transport(format!("connect: {e}")))?;
    let head = format!("GET /hold HTTP/1.1\r\nhost: 127.0.0.1\r\nx-request-id: rel-{i}\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| Failure::Transport(format!("write head: {e}")))?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(stream);
    Ok(())
}

/// Sends a head and a little body, then stalls (even `i`) or trickles a byte every 30 ms (odd
/// `i`, under the idle deadline but past the total one), reading until the status line.
async fn slow_loris(addr: SocketAddr, i: u64) -> Result<(), Failure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::Transport(format!("connect: {e}")))?;
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(head(i, mix::UPLOAD).as_bytes())
        .await
        .map_err(|e| Failure::Transport(format!("write head: {e}")))?;
    write
        .write_all(&[b'u'; 16])
        .await
        .map_err(|e| Failure::Transport(format!("write body: {e}")))?;
    let trickle = i % 2 == 1;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    let mut tick = tokio::time::interval(Duration::from_millis(30));
    loop {
        tokio::select! {
            n = read.read(&mut chunk) => {
                let n = n.map_err(|e| Failure::Transport(format!("read: {e}")))?;
                buf.extend_from_slice(&chunk[..n]);
                if n == 0 || buf.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            _ = tick.tick(), if trickle => {
                // The server may close first; the status line decides.
                let _ = write.write_all(b"u").await;
            }
        }
    }
    expect(buf.starts_with(b"HTTP/1.1 408 "), || {
        format!(
            "answer {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(40)])
        )
    })
}
