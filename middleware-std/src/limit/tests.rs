use std::{
    convert::Infallible,
    future::poll_fn,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use middleware_core::{Context, RequestExt, testing::Conformance};
use tokio::sync::{Semaphore, mpsc};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::BoxError;

#[tokio::test]
async fn the_request_past_the_limit_is_shed_with_503_and_retry_after() {
    let gate = Gate::new();
    let limit = ConcurrencyLimitLayer::new(2);
    let svc = limit.layer(gate.service());
    let a = tokio::spawn(svc.clone().oneshot(Request::new(())));
    let b = tokio::spawn(svc.clone().oneshot(Request::new(())));
    gate.wait_entered(2).await;

    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(
        gate.entered(),
        2,
        "the shed request never reached the service"
    );

    gate.open(2);
    for task in [a, b] {
        let res = task.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        drain(res).await;
    }
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test]
async fn the_place_is_held_until_the_response_body_ends() {
    let limit = ConcurrencyLimitLayer::new(1);
    let (tx, rx) = mpsc::channel(4);
    let body = Arc::new(Mutex::new(Some(ChannelBody(rx))));
    let svc = limit.layer(service_fn(move |_: Request<()>| {
        let body = body.lock().unwrap().take().unwrap();
        async move { Ok::<_, Infallible>(Response::new(body)) }
    }));
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(
        limit.in_flight(),
        1,
        "the head alone does not give the place back"
    );
    assert!(res.body().get_ref().unwrap().holds_permit());
    let mut body = res.into_body();
    tx.send(Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "one"
    );
    assert_eq!(limit.in_flight(), 1);
    drop(tx);
    assert!(body.frame().await.is_none());
    assert_eq!(limit.in_flight(), 0);
    drop(body);
    assert_eq!(limit.in_flight(), 0, "given back once, not twice");
}

#[tokio::test]
async fn a_client_that_drops_the_body_mid_stream_gives_the_place_back() {
    let limit = ConcurrencyLimitLayer::new(1);
    let (tx, rx) = mpsc::channel(4);
    let body = Arc::new(Mutex::new(Some(ChannelBody(rx))));
    let svc = limit.layer(service_fn(move |_: Request<()>| {
        let body = body.lock().unwrap().take().unwrap();
        async move { Ok::<_, Infallible>(Response::new(body)) }
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    tx.send(Bytes::from_static(b"one")).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    assert_eq!(limit.in_flight(), 1);
    drop(body);
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test]
async fn a_body_error_gives_the_place_back() {
    let limit = ConcurrencyLimitLayer::new(1);
    let svc = limit.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(FailingBody))
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let mut body = res.into_body();
    assert_eq!(limit.in_flight(), 1);
    assert!(body.frame().await.unwrap().is_err());
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test]
async fn an_inner_error_gives_the_place_back() {
    let limit = ConcurrencyLimitLayer::new(1);
    let svc = limit.layer(service_fn(|_: Request<()>| async {
        Err::<Response<Full<Bytes>>, BoxError>("boom".into())
    }));
    for _ in 0..3 {
        let err = svc.clone().oneshot(Request::new(())).await.unwrap_err();
        assert_eq!(err.to_string(), "boom");
        assert_eq!(limit.in_flight(), 0);
    }
}

#[tokio::test]
async fn a_panic_inside_gives_the_place_back() {
    let limit = ConcurrencyLimitLayer::new(1);
    let svc = limit.layer(service_fn(|req: Request<()>| async move {
        assert!(req.extensions().get::<u8>().is_some(), "handler panicked");
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    for _ in 0..3 {
        // Each panic gives the only place back: the next request gets in (and panics again).
        let task = tokio::spawn(svc.clone().oneshot(Request::new(())));
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(limit.in_flight(), 0);
    }
}

#[tokio::test]
async fn a_future_dropped_while_running_gives_the_place_back() {
    let gate = Gate::new();
    let limit = ConcurrencyLimitLayer::new(1);
    let svc = limit.layer(gate.service());
    let task = tokio::spawn(svc.oneshot(Request::new(())));
    gate.wait_entered(1).await;
    assert_eq!(limit.in_flight(), 1);
    task.abort();
    let _ = task.await;
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test]
async fn a_waiter_dropped_while_queued_leaves_the_queue() {
    let gate = Gate::new();
    let limit = ConcurrencyLimitLayer::new(1).queue(4, Duration::from_secs(60));
    let svc = limit.layer(gate.service());
    let running = tokio::spawn(svc.clone().oneshot(Request::new(())));
    gate.wait_entered(1).await;
    let queued = tokio::spawn(svc.clone().oneshot(Request::new(())));
    wait_until(|| limit.waiting() == 1).await;
    queued.abort();
    let _ = queued.await;
    assert_eq!(limit.waiting(), 0);
    gate.open(1);
    drain(running.await.unwrap().unwrap()).await;
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(
        gate.entered(),
        1,
        "the abandoned waiter never reached the service"
    );
}

#[tokio::test]
async fn a_bodiless_response_gives_the_place_back_at_the_head() {
    let limit = ConcurrencyLimitLayer::new(1);
    let svc = limit.layer(service_fn(|req: Request<()>| async move {
        let mut res = Response::new(Empty::<Bytes>::new());
        if req.method() == Method::HEAD {
            *res.status_mut() = StatusCode::NO_CONTENT;
        }
        Ok::<_, Infallible>(res)
    }));
    let head = Request::builder().method(Method::HEAD).body(()).unwrap();
    let res = svc.clone().oneshot(head).await.unwrap();
    assert_eq!(limit.in_flight(), 0);
    assert!(!res.body().get_ref().unwrap().holds_permit());
    // Held, unpolled, like hyper does with a bodiless response: the next request gets in.
    let next = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    drop(res);
}

#[tokio::test]
async fn waiters_get_in_in_arrival_order() {
    let limit = ConcurrencyLimitLayer::new(1).queue(16, Duration::from_secs(60));
    let order = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Semaphore::new(0));
    let svc = limit.layer(service_fn({
        let order = Arc::clone(&order);
        let gate = Arc::clone(&gate);
        move |req: Request<()>| {
            let order = Arc::clone(&order);
            let gate = Arc::clone(&gate);
            async move {
                let n = *req.extensions().get::<usize>().unwrap();
                order.lock().unwrap().push(n);
                gate.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        }
    }));
    let mut tasks = Vec::new();
    for n in 0..10usize {
        let mut req = Request::new(());
        req.extensions_mut().insert(n);
        tasks.push(tokio::spawn(svc.clone().oneshot(req)));
        // Each request is queued before the next arrives.
        wait_until(|| limit.waiting() == n).await;
    }
    gate.add_permits(10);
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test]
async fn a_full_queue_answers_at_once_with_the_overflow_status() {
    let gate = Gate::new();
    let limit = ConcurrencyLimitLayer::new(1)
        .queue(1, Duration::from_secs(60))
        .with_overflow_status(StatusCode::TOO_MANY_REQUESTS)
        .retry_after(Duration::from_millis(1500));
    let svc = limit.layer(gate.service());
    let running = tokio::spawn(svc.clone().oneshot(Request::new(())));
    gate.wait_entered(1).await;
    let queued = tokio::spawn(svc.clone().oneshot(Request::new(())));
    wait_until(|| limit.waiting() == 1).await;

    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "2", "rounded up");

    gate.open(2);
    drain(running.await.unwrap().unwrap()).await;
    drain(queued.await.unwrap().unwrap()).await;
    assert_eq!(gate.entered(), 2);
    assert_eq!((limit.in_flight(), limit.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_its_queue_timeout_gets_503() {
    let gate = Gate::new();
    let limit = ConcurrencyLimitLayer::new(1).queue(4, Duration::from_secs(2));
    let svc = limit.layer(gate.service());
    let running = tokio::spawn(svc.clone().oneshot(Request::new(())));
    gate.wait_entered(1).await;
    let start = tokio::time::Instant::now();
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(limit.waiting(), 0);
    gate.open(1);
    drain(running.await.unwrap().unwrap()).await;
    assert_eq!(gate.entered(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_its_requests_deadline_gets_503_and_reports_it() {
    let gate = Gate::new();
    let limit = ConcurrencyLimitLayer::new(1).queue(4, Duration::from_secs(60));
    let svc = limit.layer(gate.service());
    let running = tokio::spawn(svc.clone().oneshot(Request::new(())));
    gate.wait_entered(1).await;

    let mut req = Request::new(());
    let cx = req.context().clone();
    cx.set_timeout(Duration::from_millis(300));
    let start = tokio::time::Instant::now();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    let expiry = cx.expiry().expect("the expiry was reported");
    assert_eq!(expiry.phase(), crate::TimeoutPhase::Ready);
    gate.open(1);
    drain(running.await.unwrap().unwrap()).await;
}

#[tokio::test]
async fn clones_and_every_layered_service_share_one_limit() {
    let gate = Gate::new();
    let limit = ConcurrencyLimitLayer::new(1);
    let first = limit.layer(gate.service());
    let second = limit.layer(gate.service());
    let running = tokio::spawn(first.clone().oneshot(Request::new(())));
    gate.wait_entered(1).await;
    let res = second.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.in_flight(), 1);
    assert_eq!(second.in_flight(), 1);
    gate.open(1);
    drain(running.await.unwrap().unwrap()).await;
    // Another layer value is another limit.
    let other = ConcurrencyLimitLayer::new(1);
    assert_eq!(other.in_flight(), 0);
}

#[tokio::test]
async fn a_builder_after_a_clone_makes_a_new_limit() {
    let limit = ConcurrencyLimitLayer::new(1);
    let kept = limit.clone();
    let changed = limit.queue(2, Duration::from_secs(1));
    assert!(!Arc::ptr_eq(&kept.shared, &changed.shared));
    assert_eq!(changed.max(), 1);
}

#[tokio::test]
async fn the_limit_holds_under_64_concurrent_requests() {
    let limit = ConcurrencyLimitLayer::new(8).queue(64, Duration::from_secs(30));
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let svc = limit.layer(service_fn({
        let (active, peak) = (Arc::clone(&active), Arc::clone(&peak));
        move |_: Request<()>| {
            let (active, peak) = (Arc::clone(&active), Arc::clone(&peak));
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        }
    }));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { drain(svc.oneshot(Request::new(())).await.unwrap()).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert!(peak.load(Ordering::SeqCst) <= 8);
    assert_eq!((limit.in_flight(), limit.waiting()), (0, 0));
}

#[tokio::test]
async fn poll_ready_is_the_inner_services_readiness() {
    let limit = ConcurrencyLimitLayer::new(1);
    let gate = Gate::new();
    let mut svc = limit.layer(gate.service());
    // A full limit does not hold `poll_ready` back: the request is answered instead.
    let running = tokio::spawn(svc.clone().oneshot(Request::new(())));
    gate.wait_entered(1).await;
    poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let res = svc.call(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    gate.open(1);
    drain(running.await.unwrap().unwrap()).await;
}

#[tokio::test(start_paused = true)]
async fn a_waiter_keeps_the_inner_readiness_reservation_and_gives_it_back_when_turned_away() {
    let gate = Gate::new();
    let reserved = Arc::new(AtomicUsize::new(0));
    let limit = ConcurrencyLimitLayer::new(1).queue(1, Duration::from_secs(1));
    let svc = limit.layer(Reserving {
        inner: gate.service(),
        reserved: Arc::clone(&reserved),
        ready: false,
    });
    let running = tokio::spawn(svc.clone().oneshot(Request::new(())));
    gate.wait_entered(1).await;
    assert_eq!(
        reserved.load(Ordering::SeqCst),
        0,
        "the running request used its reservation"
    );

    let mut waiter = svc.clone();
    poll_fn(|cx| waiter.poll_ready(cx)).await.unwrap();
    let future = waiter.call(Request::new(()));
    // The ready handle went into the queue with the request; the one left behind is fresh.
    assert_eq!(reserved.load(Ordering::SeqCst), 1);
    let res = future.await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reserved.load(Ordering::SeqCst),
        0,
        "given back with the rejection"
    );
    drop(waiter);

    gate.open(1);
    drain(running.await.unwrap().unwrap()).await;
    assert_eq!(reserved.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_layer_passes_the_conformance_kit() {
    Conformance::new(ConcurrencyLimitLayer::new(4)).run().await;
    Conformance::new(ConcurrencyLimitLayer::new(1).queue(2, Duration::from_secs(5)))
        .run()
        .await;
}

#[test]
#[should_panic(expected = "admits no request")]
fn a_limit_of_zero_panics() {
    let _ = ConcurrencyLimitLayer::new(0);
}

#[test]
fn debug_shows_the_settings_and_the_counts() {
    let limit = ConcurrencyLimitLayer::new(3).queue(5, Duration::from_secs(1));
    let debug = format!("{limit:?}");
    for part in [
        "ConcurrencyLimitLayer",
        "max: 3",
        "backlog: 5",
        "in_flight: 0",
    ] {
        assert!(debug.contains(part), "{debug}");
    }
    let svc = limit.layer(Probe);
    assert!(format!("{svc:?}").starts_with("ConcurrencyLimit {"));
    let body = PermitBody::<Empty<Bytes>>::default();
    assert_eq!(
        format!("{body:?}"),
        "PermitBody { holds_permit: false, .. }"
    );
    assert!(body.is_end_stream());
}

#[tokio::test]
async fn the_rejection_is_rendered_with_the_requests_context() {
    let gate = Gate::new();
    let limit = ConcurrencyLimitLayer::new(1);
    let svc = limit.layer(gate.service());
    let running = tokio::spawn(svc.clone().oneshot(Request::new(())));
    gate.wait_entered(1).await;
    let mut req = Request::new(());
    let _: &mut Context = req.context();
    let res = svc.clone().oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"status\":503"));
    gate.open(1);
    drain(running.await.unwrap().unwrap()).await;
}

#[tokio::test]
async fn the_limit_records_its_own_time_only_when_layer_times_are_asked_for() {
    let svc = ConcurrencyLimitLayer::new(1).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    }));
    for asked in [false, true] {
        let cx = Context::new();
        if asked {
            cx.request_layer_times();
        }
        let mut req = Request::new(());
        req.extensions_mut().insert(cx.clone());
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let names: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
        let expected: &[&str] = if asked { &["mw.limit"] } else { &[] };
        assert_eq!(names, expected, "asked: {asked}");
    }
}

// Fixtures

/// A handler that counts the requests that entered it and waits at a gate the test opens.
#[derive(Clone)]
struct Gate {
    entered: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Gate {
    fn new() -> Self {
        Self {
            entered: Arc::new(AtomicUsize::new(0)),
            gate: Arc::new(Semaphore::new(0)),
        }
    }

    fn service(
        &self,
    ) -> impl Service<
        Request<()>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let this = self.clone();
        service_fn(move |_: Request<()>| {
            let this = this.clone();
            async move {
                this.entered.fetch_add(1, Ordering::SeqCst);
                this.gate.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        })
    }

    fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }

    async fn wait_entered(&self, n: usize) {
        wait_until(|| self.entered() >= n).await;
    }

    fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

async fn drain<B: Body>(res: Response<B>) -> StatusCode
where
    B::Error: std::fmt::Debug,
{
    let status = res.status();
    res.into_body().collect().await.unwrap();
    status
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
    }
}

struct FailingBody;

impl Body for FailingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(Some(Err("reset".into())))
    }
}

#[derive(Debug, Clone)]
struct Probe;

/// A service whose readiness is a reservation (like tower's `Buffer`): counted from a
/// successful `poll_ready` until `call` or drop.
struct Reserving<S> {
    inner: S,
    reserved: Arc<AtomicUsize>,
    ready: bool,
}

impl<S: Clone> Clone for Reserving<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            reserved: Arc::clone(&self.reserved),
            ready: false,
        }
    }
}

impl<S> Drop for Reserving<S> {
    fn drop(&mut self) {
        if self.ready {
            self.reserved.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl<S, R> Service<R> for Reserving<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        let poll = self.inner.poll_ready(cx);
        if matches!(poll, Poll::Ready(Ok(()))) && !self.ready {
            self.ready = true;
            self.reserved.fetch_add(1, Ordering::SeqCst);
        }
        poll
    }

    fn call(&mut self, req: R) -> S::Future {
        assert!(
            std::mem::take(&mut self.ready),
            "called without a reservation"
        );
        self.reserved.fetch_sub(1, Ordering::SeqCst);
        self.inner.call(req)
    }
}
