use std::{
    convert::Infallible,
    future::poll_fn,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use middleware_core::testing::{Conformance, ProbeError};
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService, util::MapErrLayer};
use tower_layer::Layer;
use tower_service::Service;

use super::*;
use crate::{BoxError, CancelCause, Context, RequestExt};

#[tokio::test(start_paused = true)]
async fn it_opens_after_consecutive_failures_and_refuses_without_touching_the_upstream() {
    let upstream = Upstream::default();
    let breaker = CircuitBreaker::new(BreakerConfig::new().consecutive_failures(3));
    let svc = BreakerLayer::new(breaker.clone()).layer(upstream.service());
    for path in ["/500", "/200", "/500", "/500"] {
        call(&svc, path).await.unwrap();
    }
    assert_eq!(
        breaker.state(""),
        BreakerState::Closed,
        "a success broke the run"
    );
    call(&svc, "/503").await.unwrap();
    assert_eq!(breaker.state(""), BreakerState::Open);
    let before = upstream.calls();
    let err = call(&svc, "/200").await.unwrap_err();
    let err = err.downcast::<BreakerOpenError>().unwrap();
    assert_eq!(err.to_string(), "circuit breaker is open");
    assert_eq!(upstream.calls(), before, "the upstream was not touched");
}

#[tokio::test(start_paused = true)]
async fn it_opens_on_a_failure_rate_once_the_window_has_enough_calls() {
    let upstream = Upstream::default();
    let config =
        BreakerConfig::new()
            .consecutive_failures(0)
            .failure_rate(0.5, 10, Duration::from_secs(10));
    let breaker = CircuitBreaker::new(config);
    let svc = BreakerLayer::new(breaker.clone()).layer(upstream.service());
    for _ in 0..9 {
        call(&svc, "/500").await.unwrap();
    }
    assert_eq!(
        breaker.state(""),
        BreakerState::Closed,
        "9 of 9, but too few calls"
    );
    call(&svc, "/500").await.unwrap();
    assert_eq!(breaker.state(""), BreakerState::Open, "10 of 10");
    // Old failures leave the window.
    let breaker = CircuitBreaker::new(config);
    let svc = BreakerLayer::new(breaker.clone()).layer(upstream.service());
    for _ in 0..9 {
        call(&svc, "/500").await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..9 {
        call(&svc, "/200").await.unwrap();
    }
    call(&svc, "/500").await.unwrap();
    assert_eq!(
        breaker.state(""),
        BreakerState::Closed,
        "1 of 10 in the window"
    );
}

#[tokio::test(start_paused = true)]
async fn exactly_half_of_the_minimum_volume_opens_it() {
    let upstream = Upstream::default();
    let config =
        BreakerConfig::new()
            .consecutive_failures(0)
            .failure_rate(0.5, 10, Duration::from_secs(10));
    let breaker = CircuitBreaker::new(config);
    let svc = BreakerLayer::new(breaker.clone()).layer(upstream.service());
    for i in 0..10 {
        call(&svc, if i % 2 == 0 { "/200" } else { "/500" })
            .await
            .unwrap();
    }
    assert_eq!(breaker.state(""), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_4xx_never_counts_errors_and_5xx_do() {
    let upstream = Upstream::default();
    let breaker = CircuitBreaker::new(BreakerConfig::new().consecutive_failures(2));
    let svc = BreakerLayer::new(breaker.clone()).layer(upstream.service());
    for _ in 0..10 {
        call(&svc, "/404").await.unwrap();
        call(&svc, "/429").await.unwrap();
    }
    assert_eq!(breaker.state(""), BreakerState::Closed);
    call(&svc, "/error").await.unwrap_err();
    call(&svc, "/502").await.unwrap();
    assert_eq!(breaker.state(""), BreakerState::Open);

    // A closure decides otherwise: only errors count.
    let breaker = CircuitBreaker::new(BreakerConfig::new().consecutive_failures(2));
    let svc = BreakerLayer::new(breaker.clone())
        .failure_policy(|outcome: Result<&Response<String>, &BoxError>| outcome.is_err())
        .layer(upstream.service());
    for _ in 0..5 {
        call(&svc, "/500").await.unwrap();
    }
    assert_eq!(breaker.state(""), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_half_open_circuit_lets_a_bounded_number_of_probes_through_and_closes_on_success() {
    let breaker = open_breaker(BreakerConfig::new().probes(2));
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(breaker.state("k"), BreakerState::HalfOpen);
    let first = breaker.ask("k").unwrap();
    let second = breaker.ask("k").unwrap();
    assert!(first.is_probe() && second.is_probe());
    assert!(breaker.ask("k").is_err(), "two probes at most");
    first.report(true);
    assert_eq!(breaker.state("k"), BreakerState::Closed);
    second.report(false); // a probe of a circuit that closed meanwhile counts for nothing
    assert_eq!(breaker.state("k"), BreakerState::Closed);
    assert!(!breaker.ask("k").unwrap().is_probe());
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_it_for_another_cool_down() {
    let breaker = open_breaker(BreakerConfig::new());
    tokio::time::advance(Duration::from_secs(5)).await;
    breaker.ask("k").unwrap().report(false);
    assert_eq!(breaker.state("k"), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(breaker.ask("k").is_err());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(breaker.ask("k").unwrap().is_probe());
}

#[tokio::test(start_paused = true)]
async fn a_probe_of_an_earlier_half_open_period_neither_frees_a_slot_nor_closes_the_circuit() {
    let breaker = open_breaker(BreakerConfig::new().probes(2));
    tokio::time::advance(Duration::from_secs(5)).await;
    let (failed, late) = (breaker.ask("k").unwrap(), breaker.ask("k").unwrap());
    failed.report(false);
    assert_eq!(breaker.state("k"), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(5)).await;
    let _probes = (breaker.ask("k").unwrap(), breaker.ask("k").unwrap());
    assert!(breaker.ask("k").is_err(), "two probes out");
    late.report(true); // the old probe answers at last
    assert_eq!(
        breaker.state("k"),
        BreakerState::HalfOpen,
        "it did not close the circuit"
    );
    assert!(
        breaker.ask("k").is_err(),
        "nor free a slot: still two probes at most"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_frees_its_slot_and_counts_for_nothing() {
    let breaker = open_breaker(BreakerConfig::new());
    tokio::time::advance(Duration::from_secs(5)).await;
    drop(breaker.ask("k").unwrap());
    assert_eq!(breaker.state("k"), BreakerState::HalfOpen);
    let probe = breaker.ask("k").expect("the slot was freed");
    probe.report(true);
    assert_eq!(breaker.state("k"), BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_callers_through_a_half_open_breaker_never_exceed_the_probes() {
    const PROBES: usize = 3;
    let breaker = CircuitBreaker::new(
        BreakerConfig::new()
            .consecutive_failures(1)
            .cool_down(Duration::from_millis(50))
            .probes(u32::try_from(PROBES).unwrap()),
    );
    let entered = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let upstream = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        service_fn(move |req: Request<String>| {
            let fail = req.uri().path() == "/fail";
            entered.fetch_add(1, Ordering::SeqCst);
            let release = Arc::clone(&release);
            async move {
                if !fail {
                    release.acquire().await.unwrap().forget();
                }
                let status = if fail { 500 } else { 200 };
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .body(String::new())
                        .unwrap(),
                )
            }
        })
    };
    let svc = BreakerLayer::new(breaker.clone()).layer(upstream);
    svc.clone().oneshot(request("/fail")).await.unwrap();
    assert_eq!(breaker.state(""), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(60)).await;
    entered.store(0, Ordering::SeqCst);

    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (svc, barrier) = (svc.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                svc.oneshot(request("/probe")).await
            })
        })
        .collect();
    // Every caller has either been refused or is inside the upstream.
    tokio::time::timeout(Duration::from_secs(10), async {
        while entered.load(Ordering::SeqCst) < PROBES {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        entered.load(Ordering::SeqCst),
        PROBES,
        "more probes than configured"
    );
    release.add_permits(64);
    let mut refused = 0;
    let mut answered = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(res) => {
                assert_eq!(res.status(), StatusCode::OK);
                answered += 1;
            }
            Err(err) => {
                assert!(err.is::<BreakerOpenError>());
                refused += 1;
            }
        }
    }
    assert_eq!((answered, refused), (PROBES, 64 - PROBES));
    assert_eq!(breaker.state(""), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_fallback_response_says_so() {
    let upstream = Upstream::default();
    let breaker = CircuitBreaker::new(BreakerConfig::new().consecutive_failures(1));
    let fallback = Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header("retry-after", "5")
        .body(Bytes::from_static(b"come back later"))
        .unwrap();
    let svc = BreakerLayer::new(breaker)
        .fallback_response(fallback)
        .layer(upstream.service());
    let res = call(&svc, "/500").await.unwrap();
    assert!(res.headers().get("x-circuit-breaker").is_none());
    assert!(res.extensions().get::<BreakerFallback>().is_none());
    for _ in 0..2 {
        let res = call(&svc, "/200").await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["x-circuit-breaker"], "open");
        assert_eq!(res.headers()["retry-after"], "5");
        assert!(res.extensions().get::<BreakerFallback>().is_some());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "come back later");
    }
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_circuit_and_hosts_get_their_own_when_asked() {
    let upstream = Upstream::default();
    let breaker = CircuitBreaker::new(BreakerConfig::new().consecutive_failures(2));
    let layer = BreakerLayer::new(breaker.clone()).per_host();
    let (a, b) = (
        layer.layer(upstream.service()),
        layer.clone().layer(upstream.service()),
    );
    call(&a, "http://A.example/500").await.unwrap();
    call(&b, "http://a.example/500").await.unwrap();
    assert_eq!(
        breaker.state("a.example"),
        BreakerState::Open,
        "one circuit, case-blind"
    );
    call(&a, "http://a.example/200").await.unwrap_err();
    call(&b, "http://b.example/200").await.unwrap();
    assert_eq!(breaker.state("b.example"), BreakerState::Closed);
}

#[test]
fn untrusted_keys_never_grow_the_store_past_its_bound() {
    let breaker = CircuitBreaker::with_store(
        MemoryStore::new(BreakerConfig::new().consecutive_failures(1)).max_keys(16),
    );
    for i in 0..10_000 {
        if let Ok(ticket) = breaker.ask(&format!("host-{i}.example")) {
            ticket.report(false);
        }
    }
    // Failing circuits are kept; the rest share the overflow circuit, which opened.
    assert_eq!(breaker.store().len(), 17, "16 and the overflow");
    assert_eq!(breaker.state("*"), BreakerState::Open);
    assert_eq!(breaker.state("host-0.example"), BreakerState::Open);
    assert!(
        breaker.ask("host-99999.example").is_err(),
        "folded into the open overflow"
    );
    let idle = CircuitBreaker::with_store(MemoryStore::new(BreakerConfig::new()).max_keys(4));
    for i in 0..1000 {
        idle.ask(&format!("h{i}")).unwrap().report(true);
    }
    assert!(idle.store().len() <= 4, "{}", idle.store().len());
    assert!(
        idle.ask("fresh").is_ok(),
        "idle circuits were evicted for new keys"
    );
}

#[test]
fn the_unkeyed_circuit_is_kept_apart_from_the_bounded_keys() {
    let breaker = CircuitBreaker::with_store(
        MemoryStore::new(BreakerConfig::new().consecutive_failures(1)).max_keys(2),
    );
    assert!(breaker.store().is_empty());
    breaker.ask("").unwrap().report(false);
    assert_eq!(breaker.state(""), BreakerState::Open);
    assert_eq!(breaker.store().len(), 1);
    // A flood of keys neither evicts nor shares the unkeyed circuit...
    for i in 0..100 {
        if let Ok(ticket) = breaker.ask(&format!("host-{i}.example")) {
            ticket.report(false);
        }
    }
    assert_eq!(
        breaker.store().len(),
        4,
        "the unkeyed, 2 keys and the overflow"
    );
    assert_eq!(breaker.state(""), BreakerState::Open);
    assert!(breaker.ask("").is_err());
    // ...and the unkeyed circuit's failures open no keyed one.
    let fresh = CircuitBreaker::with_store(
        MemoryStore::new(BreakerConfig::new().consecutive_failures(1)).max_keys(2),
    );
    fresh.ask("").unwrap().report(false);
    assert_eq!(fresh.state("*"), BreakerState::Closed);
    assert!(fresh.ask("a.example").is_ok());
}

#[tokio::test(start_paused = true)]
async fn each_call_runs_in_a_child_scope_and_a_dropped_call_cancels_only_it() {
    let request = Context::new();
    let scopes: Arc<Mutex<Vec<Context>>> = Arc::default();
    let upstream = {
        let scopes = Arc::clone(&scopes);
        service_fn(move |req: Request<String>| {
            let scope = req.try_context().unwrap().clone();
            scopes.lock().unwrap().push(scope);
            async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        })
    };
    let breaker = CircuitBreaker::new(BreakerConfig::new());
    let mut svc = BreakerLayer::new(breaker.clone()).layer(upstream);
    poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let mut req = request_with("/", &request);
    req.context();
    let _ = tokio::time::timeout(Duration::from_millis(10), svc.call(req)).await;
    let scope = scopes.lock().unwrap().pop().unwrap();
    assert!(scope.same_request(&request) && !scope.same_scope(&request));
    assert_eq!(scope.cause(), Some(CancelCause::Dropped));
    assert_eq!(request.cause(), None);
}

#[tokio::test(start_paused = true)]
async fn a_store_of_ones_own_holds_the_state_machine() {
    /// Wraps a memory store and records what the breaker asked of it.
    #[derive(Debug)]
    struct Recording(MemoryStore, Mutex<Vec<String>>);
    impl BreakerStore for Recording {
        fn acquire(&self, key: &str, now: Instant) -> Acquired {
            let acquired = self.0.acquire(key, now);
            self.1
                .lock()
                .unwrap()
                .push(format!("acquire {key} {:?}", acquired.permit));
            acquired
        }
        fn release(
            &self,
            key: &str,
            permit: Permit,
            outcome: CallOutcome,
            now: Instant,
        ) -> Option<Transition> {
            self.1
                .lock()
                .unwrap()
                .push(format!("release {key} {permit:?} {outcome:?}"));
            self.0.release(key, permit, outcome, now)
        }
        fn state(&self, key: &str, now: Instant) -> BreakerState {
            self.0.state(key, now)
        }
    }
    let store = Recording(
        MemoryStore::new(BreakerConfig::new().consecutive_failures(1)),
        Mutex::default(),
    );
    let breaker = CircuitBreaker::with_store(store);
    let upstream = Upstream::default();
    let svc = Breaker::new(upstream.service(), breaker.clone());
    call(&svc, "/500").await.unwrap();
    call(&svc, "/200").await.unwrap_err();
    assert_eq!(
        *breaker.store().1.lock().unwrap(),
        [
            "acquire  Some(Permit { probe: false, generation: 0 })",
            "release  Permit { probe: false, generation: 0 } Failure",
            "acquire  None"
        ]
    );
}

#[tokio::test]
async fn conforms() {
    let unbox = MapErrLayer::new(|e: BoxError| *e.downcast::<ProbeError>().expect("inner error"));
    Conformance::new(
        ServiceBuilder::new()
            .layer(unbox)
            .layer(BreakerLayer::new(CircuitBreaker::new(BreakerConfig::new())))
            .into_inner(),
    )
    .run()
    .await;
}

#[test]
fn debug_is_accurate() {
    let layer = BreakerLayer::new(CircuitBreaker::new(BreakerConfig::new())).per_host();
    let text = format!("{layer:?}");
    assert!(
        text.starts_with("BreakerLayer { breaker: CircuitBreaker { store: MemoryStore {"),
        "{text}"
    );
    assert!(
        text.ends_with("fallback: \"error\", per_host: true }"),
        "{text}"
    );
    assert_eq!(BreakerState::HalfOpen.to_string(), "half-open");
    let _ = Instant::now();
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A breaker whose circuit `k` just opened.
fn open_breaker(config: BreakerConfig) -> CircuitBreaker {
    let breaker = CircuitBreaker::new(config.consecutive_failures(1));
    breaker.ask("k").unwrap().report(false);
    assert_eq!(breaker.state("k"), BreakerState::Open);
    breaker
}

fn request(uri: &str) -> Request<String> {
    Request::get(uri).body(String::new()).unwrap()
}

fn request_with(uri: &str, cx: &Context) -> Request<String> {
    let mut req = request(uri);
    req.extensions_mut().insert(cx.clone());
    req
}

async fn call<S>(svc: &S, uri: &str) -> Result<S::Response, S::Error>
where
    S: Service<Request<String>> + Clone,
{
    svc.clone().oneshot(request(uri)).await
}

/// Answers the status named by the path (`/503`), or an error for `/error`.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn service(&self) -> BoxCloneService<Request<String>, Response<String>, BoxError> {
        let calls = Arc::clone(&self.calls);
        BoxCloneService::new(service_fn(move |req: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let path = req.uri().path().trim_start_matches('/').to_owned();
            async move {
                if path == "error" {
                    return Err(BoxError::from("connection refused"));
                }
                let status: u16 = path.parse().unwrap_or(200);
                Ok(Response::builder()
                    .status(status)
                    .body(String::new())
                    .unwrap())
            }
        }))
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

mod model {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Acquire,
        Release(usize, u8),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Acquire),
            3 => (any::<usize>(), 0u8..3).prop_map(|(i, o)| Op::Release(i, o)),
            1 => (0u64..4_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Over any interleaving of calls, outcomes and time: probes out never exceed the bound,
        /// nothing is admitted while open, and the reported transitions form one unbroken chain
        /// from `Closed` (each change is reported exactly once).
        #[test]
        fn the_memory_store_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..200)) {
            let store = MemoryStore::new(
                BreakerConfig::new()
                    .consecutive_failures(3)
                    .failure_rate(0.5, 6, Duration::from_secs(10))
                    .cool_down(Duration::from_secs(5))
                    .probes(2),
            );
            let mut now = Instant::now();
            let mut out: Vec<Permit> = Vec::new();
            let mut generation = 0u64;
            let mut state = BreakerState::Closed;
            let apply = |t: Option<Transition>, state: &mut BreakerState| -> Result<(), TestCaseError> {
                if let Some(t) = t {
                    prop_assert_eq!(t.from, *state, "a broken chain of transitions");
                    prop_assert_ne!(t.from, t.to);
                    *state = t.to;
                }
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Acquire => {
                        let before = store.state("", now);
                        let acquired = store.acquire("", now);
                        apply(acquired.transition, &mut state)?;
                        if before == BreakerState::Open {
                            prop_assert!(acquired.permit.is_none(), "admitted while open");
                        }
                        if let Some(permit) = acquired.permit {
                            generation = generation.max(permit.generation());
                            out.push(permit);
                        }
                    }
                    Op::Release(i, o) if !out.is_empty() => {
                        let permit = out.remove(i % out.len());
                        let outcome = [CallOutcome::Success, CallOutcome::Failure, CallOutcome::Abandoned][usize::from(o)];
                        apply(store.release("", permit, outcome, now), &mut state)?;
                    }
                    Op::Release(..) => {}
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                }
                // Probes of the current half-open period (older ones count for nothing).
                let probes_out = out
                    .iter()
                    .filter(|p| p.is_probe() && p.generation() == generation)
                    .count();
                if state == BreakerState::HalfOpen {
                    prop_assert!(probes_out <= 2, "{} probes out", probes_out);
                }
                let seen = store.state("", now);
                match state {
                    BreakerState::Closed => prop_assert_eq!(seen, BreakerState::Closed),
                    BreakerState::HalfOpen => prop_assert_eq!(seen, BreakerState::HalfOpen),
                    _ => prop_assert_ne!(seen, BreakerState::Closed),
                }
            }
        }
    }
}
