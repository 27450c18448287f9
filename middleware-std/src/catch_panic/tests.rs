//! Tests of the panic-recovery layer: a panic at each site, the log event, the responder.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll, Waker},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use middleware_core::{
    CancelCause, Context, Renderer, RequestExt, RequestId, testing::Conformance,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_layer::Layer;
use tower_service::Service;
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::test_helpers::plain;
use middleware_core::testing::allocations_per_request;

/// `ProblemDetails::fallback`'s body: no request id, nothing of the application's renderer.
const FIXED_500: &str = r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#;

const PROBLEM_500: &str =
    r#"{"type":"about:blank","title":"Internal Server Error","status":500,"request_id":"req-1"}"#;

#[tokio::test]
async fn panic_in_call_becomes_500() {
    let (events, _guard) = capture();
    let res = CatchPanicLayer::new()
        .layer(Site::Call)
        .oneshot(with_id())
        .await
        .unwrap();
    assert_500_without_payload(res).await;
    assert_logged_once(&events, "call");
}

#[tokio::test]
async fn panic_in_future_becomes_500_at_the_first_poll() {
    let (events, _guard) = capture();
    let res = CatchPanicLayer::new()
        .layer(Site::FirstPoll)
        .oneshot(with_id())
        .await
        .unwrap();
    assert_500_without_payload(res).await;
    assert_logged_once(&events, "response_future");
}

#[tokio::test]
async fn panic_in_future_becomes_500_at_a_later_poll() {
    let (events, _guard) = capture();
    let res = CatchPanicLayer::new()
        .layer(Site::LaterPoll)
        .oneshot(with_id())
        .await
        .unwrap();
    assert_500_without_payload(res).await;
    assert_logged_once(&events, "response_future");
}

#[tokio::test]
async fn panic_in_poll_ready_answers_500_without_calling_the_inner_service() {
    let (events, _guard) = capture();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = CatchPanicLayer::new().layer(PanicsWhenReady {
        panics_left: 1,
        calls: Arc::clone(&calls),
    });
    let res = svc.ready().await.unwrap().call(with_id()).await.unwrap();
    assert_500_without_payload(res).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the inner service was called"
    );
    assert_logged_once(&events, "poll_ready");
    // The service stays usable: the next `poll_ready` asks the inner service again.
    let res = svc.ready().await.unwrap().call(with_id()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A clone does not inherit a caught `poll_ready` panic.
    let mut svc = CatchPanicLayer::new().layer(PanicsWhenReady {
        panics_left: 1,
        calls: Arc::clone(&calls),
    });
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    assert!(format!("{svc:?}").contains("ready_panic: Some"));
    assert!(format!("{:?}", svc.clone()).contains("ready_panic: None"));
}

#[tokio::test]
async fn panic_while_the_body_streams_fails_the_stream_for_good() {
    let (events, _guard) = capture();
    let res = CatchPanicLayer::new()
        .layer(Site::Body)
        .oneshot(with_id())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the head was already sent");
    let mut body = pin!(res.into_body());
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first chunk");
    let err = body.frame().await.unwrap().unwrap_err();
    assert!(err.is::<PanicError>(), "{err:?}");
    assert_eq!(err.to_string(), "response body panicked");
    assert!(!err.to_string().contains("hunter2"));
    for _ in 0..3 {
        assert!(!body.is_end_stream(), "a cut body looks complete");
        let again = body.frame().await.expect("a clean end after a panic");
        assert!(again.unwrap_err().is::<PanicError>());
    }
    assert_logged_once(&events, "response_body");
}

#[tokio::test]
async fn an_inner_body_error_is_never_followed_by_a_clean_end() {
    let res = CatchPanicLayer::new()
        .layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(FailsOnce::default()))
        }))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    let mut body = pin!(res.into_body());
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "inner body failed",
        "the inner error passes through"
    );
    for _ in 0..3 {
        assert!(!body.is_end_stream());
        let again = body.frame().await.expect("a clean end after an error");
        let err = again.unwrap_err();
        assert!(err.is::<BodyFailedError>(), "{err:?}");
        assert_eq!(err.to_string(), "body polled again after it failed");
    }
}

