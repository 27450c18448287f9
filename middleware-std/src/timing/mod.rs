//! `Server-Timing`: how long the request took, and where the time went.
//!
//! [`ServerTimingLayer`] adds a [`Server-Timing`] header to every response:
//!
//! - `total`: the time from this layer's `call` to the inner response's headers;
//! - the marks recorded on the request's [`Context`](crate::Context) by handlers and layers
//!   ([`Context::mark`](crate::Context::mark)), in recording order, at most 32 by default
//!   ([`ServerTimingLayer::max_marks`]);
//! - with [`ServerTimingLayer::per_layer_times`], the time each std layer inside this one spent
//!   in its own code, as `mw.<layer>` marks (`mw.logging`, `mw.catch_panic`).
//!
//! [`ServerTimingLayer::precision`] rounds every reported duration down ([`Precision`]), and
//! [`ServerTimingLayer::filter`] chooses which responses get the headers at all
//! ([`TimingFilter`]: [`DefaultTimingFilter`] for every response, [`NotForRejected`], a
//! closure on the status and headers, or [`ServerTimingLayer::off`] for none).
//!
//! # In production
//!
//! `Server-Timing` tells every client how long the server worked on its request, without the
//! network's noise. On a rejected request that is a timing oracle: a credential check that does
//! more work for a known user than for an unknown one (a database lookup, a password hash)
//! answers its `401` measurably later, and the header reports the difference to the
//! microsecond. The default ([`ServerTimingLayer::new`]) stays what it was, exact times on
//! every response, because the header is a debugging aid; for a server exposed to untrusted
//! clients use
//!
//! ```
//! use middleware_std::timing::{NotForRejected, Precision, ServerTimingLayer};
//!
//! let production = ServerTimingLayer::new()
//!     .filter(NotForRejected) // no header on 401, 403, 407
//!     .precision(Precision::TenMillis); // and coarse elsewhere
//! # let _ = production;
//! ```
//!
//! or [`ServerTimingLayer::off`] (the per-layer marks and the [`OnBodyEnd`] metrics hook keep
//! working, they stay on the server). Rounding alone does not close an oracle: with enough
//! repeated requests an attacker can still detect a difference that straddles a step; only
//! leaving the header off the responses that must not leak does.
//!
//! # Bodiless responses
//!
//! A response to `HEAD`, and every `1xx`, `204 No Content` and `304 Not Modified`, has no body
//! on the wire: hyper drops it unpolled (and axum empties it). The layer finishes such a
//! response at its head: the [`OnBodyEnd`] hook is told [`StreamEnd::Complete`] when the
//! head passes, never [`StreamEnd::Dropped`].
//!
//! Durations are milliseconds with three decimals (`dur=12.345`). Mark names are untrusted
//! text as far as the header is concerned: every byte outside the RFC 9110 `token` grammar
//! (and `%`) is percent-encoded, an empty name becomes `_`, and names are cut at 64 bytes, so
//! a name can neither break out of its metric nor inject a header. No `desc` is emitted.
//!
//! Optionally, [`ServerTimingLayer::response_time_header`] sends `x-response-time: 12.345ms`
//! (the same `total`), and [`ServerTimingLayer::on_body_end`] calls a hook ([`OnBodyEnd`])
//! once the body has streamed, with the full duration: feed a metrics histogram from there.
//!
//! The layer needs the request's context to read the marks recorded inside it, so it creates
//! one if no outer layer did. Times are read on the context's clock (tokio's, so tests with a
//! paused clock are exact).
//!
//! # Cost
//!
//! Per request: the context if no outer layer made it (two allocations; four if the request's
//! extension map was still empty), one allocation for the `Server-Timing` value (its exact
//! length is measured first), one for `x-response-time` when enabled, and three for the
//! context value that asks for per-layer times when they are enabled, one for the
//! [`OnBodyEnd`] hook's pending report when there is a hook. Adding a header to an
//! empty response header map allocates the map itself (two), and appending `Server-Timing` to
//! a response that already has one allocates the map's list of extra values (one). Marks cost
//! whoever records them (the first mark of a request allocates the list). Measured in
//! `tests/timing_allocations.rs`.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::{
//!     convert::Infallible,
//!     sync::{Arc, Mutex},
//!     time::Duration,
//! };
//! use http::{Request, Response};
//! use middleware_std::{RequestExt, timing::{BodyEnd, ServerTimingLayer}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let histogram = Arc::new(Mutex::new(Vec::new()));
//! let app = ServiceBuilder::new()
//!     .layer(
//!         ServerTimingLayer::new()
//!             .response_time_header(true)
//!             .on_body_end({
//!                 let histogram = Arc::clone(&histogram);
//!                 move |end: BodyEnd| histogram.lock().unwrap().push(end.duration)
//!             }),
//!     )
//!     .service(service_fn(|req: Request<String>| async move {
//!         let cx = req.try_context().expect("the timing layer made one");
//!         cx.mark("db", Duration::from_millis(3));
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//!
//! let res = app.oneshot(Request::new(String::new())).await.unwrap();
//! let timing = res.headers()["server-timing"].to_str().unwrap();
//! assert!(timing.starts_with("total;dur="), "{timing}");
//! assert!(timing.ends_with(", db;dur=3.000"), "{timing}");
//! assert!(res.headers()["x-response-time"].to_str().unwrap().ends_with("ms"));
//!
//! // The hook runs once the body has been read.
//! use http_body_util::BodyExt;
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "hello");
//! assert_eq!(histogram.lock().unwrap().len(), 1);
//! # }
//! ```
//!
//! # Differences from tower-http
//!
//! tower-http has no `Server-Timing` middleware. The closest pieces are `TraceLayer`'s
//! `on_response` / `on_eos` callbacks, which see latencies but cannot read marks recorded by
//! the handler, and the generic `SetResponseHeader`. Here the marks travel on the request's
//! [`Context`](crate::Context), and the end-of-body hook receives the status and both
//! durations in one call.
//!
//! # One header per request
//!
//! A `ServerTimingLayer` under another one on the same request (a per-route one under a
//! global one, or under [`StackLayer`](crate::stack::StackLayer), which has one) writes no
//! `Server-Timing` (nor `x-response-time`) header and asks for no per-layer times: the outer
//! one decides, and the inner one says so in one `warn!` per process. Its
//! [`OnBodyEnd`] hook still runs. The layers find each other through a mark in the request's
//! extensions, which costs no allocation.
//!
//! [`Server-Timing`]: https://www.w3.org/TR/server-timing/

