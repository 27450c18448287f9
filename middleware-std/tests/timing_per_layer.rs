//! The timing layer's per-layer report with a std layer inside it (logging), and both layers
//! composed in one stack.
#![cfg(all(feature = "timing", feature = "logging"))]
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response};
use http_body_util::BodyExt;
use middleware_std::{
    RequestExt,
    logging::LogLayer,
    timing::{BodyEnd, ServerTimingLayer, StreamEnd},
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

fn handler() -> impl tower::Service<
    Request<String>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|req: Request<String>| async move {
        let cx = req
            .try_context()
            .expect("the timing layer made one")
            .clone();
        tokio::time::sleep(Duration::from_millis(30)).await;
        cx.mark("db", Duration::from_millis(12));
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    })
}

#[tokio::test(start_paused = true)]
async fn layers_inside_report_their_own_time_when_asked() {
    let app = ServiceBuilder::new()
        .layer(ServerTimingLayer::new().per_layer_times(true))
        .layer(LogLayer::new())
        .service(handler());
    let res = app.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(
        res.headers()["server-timing"],
        "total;dur=30.000, mw.logging;dur=0.000, db;dur=12.000"
    );

    let quiet = ServiceBuilder::new()
        .layer(ServerTimingLayer::new())
        .layer(LogLayer::new())
        .service(handler());
    let res = quiet.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(
        res.headers()["server-timing"],
        "total;dur=30.000, db;dur=12.000"
    );
}

#[tokio::test(start_paused = true)]
async fn logging_and_timing_compose_and_the_hook_sees_the_body_time() {
    let ends = Arc::new(Mutex::new(Vec::new()));
    let app = ServiceBuilder::new()
        .layer(LogLayer::new().create_context(true))
        .layer(ServerTimingLayer::new().on_body_end({
            let ends = Arc::clone(&ends);
            move |end: BodyEnd| ends.lock().unwrap().push(end)
        }))
        .service(handler());
    let res = app.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(
        res.headers()["server-timing"],
        "total;dur=30.000, db;dur=12.000"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
    let ends = ends.lock().unwrap();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].stream, StreamEnd::Complete);
    assert_eq!(ends[0].headers, Duration::from_millis(30));
    assert_eq!(
        ends[0].duration,
        Duration::from_millis(50),
        "the body was read 20ms later"
    );
}

#[cfg(feature = "catch-panic")]
#[tokio::test(start_paused = true)]
async fn panic_recovery_inside_reports_its_own_time_when_asked() {
    use middleware_std::catch_panic::CatchPanicLayer;

    let app = ServiceBuilder::new()
        .layer(ServerTimingLayer::new().per_layer_times(true))
        .layer(CatchPanicLayer::new())
        .service(handler());
    let res = app.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(
        res.headers()["server-timing"],
        "total;dur=30.000, db;dur=12.000, mw.catch_panic;dur=0.000"
    );

    let panics = ServiceBuilder::new()
        .layer(ServerTimingLayer::new().per_layer_times(true))
        .layer(CatchPanicLayer::new())
        .service(service_fn(|_: Request<String>| async {
            panic!("handler bug");
            #[allow(unreachable_code)]
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let res = panics.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    let timing = res.headers()["server-timing"].to_str().unwrap();
    assert!(timing.contains(", mw.catch_panic;dur="), "{timing}");

    let quiet = ServiceBuilder::new()
        .layer(ServerTimingLayer::new())
        .layer(CatchPanicLayer::new())
        .service(handler());
    let res = quiet.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(
        res.headers()["server-timing"],
        "total;dur=30.000, db;dur=12.000"
    );
}