#[tokio::test]
async fn size_hint_end_of_stream_and_default_pass_through() {
    let res = CatchPanicLayer::new()
        .layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::from("four")))
        }))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    let body = res.into_body();
    assert_eq!(body.size_hint().exact(), Some(4));
    assert!(!body.is_end_stream());
    assert_eq!(body.collect().await.unwrap().to_bytes(), "four");

    let empty = CatchPanicBody::<String>::default();
    assert!(empty.is_end_stream());
    assert_eq!(empty.size_hint().exact(), Some(0));
    assert!(empty.collect().await.unwrap().to_bytes().is_empty());
}

#[tokio::test]
async fn a_panicking_error_renderer_ends_in_the_fixed_500() {
    for site in [Site::Call, Site::FirstPoll, Site::LaterPoll] {
        let (events, _guard) = capture();
        let mut req = with_id();
        req.context().insert(Renderer::new(
            |_: &middleware_core::Error, _: &Context| -> Response<Bytes> {
                panic!("the renderer has a bug too")
            },
        ));
        let cx = req.context().clone();
        let res = CatchPanicLayer::new()
            .layer(site)
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(body_string(res).await, FIXED_500);
        assert_eq!(cx.cause(), Some(CancelCause::Panicked));
        assert_logged_once(&events, site.as_str());
    }
}

#[tokio::test]
async fn a_panicking_custom_responder_ends_in_the_fixed_500() {
    let (events, _guard) = capture();
    let mut req = with_id();
    let cx = req.context().clone();
    let res = CatchPanicLayer::custom(|_: &Panic, _: &Context| -> Response<Bytes> {
        panic!("the responder has a bug too")
    })
    .layer(Site::Call)
    .oneshot(req)
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_string(res).await, FIXED_500);
    assert_eq!(cx.cause(), Some(CancelCause::Panicked));
    assert_logged_once(&events, "call");
}

#[tokio::test(start_paused = true)]
async fn the_layer_records_its_own_time_only_when_asked() {
    let (_events, _guard) = capture();
    for site in [Site::Call, Site::FirstPoll, Site::Body] {
        let mut req = with_id();
        req.context().request_layer_times();
        let cx = req.context().clone();
        let res = CatchPanicLayer::new()
            .layer(site)
            .oneshot(req)
            .await
            .unwrap();
        drop(res);
        let names: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(names, ["mw.catch_panic"], "{site:?}");

        let mut req = with_id();
        let cx = req.context().clone();
        drop(
            CatchPanicLayer::new()
                .layer(site)
                .oneshot(req)
                .await
                .unwrap(),
        );
        assert!(cx.marks().is_empty(), "{site:?}: recorded unasked");
    }
}

#[tokio::test]
async fn a_caught_panic_cancels_the_context_with_panicked_at_every_site() {
    let (_events, _guard) = capture();
    for site in [Site::Call, Site::FirstPoll, Site::LaterPoll, Site::Body] {
        let req = with_id();
        let cx = req.try_context().unwrap().clone();
        let res = CatchPanicLayer::new()
            .layer(site)
            .oneshot(req)
            .await
            .unwrap();
        // Drain the body: the body site panics while streaming.
        let _ = res.into_body().collect().await;
        assert_eq!(cx.cause(), Some(CancelCause::Panicked), "{site:?}");
    }
    // A request that does not panic is not cancelled by the layer.
    let req = with_id();
    let cx = req.try_context().unwrap().clone();
    let res = CatchPanicLayer::new()
        .layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }))
        .oneshot(req)
        .await
        .unwrap();
    let _ = res.into_body().collect().await;
    assert_eq!(cx.cause(), None);
}

/// The layers inside panic recovery see why the request ended: a timeout's future, dropped
/// because the future it wraps panicked, keeps the cause `panicked` instead of reporting
/// `dropped`.
#[cfg(feature = "timeout")]
#[tokio::test]
async fn a_timeout_inside_keeps_the_panicked_cause() {
    let (_events, _guard) = capture();
    let svc = ServiceBuilder::new()
        .layer(CatchPanicLayer::new())
        .layer(crate::timeout::TimeoutLayer::new(
            std::time::Duration::from_secs(30),
        ))
        .service(Site::LaterPoll);
    let req = with_id();
    let cx = req.try_context().unwrap().clone();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(cx.cause(), Some(CancelCause::Panicked));
}

