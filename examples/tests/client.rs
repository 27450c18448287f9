//! The `client` example, tested: runs the built example binary and checks what it promises about
//! each outbound call (retries, the per-attempt cap, the breaker, lifecycle timings, redacted
//! dumps) and that it exits by itself.
#![allow(missing_docs)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The credential the example sends upstream (kept in sync with `examples/client.rs`).
const SECRET: &str = "sk_live_9fQ2xR7bT4mW8kZ1";

/// The example binary cargo built next to this test (`cargo test` builds examples).
fn client_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap(); // target/<profile>/
    dir.join("examples")
        .join(format!("client{}", std::env::consts::EXE_SUFFIX))
}

struct Run {
    stdout: String,
    stderr: String,
}

fn run() -> Run {
    let started = Instant::now();
    let mut child = Command::new(client_binary())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client example was built");
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the example did not exit by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let run = Run {
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(output.status.success(), "{}\n{}", run.stdout, run.stderr);
    run
}

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .rfind(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{stdout}"))
}

#[test]
fn each_call_reports_what_happened_and_the_example_exits_by_itself() {
    let run = run();
    let out = &run.stdout;

    // Retried twice on 503, then answered.
    let flaky = line(out, "call 1: GET /flaky ->");
    assert!(flaky.contains("200 OK order placed"), "{flaky}");
    assert!(
        flaky.ends_with("attempts that reached the upstream: 3"),
        "{flaky}"
    );

    // Every attempt capped at 300 ms; the call gives up, the inbound request does not.
    let slow = line(out, "call 2: GET /slow ->");
    assert!(
        slow.contains("timed out (outbound call timed out)"),
        "{slow}"
    );
    assert!(
        slow.ends_with("attempts that reached the upstream: 3"),
        "{slow}"
    );
    assert!(
        out.contains("kept its own budget: more than 3s of 5s left, cancelled: false"),
        "{out}"
    );

    // Three 500s (not retried) open the circuit; the fourth call never reaches the upstream.
    for n in 3..=5 {
        let down = line(out, &format!("call {n}: GET /down ->"));
        assert!(down.contains("500 Internal Server Error"), "{down}");
        assert!(
            down.ends_with("attempts that reached the upstream: 1"),
            "{down}"
        );
    }
    let open = line(out, "call 6: GET /down ->");
    assert!(
        open.contains("refused at once (circuit breaker is open)"),
        "{open}"
    );
    assert!(
        open.ends_with("attempts that reached the upstream: 0"),
        "{open}"
    );
    assert_eq!(out.matches("breaker: Closed -> Open").count(), 1, "{out}");

    assert!(line(out, "GET /checkout answered").ends_with("200 OK"));
}

#[test]
fn lifecycle_timings_tell_new_connections_from_reused_ones_and_reach_server_timing() {
    let out = run().stdout;
    let attempts: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  attempt:"))
        .collect();
    assert!(
        attempts[0].starts_with("  attempt: new connection (connect "),
        "{out}"
    );
    // The retries wait a backoff, by which time hyper-util's pool has the connection back.
    assert!(
        attempts[1..]
            .iter()
            .any(|a| a.starts_with("  attempt: reused connection")),
        "{out}"
    );
    assert!(
        attempts.iter().any(|a| a.contains("no response")),
        "the capped attempts are reported too: {out}"
    );
    let timing = line(&out, "server-timing: ");
    for metric in [
        "client.connect;dur=",
        "client.reused;dur=0.000",
        "client.write;dur=",
        "client.first_byte;dur=",
        "client.body;dur=",
    ] {
        assert!(timing.contains(metric), "{metric} in {timing}");
    }
}

#[test]
fn dumps_show_every_attempt_and_never_the_credentials() {
    let run = run();
    let out = &run.stdout;
    let requests = out
        .matches("GET /flaky?api_key=[redacted]&page=1 HTTP/1.1")
        .count();
    assert_eq!(requests, 3, "one dump per attempt: {out}");
    assert!(out.contains("authorization: [redacted]"), "{out}");
    assert!(out.contains("HTTP/1.1 503 Service Unavailable"), "{out}");
    assert!(
        !out.contains(SECRET) && !run.stderr.contains(SECRET),
        "{out}"
    );
    assert!(!out.contains("sk_live"), "{out}");
}
