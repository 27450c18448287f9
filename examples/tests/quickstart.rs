//! The README's first command, tested: runs the built `quickstart` example on an ephemeral port
//! and checks every promise of its routes, its logs and its shutdown, over real TCP.
#![allow(missing_docs)]

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

const TOKEN: &str = "env-s3cret-token";

/// The example binary cargo built next to this test (`cargo test` builds examples).
fn quickstart_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap(); // target/<profile>/
    dir.join("examples")
        .join(format!("quickstart{}", std::env::consts::EXE_SUFFIX))
}

struct Server {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(json: bool) -> Self {
        let mut command = Command::new(quickstart_binary());
        command
            .env("PORT", "0")
            .env("DEMO_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if json {
            command.env("LOG_FORMAT", "json");
        }
        let mut child = command.spawn().expect("the quickstart example was built");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.strip_prefix("listening on ") {
                    let base = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(base);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the banner names the address");
        Self {
            child,
            base,
            stderr: log,
        }
    }

    /// Sends SIGTERM and collects stdout; the process must exit by itself.
    fn stop(mut self) -> (String, String, Duration) {
        let pid = self.child.id().to_string();
        let signalled = Instant::now();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = signalled + Duration::from_secs(10);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the quickstart did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = signalled.elapsed();
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let stderr = self.stderr.lock().unwrap().clone();
        (stdout, stderr, took)
    }
}

async fn get(base: &str, path: &str, auth: Option<&str>) -> (StatusCode, http::HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::get(format!("{base}{path}"));
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(req.body(Empty::new()).unwrap()),
    )
    .await
    .expect("bounded")
    .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_serves_its_routes_as_the_readme_lists() {
    let server = Server::start(true);
    let base = server.base.clone();

    let (status, headers, _) = get(&base, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut all_headers = vec![headers];

    let (status, headers, _) = get(&base, "/private", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    all_headers.push(headers);

    let (status, headers, body) = get(&base, "/private", Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("demo"),
        "the handler greets the principal: {body}"
    );
    all_headers.push(headers);

    let started = Instant::now();
    let (status, headers, _) = get(&base, "/slow", None).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    all_headers.push(headers);

    let (status, headers, body) = get(&base, "/panic", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(body.contains(&id), "the 500 carries the request id: {body}");
    all_headers.push(headers);

    let (status, headers, _) = get(&base, "/nope?password=hunter2", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    all_headers.push(headers);

    // The server kept serving after the panic.
    let (status, headers, _) = get(&base, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    all_headers.push(headers);

    for headers in &all_headers {
        assert!(headers.contains_key("x-request-id"), "{headers:?}");
        assert!(headers.contains_key("server-timing"), "{headers:?}");
    }

    let (stdout, stderr, _) = server.stop();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        all_headers.len(),
        "one access record per request:\n{stdout}"
    );
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|err| panic!("not a JSON record ({err}): {line}"));
    }
    assert!(
        stdout.contains("deadline"),
        "the /slow record says the deadline fired:\n{stdout}"
    );
    for secret in [TOKEN, "hunter2", "password"] {
        assert!(!stdout.contains(secret), "{secret} leaked to stdout");
        assert!(!stderr.contains(secret), "{secret} leaked to stderr");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_logs_exactly_one_human_readable_line_and_shutdown_is_prompt() {
    let server = Server::start(false);
    let (status, _, _) = get(&server.base, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    let (stdout, stderr, took) = server.stop();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        !stdout.starts_with('{'),
        "human-readable by default: {stdout}"
    );
    assert!(stderr.contains("curl"), "the banner goes to stderr");
    assert!(took < Duration::from_secs(2), "idle shutdown took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_hit_its_budget_then_exits() {
    let server = Server::start(false);
    let base = server.base.clone();
    let in_flight = tokio::spawn({
        let base = base.clone();
        async move { get(&base, "/slow", None).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    let (status, headers, _) = in_flight.await.unwrap();
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "it ran into its 1 s budget"
    );
    assert!(headers.contains_key("x-request-id"));
    let (stdout, _, took) = stopping.await.unwrap();
    // Signalled ~200 ms in: the request needs ~800 ms more; the process exits within the
    // budget plus one second.
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "the in-flight request was logged: {stdout}"
    );
    let refused = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await;
    assert!(
        refused.is_err(),
        "new connections are refused after shutdown"
    );
}
