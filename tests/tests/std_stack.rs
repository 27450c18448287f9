//! The std stack end to end, over real TCP on 127.0.0.1: every layer's promise, through an axum
//! router and through a plain hyper `service_fn`, over HTTP/1.1 and HTTP/2, with hyper-util's
//! client; the access log is captured with a `tracing` subscriber.
#![allow(missing_docs)]

mod std_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use middleware_std::CancelCause;
use std_support::{
    APPS, App, BOUND, BUDGET, ChannelBody, PROTOS, Proto, TOKEN, access_record, access_records,
    all_logs, capture_logs, client, empty, get, send, start, unique_id,
};
use tokio::sync::mpsc;

/// The problem-details body with the request id taken out, to compare bodies across requests.
fn without_id(body: &[u8], id: &str) -> String {
    String::from_utf8_lossy(body).replace(id, "<id>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_answers_401_403_and_200_and_the_handler_sees_the_principal() {
    capture_logs();
    let mut ids = Vec::new();
    for app in APPS {
        let (server, _) = start(app).await;
        for proto in PROTOS {
            let client = client(proto);
            let url = server.url("/private");
            let mut bodies = Vec::new();
            for authorization in [
                None,
                Some("Bearer wrong-token"),
                Some("Bearer"),
                Some("Basic czNjcmV0LXQwa2Vu"),
                Some("Bearer  s3cret-t0ken"),
                Some("Bearer s3cret-t0ken, Bearer s3cret-t0ken"),
            ] {
                let id = unique_id("unauthorized");
                let mut req = get(&url, &id);
                if let Some(value) = authorization {
                    req.headers_mut()
                        .insert(header::AUTHORIZATION, value.parse().unwrap());
                }
                let (parts, body) = send(&client, req).await;
                assert_eq!(
                    parts.status,
                    StatusCode::UNAUTHORIZED,
                    "{app:?} {proto:?} {authorization:?}"
                );
                assert_eq!(
                    parts.headers[header::WWW_AUTHENTICATE],
                    r#"Bearer realm="e2e""#
                );
                assert_eq!(parts.headers["x-request-id"], id.as_str());
                bodies.push(without_id(&body, &id));
                ids.push(id);
            }
            // No oracle: every failure gets the same answer.
            assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:#?}");
            assert!(bodies[0].contains(r#""status":401"#), "{}", bodies[0]);

            let bearer = format!("Bearer {TOKEN}");
            let id = unique_id("forbidden");
            let mut req = get(&server.url("/admin"), &id);
            req.headers_mut()
                .insert(header::AUTHORIZATION, bearer.parse().unwrap());
            let (parts, _) = send(&client, req).await;
            assert_eq!(parts.status, StatusCode::FORBIDDEN, "{app:?} {proto:?}");
            ids.push(id);

            let id = unique_id("admitted");
            let mut req = get(&url, &id);
            req.headers_mut()
                .insert(header::AUTHORIZATION, bearer.parse().unwrap());
            let (parts, body) = send(&client, req).await;
            assert_eq!(parts.status, StatusCode::OK, "{app:?} {proto:?}");
            assert_eq!(body, "hello tester");
            ids.push(id);
        }
    }
    for id in &ids {
        let record = access_record(id).await;
        assert!(record.contains("url.path=/private") || record.contains("url.path=/admin"));
    }
    assert!(ids.iter().all(|id| access_records(id) == 1));
    assert!(!all_logs().contains(TOKEN), "a token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_answers_503_names_the_phase_and_cancels_the_handler_with_deadline() {
    capture_logs();
    for app in APPS {
        let (server, mut dropped) = start(app).await;
        for proto in PROTOS {
            let client = client(proto);
            let id = unique_id("slow");
            let started = Instant::now();
            let (parts, body) = send(&client, get(&server.url("/slow"), &id)).await;
            let elapsed = started.elapsed();
            assert_eq!(
                parts.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{app:?} {proto:?}"
            );
            assert_eq!(parts.headers["x-timeout-phase"], "request");
            assert!(elapsed >= BUDGET, "answered after {elapsed:?}");
            assert!(elapsed < BOUND, "answered after {elapsed:?}");
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.contains(r#""status":503"#), "{body}");
            assert!(body.contains(&format!(r#""request_id":"{id}""#)), "{body}");

            // The handler's future was dropped, and saw why from its `Drop`.
            let (seen_id, cause) = tokio::time::timeout(BOUND, dropped.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(seen_id, id);
            assert_eq!(cause, Some(CancelCause::Deadline));

            let record = access_record(&id).await;
            assert!(record.contains("outcome=\"timeout\""), "{record}");
            assert!(record.contains("cancel_cause=\"deadline\""), "{record}");
            assert!(record.contains("http.response.status_code=503"), "{record}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_becomes_500_with_the_request_id_and_the_server_keeps_serving() {
    capture_logs();
    for app in APPS {
        let (server, _) = start(app).await;
        for proto in PROTOS {
            let client = client(proto);
            for _ in 0..2 {
                let id = unique_id("panic");
                let (parts, body) = send(&client, get(&server.url("/panic"), &id)).await;
                assert_eq!(
                    parts.status,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "{app:?} {proto:?}"
                );
                let body = String::from_utf8(body.to_vec()).unwrap();
                assert!(body.contains(&format!(r#""request_id":"{id}""#)), "{body}");
                assert!(!body.contains("on purpose"), "the payload leaked: {body}");
                let record = access_record(&id).await;
                assert!(record.contains("http.response.status_code=500"), "{record}");

                let id = unique_id("after-panic");
                let (parts, body) = send(&client, get(&server.url("/ok"), &id)).await;
                assert_eq!(parts.status, StatusCode::OK);
                assert_eq!(body, "ok");
            }
        }
    }
    // The panic itself is reported once per panic, with its request id, by the catch layer.
    let reports = all_logs()
        .lines()
        .filter(|line| line.contains("request panicked") && line.contains("-panic\""))
        .count();
    assert!(reports >= 8, "{reports} panic reports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id_and_server_timing_layer_made_ones_included() {
    capture_logs();
    let bearer = format!("Bearer {TOKEN}");
    // (path, authorization, expected status)
    let cases = [
        ("/ok", None, StatusCode::OK),
        ("/missing", None, StatusCode::NOT_FOUND),
        ("/private", None, StatusCode::UNAUTHORIZED),
        ("/admin", Some(bearer.as_str()), StatusCode::FORBIDDEN),
        ("/slow", None, StatusCode::SERVICE_UNAVAILABLE),
        ("/panic", None, StatusCode::INTERNAL_SERVER_ERROR),
    ];
    for app in APPS {
        let (server, _) = start(app).await;
        for proto in PROTOS {
            let client = client(proto);
            for (path, authorization, status) in cases {
                let id = unique_id("every");
                let mut req = get(&server.url(path), &id);
                if let Some(value) = authorization {
                    req.headers_mut()
                        .insert(header::AUTHORIZATION, value.parse().unwrap());
                }
                let (parts, _) = send(&client, req).await;
                let what = format!("{app:?} {proto:?} {path}");
                assert_eq!(parts.status, status, "{what}");
                assert_eq!(parts.headers["x-request-id"], id.as_str(), "{what}");
                let timing = parts.headers["server-timing"].to_str().unwrap();
                assert!(timing.starts_with("total;dur="), "{what}: {timing}");
                if path == "/ok" {
                    assert!(timing.ends_with(", handler;dur=2.000"), "{what}: {timing}");
                }
                access_record(&id).await;
            }

            // No id, or a hostile one: a fresh UUID v7 replaces it.
            for incoming in [None, Some("a b"), Some("x\"; y"), Some(&*"z".repeat(129))] {
                let mut req = http::Request::get(server.url("/ok")).body(empty()).unwrap();
                if let Some(value) = incoming {
                    req.headers_mut()
                        .insert("x-request-id", value.parse().unwrap());
                }
                let (parts, _) = send(&client, req).await;
                let id = parts.headers["x-request-id"].to_str().unwrap();
                assert_eq!(id.len(), 36, "{id}");
                assert_eq!(&id[14..15], "7", "{id}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_gets_408_and_a_flowing_one_is_echoed() {
    capture_logs();
    for app in APPS {
        let (server, _) = start(app).await;
        for proto in PROTOS {
            let client = client(proto);
            let id = unique_id("echo");
            let req = Request::post(server.url("/echo"))
                .header("x-request-id", &id)
                .body(http_body_util::Full::new(Bytes::from_static(b"hello")).boxed())
                .unwrap();
            let (parts, body) = send(&client, req).await;
            assert_eq!(parts.status, StatusCode::OK, "{app:?} {proto:?}");
            assert_eq!(body, "hello");

            // One chunk, then nothing: the idle deadline passes while the handler reads.
            let (tx, rx) = mpsc::channel(1);
            tx.send(Bytes::from_static(b"first chunk")).await.unwrap();
            let id = unique_id("stalled");
            let req = Request::post(server.url("/echo"))
                .header("x-request-id", &id)
                .body(ChannelBody(rx).boxed())
                .unwrap();
            let (parts, _) = send(&client, req).await;
            assert_eq!(
                parts.status,
                StatusCode::REQUEST_TIMEOUT,
                "{app:?} {proto:?}"
            );
            assert_eq!(parts.headers["x-timeout-phase"], "request-body");
            assert_eq!(parts.headers["x-request-id"], id.as_str());
            assert!(parts.headers.contains_key("server-timing"));
            if proto == Proto::Http1 {
                // The rest of the body was not read: the connection cannot be reused.
                assert_eq!(parts.headers[header::CONNECTION], "close");
            }
            drop(tx);
            let record = access_record(&id).await;
            assert!(record.contains("http.response.status_code=408"), "{record}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_logged_once_without_credentials_or_query_strings() {
    capture_logs();
    let mut ids = Vec::new();
    for app in APPS {
        let (server, _) = start(app).await;
        for proto in PROTOS {
            let client = client(proto);
            for path in [
                "/ok?password=hunter2&page=1",
                "/private?token=hunter2",
                "/missing?api_key=hunter2",
            ] {
                let id = unique_id("quiet");
                let mut req = get(&server.url(path), &id);
                req.headers_mut().insert(
                    header::AUTHORIZATION,
                    format!("Bearer {TOKEN}").parse().unwrap(),
                );
                req.headers_mut()
                    .insert(header::COOKIE, "session=hunter2".parse().unwrap());
                let (parts, _) = send(&client, req).await;
                assert!(parts.status.is_success() || parts.status == StatusCode::NOT_FOUND);
                let record = access_record(&id).await;
                let path = path.split('?').next().unwrap();
                assert!(record.contains(&format!("url.path={path} ")), "{record}");
                assert!(record.contains("outcome=\"completed\""), "{record}");
                ids.push(id);
            }
        }
    }
    // Let any straggling duplicate arrive before counting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for id in &ids {
        assert_eq!(access_records(id), 1, "{id}");
    }
    let logs = all_logs();
    assert!(
        !logs.contains("hunter2"),
        "a secret or query string reached the log"
    );
    assert!(!logs.contains(TOKEN), "a token reached the log");
}

/// One connection per protocol, opened by hand with hyper's connection API so that reuse is
/// certain (a pool may open a second connection at its discretion): a panic, a timeout, a
/// rejection and a 404 leave it usable, and the server accepted exactly one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_survives_panics_timeouts_and_rejections_over_http1_and_http2() {
    capture_logs();
    let sequence = [
        ("/ok", StatusCode::OK),
        ("/panic", StatusCode::INTERNAL_SERVER_ERROR),
        ("/ok", StatusCode::OK),
        ("/private", StatusCode::UNAUTHORIZED),
        ("/slow", StatusCode::SERVICE_UNAVAILABLE),
        ("/missing", StatusCode::NOT_FOUND),
        ("/ok", StatusCode::OK),
    ];
    for app in APPS {
        let (server, _) = start(app).await;
        for proto in PROTOS {
            let before = server.accepted();
            let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            let io = TokioIo::new(stream);
            let mut statuses = Vec::new();
            match proto {
                Proto::Http1 => {
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(io).await.unwrap();
                    let conn = tokio::spawn(conn);
                    for (path, _) in sequence {
                        sender.ready().await.unwrap();
                        let req = Request::get(path)
                            .header(header::HOST, "127.0.0.1")
                            .body(Empty::<Bytes>::new())
                            .unwrap();
                        let res = tokio::time::timeout(BOUND, sender.send_request(req))
                            .await
                            .unwrap()
                            .unwrap();
                        statuses.push(res.status());
                        res.into_body().collect().await.unwrap();
                    }
                    conn.abort();
                }
                Proto::Http2 => {
                    let (mut sender, conn) =
                        hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                            .await
                            .unwrap();
                    let conn = tokio::spawn(conn);
                    for (path, _) in sequence {
                        sender.ready().await.unwrap();
                        let req = Request::get(server.url(path))
                            .body(Empty::<Bytes>::new())
                            .unwrap();
                        let res = tokio::time::timeout(BOUND, sender.send_request(req))
                            .await
                            .unwrap()
                            .unwrap();
                        statuses.push(res.status());
                        res.into_body().collect().await.unwrap();
                    }
                    conn.abort();
                }
            }
            let expected: Vec<StatusCode> = sequence.iter().map(|(_, status)| *status).collect();
            assert_eq!(statuses, expected, "{app:?} {proto:?}");
            assert_eq!(server.accepted() - before, 1, "{app:?} {proto:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_can_shorten_the_budget_with_grpc_timeout() {
    capture_logs();
    for app in [App::Axum, App::Hyper] {
        let (server, mut dropped) = start(app).await;
        let client = client(Proto::Http2);
        let id = unique_id("shortened");
        let mut req = get(&server.url("/slow"), &id);
        req.headers_mut()
            .insert("grpc-timeout", "20m".parse().unwrap());
        let (parts, _) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
        let (_, cause) = dropped.recv().await.unwrap();
        assert_eq!(cause, Some(CancelCause::Deadline));
        // The record's duration is the server's own measure: the 20 ms budget, not 150 ms.
        let record = access_record(&id).await;
        let duration: f64 = record
            .split("duration_ms=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("no duration in {record}"));
        assert!(
            (20.0..BUDGET.as_secs_f64() * 1000.0).contains(&duration),
            "{record}"
        );
    }
}
