//! Two instances of a service sharing one rate limit through Redis.
//!
//! Run it with a Redis server and its URL:
//!
//! ```text
//! redis-server --port 6379 --save '' --appendonly no --daemonize yes
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p middleware-examples --example fleet
//! ```
//!
//! It starts two instances (`axum::serve` on 127.0.0.1, each with its own stack and its own
//! Redis connection), both limited to 10 requests per minute per tenant counted in Redis
//! (`RedisRateLimitStore`), fires 30 requests of one tenant alternately at them, and prints
//! what each admitted: 10 in all, not 10 each. Without `REDIS_URL` it says so and exits with
//! status 2.
// An example talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    net::SocketAddr,
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{Router, routing::get};
use http::HeaderName;
use middleware_std::{
    rate_limit::{Policy, RateLimitLayer},
    redis::{Redis, RedisRateLimitStore},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Requests per minute per tenant, across the fleet.
const LIMIT: u32 = 10;

/// One instance: its own Redis connection, store and router, on a port of its own.
async fn instance(url: &str, prefix: &str) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let store =
        RedisRateLimitStore::new(Redis::open(url)?, Policy::per_minute(LIMIT)).prefix(prefix);
    let app = Router::new().route(
        "/",
        get(|| async { "hello" }).layer(
            RateLimitLayer::with_store(store).per_header(HeaderName::from_static("x-tenant")),
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// `GET /` as tenant `acme`; the status code.
async fn get_status(addr: SocketAddr) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: fleet\r\nx-tenant: acme\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await??;
    Ok(String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0))
}

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!(
            "fleet: REDIS_URL is not set.\n\
             Start a Redis server and point the example at it, e.g.:\n  \
             redis-server --port 6379 --save '' --appendonly no --daemonize yes\n  \
             REDIS_URL=redis://127.0.0.1:6379 cargo run -p middleware-examples --example fleet"
        );
        return ExitCode::from(2);
    };
    // A prefix of this run's own: every run starts with a whole quota.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let prefix = format!("fleet-example:{run}:");
    let mut addrs = Vec::new();
    for _ in 0..2 {
        match instance(&url, &prefix).await {
            Ok(addr) => addrs.push(addr),
            Err(e) => {
                eprintln!("fleet: cannot start an instance: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut admitted = [0_u32; 2];
    let mut refused = [0_u32; 2];
    for i in 0..3 * LIMIT as usize {
        let which = i % 2;
        match get_status(addrs[which]).await {
            Ok(200) => admitted[which] += 1,
            Ok(429) => refused[which] += 1,
            Ok(other) => {
                eprintln!("fleet: unexpected status {other}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("fleet: request failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    for (i, addr) in addrs.iter().enumerate() {
        println!(
            "instance {} on {addr}: admitted {}, refused {} (429)",
            i + 1,
            admitted[i],
            refused[i]
        );
    }
    let total: u32 = admitted.iter().sum();
    println!(
        "the fleet admitted {total} of {} requests (limit {LIMIT} per minute, shared through {url})",
        3 * LIMIT
    );
    if total == LIMIT {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "fleet: expected {LIMIT} admitted in all (is Redis falling back to local limits?)"
        );
        ExitCode::FAILURE
    }
}
