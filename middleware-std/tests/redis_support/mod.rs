//! What every Redis test shares: finding the server (skip loudly without one, fail under
//! `CI=true`), random key prefixes, a `redis-server` child of the test's own, and a server
//! that accepts and never answers.
//!
//! Included by `#[path]` from `middleware-std/tests/redis_*.rs` and `tests/tests/redis_*.rs`.

#![allow(dead_code, clippy::print_stderr)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Whether this run must not skip (CI).
fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "{test}: {why}, and CI=true: the Redis tests must run in CI (start redis-server and set REDIS_URL)"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing
    // tests, and a skip must be seen.
    let banner = format!(
        "\n==================== SKIPPED: {test} ====================\n\
         {why}.\n\
         Run the Redis tests with a server, e.g.:\n  \
         redis-server --port 6379 --save '' --appendonly no --daemonize yes\n  \
         REDIS_URL=redis://127.0.0.1:6379 cargo test -p middleware-std --features redis --test redis_rate_limit --test redis_breaker --test redis_fault\n  \
         REDIS_URL=redis://127.0.0.1:6379 cargo test -p middleware-tests --test redis_fleet\n\
         ==========================================================\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
}

/// Answers `PING` with `+PONG` within a second.
fn pings(addr: &str) -> bool {
    let Ok(addrs) = std::net::ToSocketAddrs::to_socket_addrs(addr) else {
        return false;
    };
    addrs.into_iter().any(|addr| {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut buf).is_ok()
            && &buf == b"+PONG\r\n"
    })
}

/// `REDIS_URL` when it is set and the server answers; otherwise `None` after a loud banner
/// naming `test` (a panic under `CI=true`).
pub(crate) fn redis_url(test: &str) -> Option<String> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        skip(test, "REDIS_URL is not set");
        return None;
    };
    let host = url
        .strip_prefix("redis://")
        .map(|rest| rest.rsplit('@').next().unwrap_or(rest))
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned());
    match host {
        Some(host) if pings(&host) => Some(url),
        _ => {
            skip(test, &format!("REDIS_URL={url} does not answer PING"));
            None
        }
    }
}

/// A key prefix of its own for each test (tests run in parallel on one server).
pub(crate) fn prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "test:{test}:{}:{nanos:x}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `redis-server` child process of the test's own, on a free port with its data in a
/// temporary folder: killing it hurts no other test. Killed on drop.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one; `None` after a loud banner when `redis-server` is not on `PATH` (a panic
    /// under `CI=true`).
    pub(crate) fn start(test: &str) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            skip(test, "redis-server is not on PATH");
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("mw-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.restart();
        Some(server)
    }

    /// The port it listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL: no goodbye to the clients) and waits for it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port and waits until it answers.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while !pings(&format!("127.0.0.1:{}", self.port)) {
            assert!(
                Instant::now() < until,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server that accepts connections and reads what they send, and never answers: a Redis
/// that hangs. Runs on its own thread for the life of the test process.
pub(crate) fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A loopback address nothing listens on (connections are refused).
pub(crate) fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}