mod body;
mod filter;
mod future;
mod header;
mod hook;
mod layer;
mod precision;
mod service;

#[doc(inline)]
pub use self::{
    body::TimingBody,
    filter::{DefaultTimingFilter, NotForRejected, TimingFilter},
    future::ResponseFuture,
    hook::{BodyEnd, OnBodyEnd, StreamEnd},
    layer::ServerTimingLayer,
    precision::Precision,
    service::ServerTiming,
};
/// Re-exported from core, where every body wrapper's "polled again after it failed" error lives.
#[doc(inline)]
pub use middleware_core::body::BodyFailedError;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RequestExt, layer_time};
    use http::{Request, Response, StatusCode};
    use http_body::Body as _;
    use http_body_util::BodyExt;
    use middleware_core::testing::Conformance;
    use std::{
        convert::Infallible,
        sync::{Arc, Mutex},
        time::Duration,
    };
    use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

    #[tokio::test]
    async fn passes_the_conformance_kit() {
        Conformance::new(ServerTimingLayer::new()).run().await;
        Conformance::new(
            ServerTimingLayer::new()
                .per_layer_times(true)
                .response_time_header(true)
                .on_body_end(|_: BodyEnd| {}),
        )
        .run()
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn total_is_the_time_to_headers_and_marks_follow_in_order() {
        let app = ServerTimingLayer::new().layer(service_fn(|req: Request<String>| async move {
            let cx = req.try_context().unwrap().clone();
            tokio::time::sleep(Duration::from_millis(40)).await;
            cx.mark("db", Duration::from_millis(25));
            cx.mark("render;evil", Duration::from_micros(1500));
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(
            res.headers()["server-timing"],
            "total;dur=40.000, db;dur=25.000, render%3Bevil;dur=1.500"
        );
        assert!(res.headers().get("x-response-time").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn response_time_header_is_opt_in() {
        let app = ServerTimingLayer::new()
            .response_time_header(true)
            .layer(service_fn(slow(Duration::from_millis(7), "")));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(res.headers()["x-response-time"], "7.000ms");
    }

    #[tokio::test(start_paused = true)]
    async fn an_inner_server_timing_header_is_kept() {
        let app = ServerTimingLayer::new().layer(service_fn(|_: Request<String>| async {
            let mut res = Response::new(String::new());
            res.headers_mut()
                .insert("server-timing", "cache;desc=hit".parse().unwrap());
            Ok::<_, Infallible>(res)
        }));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let values: Vec<_> = res.headers().get_all("server-timing").iter().collect();
        assert_eq!(values, ["cache;desc=hit", "total;dur=0.000"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_context_created_outside_is_reused_and_its_age_not_counted() {
        let mut req = Request::new(String::new());
        let outer = req.context().clone();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let app = ServerTimingLayer::new().layer(service_fn(|req: Request<String>| async move {
            req.try_context().unwrap().mark("inner", Duration::ZERO);
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(
            res.headers()["server-timing"],
            "total;dur=0.000, inner;dur=0.000"
        );
        assert_eq!(outer.marks().len(), 1, "not the request's own context");
    }

    #[tokio::test(start_paused = true)]
    async fn per_layer_times_are_opt_in() {
        let handler = |req: Request<String>| async move {
            // What a std layer inside the timing layer does.
            layer_time::record(req.try_context(), "mw.timeout", Duration::from_micros(20));
            Ok::<_, Infallible>(Response::new(String::new()))
        };
        let off = ServerTimingLayer::new().layer(service_fn(handler));
        let res = off.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(res.headers()["server-timing"], "total;dur=0.000");

        let on = ServerTimingLayer::new()
            .per_layer_times(true)
            .layer(service_fn(handler));
        let res = on.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(
            res.headers()["server-timing"],
            "total;dur=0.000, mw.timeout;dur=0.020"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_body_end_hook_sees_the_full_streaming_duration() {
        let (hook, ends) = recorder();
        let app = ServerTimingLayer::new()
            .on_body_end(hook)
            .layer(service_fn(slow(Duration::from_millis(10), "body")));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let mut body = res.into_body();
        assert!(ends.lock().unwrap().is_empty(), "reported before the body");
        tokio::time::sleep(Duration::from_millis(90)).await;
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "body");
        // `String` reports its end after its only frame: that is the end.
        let ends = ends.lock().unwrap().clone();
        assert_eq!(
            ends,
            [End {
                status: StatusCode::OK,
                headers: Duration::from_millis(10),
                duration: Duration::from_millis(100),
                stream: StreamEnd::Complete,
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_body_is_reported_at_once() {
        let (hook, ends) = recorder();
        let app = ServerTimingLayer::new()
            .on_body_end(hook)
            .layer(service_fn(slow(Duration::from_millis(5), "")));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(ends.lock().unwrap().len(), 1);
        drop(res);
        assert_eq!(ends.lock().unwrap()[0].stream, StreamEnd::Complete);
        assert_eq!(ends.lock().unwrap().len(), 1, "reported twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dropped_mid_stream_is_reported_as_dropped() {
        let (hook, ends) = recorder();
        let app = ServerTimingLayer::new().on_body_end(hook).layer(service_fn(
            |_: Request<String>| async {
                Ok::<_, Infallible>(Response::new(Frames::new(&["a", "b"])))
            },
        ));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let mut body = res.into_body();
        body.frame().await.unwrap().unwrap();
        assert!(ends.lock().unwrap().is_empty());
        drop(body);
        assert_eq!(ends.lock().unwrap()[0].stream, StreamEnd::Dropped);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_read_to_its_end_and_a_failing_one_are_told_apart() {
        let (hook, ends) = recorder();
        let app = ServerTimingLayer::new().on_body_end(hook).layer(service_fn(
            |req: Request<String>| async move {
                let mut frames = Frames::new(&["a", "b"]);
                frames.fail = req.uri().path() == "/fail";
                Ok::<_, Infallible>(Response::new(frames))
            },
        ));
        let res = app
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ab");
        let req = Request::get("/fail").body(String::new()).unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert!(res.into_body().collect().await.is_err());
        let ends: Vec<_> = ends.lock().unwrap().iter().map(|e| e.stream).collect();
        assert_eq!(ends, [StreamEnd::Complete, StreamEnd::Error]);
    }

    #[tokio::test]
    async fn inner_errors_pass_through_without_a_report() {
        let (hook, ends) = recorder();
        let app = ServerTimingLayer::new().on_body_end(hook).layer(service_fn(
            |_: Request<String>| async { Err::<Response<String>, _>("boom") },
        ));
        let err = app.oneshot(Request::new(String::new())).await.unwrap_err();
        assert_eq!(err, "boom");
        assert!(ends.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn works_on_a_multi_thread_runtime() {
        let (hook, ends) = recorder();
        let app = ServiceBuilder::new()
            .layer(ServerTimingLayer::new().on_body_end(hook))
            .service(service_fn(|req: Request<String>| async move {
                let cx = req.try_context().unwrap().clone();
                tokio::spawn(async move { cx.mark("spawned", Duration::from_millis(2)) })
                    .await
                    .unwrap();
                Ok::<_, Infallible>(Response::new(String::from("x")))
            }));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let res = app.oneshot(Request::new(String::new())).await.unwrap();
                let timing = res.headers()["server-timing"].to_str().unwrap().to_owned();
                res.into_body().collect().await.unwrap();
                timing
            }));
        }
        for task in tasks {
            let timing = task.await.unwrap();
            assert!(timing.ends_with(", spawned;dur=2.000"), "{timing}");
        }
        assert_eq!(ends.lock().unwrap().len(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn head_response_ends_at_the_head_not_dropped() {
        let (hook, ends) = recorder();
        let app = ServerTimingLayer::new().on_body_end(hook).layer(service_fn(
            |_: Request<String>| async {
                // A handler that answers HEAD like GET: hyper drops this body unpolled.
                Ok::<_, Infallible>(Response::new(Frames::new(&["hello"])))
            },
        ));
        let req = Request::head("/").body(String::new()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert!(res.headers().contains_key("server-timing"));
        drop(res);
        let got: Vec<_> = ends.lock().unwrap().iter().map(|e| e.stream).collect();
        assert_eq!(got, [StreamEnd::Complete]);

        // The same handler on GET: dropping the unread body is a client gone.
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        drop(res);
        assert_eq!(ends.lock().unwrap()[1].stream, StreamEnd::Dropped);
    }

    #[tokio::test(start_paused = true)]
    async fn bodiless_statuses_end_at_the_head_not_dropped() {
        for status in [
            StatusCode::CONTINUE,
            StatusCode::SWITCHING_PROTOCOLS,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
        ] {
            let (hook, ends) = recorder();
            let app = ServerTimingLayer::new().on_body_end(hook).layer(service_fn(
                move |_: Request<String>| async move {
                    let mut res = Response::new(Frames::new(&["ignored"]));
                    *res.status_mut() = status;
                    Ok::<_, Infallible>(res)
                },
            ));
            let res = app.oneshot(Request::new(String::new())).await.unwrap();
            let at_head = ends.lock().unwrap().len();
            drop(res);
            assert_eq!(at_head, 1, "{status}: not at the head");
            let ends = ends.lock().unwrap().clone();
            assert_eq!(ends.len(), 1, "{status}: reported twice");
            assert_eq!(ends[0].stream, StreamEnd::Complete, "{status}");
            assert_eq!(ends[0].status, status);
        }
    }

    #[tokio::test]
    async fn a_failed_body_never_ends_cleanly_afterwards() {
        let (hook, ends) = recorder();
        let app = ServerTimingLayer::new().on_body_end(hook).layer(service_fn(
            |_: Request<String>| async {
                let mut frames = Frames::new(&["a"]);
                frames.fail = true;
                Ok::<_, Infallible>(Response::new(frames))
            },
        ));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let mut body = res.into_body();
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "a"
        );
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "body failed");
        for _ in 0..3 {
            assert!(!body.is_end_stream());
            let again = body.frame().await.expect("a clean end after an error");
            let err = again.unwrap_err();
            assert!(err.is::<BodyFailedError>(), "{err:?}");
            assert_eq!(err.to_string(), "body polled again after it failed");
        }
        let got: Vec<_> = ends.lock().unwrap().iter().map(|e| e.stream).collect();
        assert_eq!(got, [StreamEnd::Error]);
    }

    #[tokio::test]
    async fn size_hint_end_of_stream_and_default_pass_through() {
        let app = ServerTimingLayer::new()
            .on_body_end(|_: BodyEnd| {})
            .layer(service_fn(|_: Request<String>| async {
                Ok::<_, Infallible>(Response::new(String::from("four")))
            }));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        let body = res.into_body();
        assert_eq!(body.size_hint().exact(), Some(4));
        assert!(!body.is_end_stream());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "four");

        let empty = TimingBody::<String, ()>::default();
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
        assert!(empty.collect().await.unwrap().to_bytes().is_empty());
    }

    fn status_app(
        status: StatusCode,
    ) -> impl tower::Service<
        Request<String>,
        Response = Response<String>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        service_fn(move |req: Request<String>| async move {
            tokio::time::advance(Duration::from_micros(12_345)).await;
            req.try_context()
                .unwrap()
                .mark("db", Duration::from_micros(9_876));
            let mut res = Response::new(String::new());
            *res.status_mut() = status;
            Ok::<_, Infallible>(res)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn not_for_rejected_leaves_the_headers_off_401_403_and_407() {
        let layer = ServerTimingLayer::new()
            .response_time_header(true)
            .filter(NotForRejected);
        for status in [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        ] {
            let res = layer
                .layer(status_app(status))
                .oneshot(Request::new(String::new()))
                .await
                .unwrap();
            assert_eq!(res.status(), status);
            assert!(res.headers().get("server-timing").is_none(), "{status}");
            assert!(res.headers().get("x-response-time").is_none(), "{status}");
        }
        for status in [
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::BAD_REQUEST,
        ] {
            let res = layer
                .layer(status_app(status))
                .oneshot(Request::new(String::new()))
                .await
                .unwrap();
            assert_eq!(
                res.headers()["server-timing"],
                "total;dur=12.345, db;dur=9.876",
                "{status}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_sends_on_every_response_even_a_401() {
        let res = ServerTimingLayer::new()
            .layer(status_app(StatusCode::UNAUTHORIZED))
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(
            res.headers()["server-timing"],
            "total;dur=12.345, db;dur=9.876"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn off_writes_no_header_but_the_hook_still_runs() {
        let (hook, ends) = recorder();
        let app = ServerTimingLayer::new()
            .response_time_header(true)
            .on_body_end(hook)
            .off()
            .layer(status_app(StatusCode::OK));
        let res = app.oneshot(Request::new(String::new())).await.unwrap();
        assert!(res.headers().get("server-timing").is_none());
        assert!(res.headers().get("x-response-time").is_none());
        drop(res);
        let ends = ends.lock().unwrap().clone();
        assert_eq!(ends.len(), 1);
        assert_eq!(
            ends[0].headers,
            Duration::from_micros(12_345),
            "exact for metrics"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closure_filter_sees_the_status_and_headers() {
        let app = ServerTimingLayer::new()
            .filter(|status: StatusCode, headers: &http::HeaderMap| {
                status.is_success() && !headers.contains_key("x-no-timing")
            })
            .layer(service_fn(|req: Request<String>| async move {
                let mut res = Response::new(String::new());
                if req.uri().path() == "/quiet" {
                    res.headers_mut()
                        .insert("x-no-timing", http::HeaderValue::from_static("1"));
                }
                Ok::<_, Infallible>(res)
            }));
        let res = app
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(res.headers()["server-timing"], "total;dur=0.000");
        let req = Request::get("/quiet").body(String::new()).unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert!(res.headers().get("server-timing").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn coarse_precision_rounds_total_marks_and_response_time_down() {
        for (precision, timing, response_time) in [
            (
                Precision::Exact,
                "total;dur=12.345, db;dur=9.876",
                "12.345ms",
            ),
            (
                Precision::Millis,
                "total;dur=12.000, db;dur=9.000",
                "12.000ms",
            ),
            (
                Precision::TenMillis,
                "total;dur=10.000, db;dur=0.000",
                "10.000ms",
            ),
        ] {
            let (hook, ends) = recorder();
            let app = ServerTimingLayer::new()
                .response_time_header(true)
                .precision(precision)
                .on_body_end(hook)
                .layer(status_app(StatusCode::OK));
            let res = app.oneshot(Request::new(String::new())).await.unwrap();
            assert_eq!(res.headers()["server-timing"], timing, "{precision:?}");
            assert_eq!(
                res.headers()["x-response-time"],
                response_time,
                "{precision:?}"
            );
            drop(res);
            let ends = ends.lock().unwrap().clone();
            assert_eq!(
                ends[0].headers,
                Duration::from_micros(12_345),
                "the hook is exact"
            );
        }
    }

    #[test]
    fn debug_names_the_hook_type() {
        let layer = ServerTimingLayer::new().on_body_end(|_: BodyEnd| {});
        let debug = format!("{layer:?}");
        assert!(debug.starts_with("ServerTimingLayer {"), "{debug}");
        assert!(debug.contains("on_body_end: \""), "{debug}");
        assert!(debug.contains("precision: Exact"), "{debug}");
        assert!(debug.contains("DefaultTimingFilter"), "{debug}");
        let svc = ServerTiming::new(());
        assert!(format!("{svc:?}").starts_with("ServerTiming { inner: ()"));
    }

    // ----- fixtures -----

    type End = BodyEnd;

    /// A streaming body of fixed chunks that cannot tell its end in advance (like a channel),
    /// optionally failing (once) after the chunks.
    pub(super) struct Frames {
        chunks: std::collections::VecDeque<bytes::Bytes>,
        pub(super) fail: bool,
    }

    impl Frames {
        pub(super) fn new(chunks: &[&'static str]) -> Self {
            Self {
                chunks: chunks
                    .iter()
                    .map(|c| bytes::Bytes::from_static(c.as_bytes()))
                    .collect(),
                fail: false,
            }
        }
    }

    impl http_body::Body for Frames {
        type Data = bytes::Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, &'static str>>> {
            std::task::Poll::Ready(match self.chunks.pop_front() {
                Some(chunk) => Some(Ok(http_body::Frame::data(chunk))),
                // Fails once, then would end cleanly: the wrapper must not pass that end on.
                None if self.fail => {
                    self.fail = false;
                    Some(Err("body failed"))
                }
                None => None,
            })
        }
    }

    fn recorder() -> (impl Fn(BodyEnd) + Clone, Arc<Mutex<Vec<End>>>) {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let hook = {
            let ends = Arc::clone(&ends);
            move |end: BodyEnd| ends.lock().unwrap().push(end)
        };
        (hook, ends)
    }

    type BoxFuture =
        std::pin::Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn slow(delay: Duration, body: &'static str) -> impl Fn(Request<String>) -> BoxFuture + Clone {
        move |_| {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(Response::new(String::from(body)))
            })
        }
    }
}