#[tokio::test]
async fn a_body_that_panics_in_size_hint_or_is_end_stream_is_contained() {
    let (_events, _guard) = capture();
    let res = CatchPanicLayer::new()
        .layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(PanickyBody { polls: 0 }))
        }))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    let body = res.into_body();
    assert_eq!(body.size_hint().exact(), None);
    assert!(!body.is_end_stream());
    let err = body.collect().await.unwrap_err();
    assert!(err.is::<PanicError>());
}

#[tokio::test]
async fn the_location_is_logged_when_the_hook_is_installed() {
    install_panic_hook();
    install_panic_hook(); // idempotent
    let (events, _guard) = capture();
    CatchPanicLayer::new()
        .layer(Site::FirstPoll)
        .oneshot(with_id())
        .await
        .unwrap();
    let events = events.lock().unwrap();
    let location = &events[0]["panic.location"];
    assert!(location.contains("catch_panic/tests.rs:"), "{location}");
}

#[tokio::test]
async fn a_custom_responder_sees_the_panic_and_the_context() {
    let (_events, _guard) = capture();
    let res = CatchPanicLayer::custom(|panic: &Panic, cx: &Context| {
        let text = format!(
            "{} at {} for {}",
            panic.message().unwrap_or("?"),
            panic.site(),
            cx.request_id().map_or("-", RequestId::as_str)
        );
        let mut res = Response::new(Bytes::from(text));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        res
    })
    .layer(Site::Call)
    .oneshot(with_id())
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body_string(res).await,
        "db password is hunter2 at call for req-1"
    );
}

#[tokio::test]
async fn without_a_context_the_response_has_no_request_id() {
    let (_events, _guard) = capture();
    let res = CatchPanic::new(Site::FirstPoll)
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body_string(res).await,
        r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#
    );
}

#[tokio::test]
async fn non_string_payloads_and_hostile_messages_are_logged_safely() {
    let (events, _guard) = capture();
    let svc = CatchPanicLayer::new().layer(service_fn(|req: Request<String>| async move {
        if req.body() == "struct" {
            std::panic::panic_any(42_u32);
        }
        panic!("forged\nERROR fake line\r\n\u{1b}[31m");
        #[allow(unreachable_code)]
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let res = svc
        .clone()
        .oneshot(Request::new(String::from("struct")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    svc.oneshot(Request::new(String::new())).await.unwrap();
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["panic.message"], r#""<non-string payload>""#);
    let forged = &events[1]["panic.message"];
    assert!(!forged.contains('\n') && !forged.contains('\r') && !forged.contains('\u{1b}'));
    assert!(forged.contains(r"forged\nERROR"), "{forged}");
}

#[tokio::test]
async fn inner_responses_and_errors_pass_through() {
    let res = CatchPanicLayer::new()
        .layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::from("fine")))
        }))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_string(res).await, "fine");
    Conformance::new(CatchPanicLayer::new()).run().await;
    Conformance::new(CatchPanicLayer::custom(|_: &Panic, _: &Context| {
        Response::new(Bytes::new())
    }))
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_panics_at_every_site_keep_the_process_up() {
    let (_events, _guard) = capture();
    let mut tasks = Vec::new();
    for round in 0..8 {
        for site in [Site::Call, Site::FirstPoll, Site::LaterPoll, Site::Body] {
            tasks.push(tokio::spawn(async move {
                let svc = ServiceBuilder::new()
                    .layer(CatchPanicLayer::new())
                    .service(site);
                let res = svc.oneshot(with_id()).await.unwrap();
                let status = res.status();
                let body = res.into_body().collect().await;
                (round, site, status, body.is_err())
            }));
        }
        tasks.push(tokio::spawn(async move {
            let mut svc = CatchPanicLayer::new().layer(PanicsWhenReady {
                panics_left: 1,
                calls: Arc::new(AtomicUsize::new(0)),
            });
            let res = svc.ready().await.unwrap().call(with_id()).await.unwrap();
            (round, Site::Call, res.status(), false)
        }));
    }
    for task in tasks {
        let (round, site, status, body_failed) = task.await.unwrap();
        if site == Site::Body {
            assert_eq!(status, StatusCode::OK, "round {round}");
            assert!(body_failed, "round {round}");
        } else {
            assert_eq!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{round} {site:?}"
            );
        }
    }
}

#[test]
fn a_request_that_does_not_panic_allocates_nothing() {
    let inner = || {
        service_fn(|_: Request<String>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
        })
    };
    for make in [plain as fn() -> Request<String>, with_id] {
        let base = allocations_per_request(inner(), make);
        let svc = CatchPanicLayer::new().layer(inner());
        assert_eq!(allocations_per_request(svc, make) - base, 0);
    }
}

#[test]
fn debug_output_names_the_parts() {
    let svc = CatchPanicLayer::custom(|_: &Panic, _: &Context| Response::new(Bytes::new()))
        .layer(Site::Call);
    let debug = format!("{svc:?}");
    assert!(debug.starts_with("CatchPanic {"), "{debug}");
    assert!(debug.contains("responder: \""), "{debug}");
    let panic = Panic::new(Box::new("boom"), PanicSite::Call);
    assert_eq!(
        format!("{panic:?}"),
        r#"Panic { message: Some("boom"), location: None, site: Call, .. }"#
    );
    assert_eq!(format!("{:?}", PanicError(())), "PanicError");
}

// ----- fixtures ------------------------------------------------------------------------------

/// An inner service that panics at one site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Site {
    Call,
    FirstPoll,
    LaterPoll,
    Body,
}

impl Site {
    /// The `panic.site` this site's panic is logged with.
    const fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::FirstPoll | Self::LaterPoll => "response_future",
            Self::Body => "response_body",
        }
    }
}

impl Service<Request<String>> for Site {
    type Response = Response<PanickyBody>;
    type Error = Infallible;
    type Future = SiteFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<String>) -> SiteFuture {
        assert!(*self != Self::Call, "db password is hunter2");
        SiteFuture {
            site: *self,
            polls: 0,
        }
    }
}

struct SiteFuture {
    site: Site,
    polls: u32,
}

impl Future for SiteFuture {
    type Output = Result<Response<PanickyBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.polls += 1;
        match (self.site, self.polls) {
            (Site::FirstPoll, _) | (Site::LaterPoll, 3..) => panic!("db password is hunter2"),
            (Site::LaterPoll, _) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Ready(Ok(Response::new(PanickyBody { polls: 0 }))),
        }
    }
}

/// Fails once, then ends cleanly if polled again (what the wrapper must not pass on).
#[derive(Default)]
struct FailsOnce {
    failed: bool,
}

impl Body for FailsOnce {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        self.failed = true;
        Poll::Ready(Some(Err(std::io::Error::other("inner body failed"))))
    }
}

/// Yields one chunk, then panics; also panics in `size_hint` and `is_end_stream`.
struct PanickyBody {
    polls: u32,
}

impl Body for PanickyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polls += 1;
        assert!(self.polls < 2, "db password is hunter2");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first chunk")))))
    }

    fn is_end_stream(&self) -> bool {
        panic!("is_end_stream panicked")
    }

    fn size_hint(&self) -> http_body::SizeHint {
        panic!("size_hint panicked")
    }
}

/// Panics in `poll_ready` `panics_left` times, then works.
#[derive(Clone, Debug)]
struct PanicsWhenReady {
    panics_left: u32,
    calls: Arc<AtomicUsize>,
}

impl Service<Request<String>> for PanicsWhenReady {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        if self.panics_left > 0 {
            self.panics_left -= 1;
            panic!("poll_ready: db password is hunter2");
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(String::new())))
    }
}

fn with_id() -> Request<String> {
    let mut req = Request::new(String::new());
    req.context()
        .set_request_id(RequestId::try_from("req-1").unwrap())
        .unwrap();
    req
}

async fn assert_500_without_payload<B>(res: Response<B>)
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(body_string(res).await, PROBLEM_500);
}

async fn body_string<B>(res: Response<B>) -> String
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

type Events = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// Captures the events of this thread (current-thread runtimes only).
///
/// Every test that panics calls it, even when it reads no event: tracing caches a callsite's
/// interest when the callsite first registers, computed from the subscribers alive at that
/// moment, so a first registration while no test holds a subscriber would cache "never" and
/// race with the tests that do.
fn capture() -> (Events, tracing::subscriber::DefaultGuard) {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&events)));
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (events, guard)
}

fn assert_logged_once(events: &Events, site: &str) {
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["message"], "request panicked");
    assert_eq!(event["request_id"], "req-1");
    assert_eq!(event["panic.site"], site);
    assert!(event["panic.message"].contains("hunter2"), "{event:?}");
    assert!(event.contains_key("panic.location"));
}

struct Capture(Events);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(BTreeMap<String, String>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
        }
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}
