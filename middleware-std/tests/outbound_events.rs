//! The outbound layers' events: one per retry attempt with its number, one per breaker state
//! change, one per refused call. In their own test binary: every test here holds a capturing
//! subscriber, so no test without one can cache "no interest" in these callsites first.
#![allow(missing_docs)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response};
use middleware_std::{
    BoxError, Context, RequestId,
    breaker::{BreakerConfig, BreakerLayer, BreakerState, CircuitBreaker, Transition},
    retry::RetryLayer,
};
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(start_paused = true)]
async fn each_retry_attempt_is_one_event_with_its_number() {
    let (events, _guard) = capture("middleware_std::retry");
    let request = Context::new();
    request.set_timeout(Duration::from_secs(10));
    request
        .set_request_id(RequestId::try_from("req-9").unwrap())
        .unwrap();
    let script = Arc::new(Mutex::new(vec![200, 502, 503]));
    let upstream = service_fn(move |_: Request<String>| {
        let status = script.lock().unwrap().pop().unwrap();
        async move { Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap()) }
    });
    let mut req = Request::new(String::new());
    req.extensions_mut().insert(request);
    RetryLayer::new()
        .layer(upstream)
        .oneshot(req)
        .await
        .unwrap();
    let events = events.lock().unwrap();
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["attempt"].as_str(),
                e["status"].as_str(),
                e["decision"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("1", "503", "retry"),
            ("2", "502", "retry"),
            ("3", "200", "done")
        ]
    );
    assert!(
        events.iter().all(|e| e["request_id"] == "req-9"),
        "{events:?}"
    );
    assert!(events.iter().all(|e| e["message"] == "outbound attempt"));
    assert!(events[..2].iter().all(|e| e.contains_key("delay_ms")));
    assert!(!events[2].contains_key("delay_ms"));
}

#[tokio::test(start_paused = true)]
async fn each_breaker_state_change_is_logged_once_and_observed_by_the_callback() {
    let (events, _guard) = capture("middleware_std::breaker");
    let seen: Arc<Mutex<Vec<(String, Transition)>>> = Arc::default();
    let breaker = CircuitBreaker::new(BreakerConfig::new().consecutive_failures(2))
        .on_state_change({
            let seen = Arc::clone(&seen);
            move |key: &str, t: Transition| seen.lock().unwrap().push((key.to_owned(), t))
        });
    let svc = BreakerLayer::new(breaker.clone()).layer(upstream());
    let call = |path: &'static str| {
        svc.clone()
            .oneshot(Request::get(path).body(String::new()).unwrap())
    };
    for _ in 0..2 {
        call("/500").await.unwrap();
    }
    for _ in 0..5 {
        call("/200").await.unwrap_err();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    call("/200").await.unwrap();
    call("/200").await.unwrap();
    assert_eq!(breaker.state(""), BreakerState::Closed);

    let expected = [
        (BreakerState::Closed, BreakerState::Open),
        (BreakerState::Open, BreakerState::HalfOpen),
        (BreakerState::HalfOpen, BreakerState::Closed),
    ];
    let seen = seen.lock().unwrap();
    let got: Vec<_> = seen.iter().map(|(_, t)| (t.from, t.to)).collect();
    assert_eq!(got, expected);
    assert!(seen.iter().all(|(key, _)| key.is_empty()));

    let events = events.lock().unwrap();
    let changes: Vec<_> = events
        .iter()
        .filter(|e| e["message"] == "circuit breaker state changed")
        .map(|e| (e["breaker_from"].as_str(), e["breaker_state"].as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("closed", "open"),
            ("open", "half-open"),
            ("half-open", "closed")
        ]
    );
    let refusals: Vec<_> = events
        .iter()
        .filter(|e| e["message"] == "call refused by an open circuit breaker")
        .collect();
    assert_eq!(refusals.len(), 5, "each refusal says so");
    assert!(
        refusals
            .iter()
            .all(|e| e["breaker_state"] == "open" && e["breaker_fallback"] == "error")
    );
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Answers the status named by the path (`/503`).
fn upstream() -> BoxCloneService<Request<String>, Response<String>, BoxError> {
    BoxCloneService::new(service_fn(|req: Request<String>| {
        let status: u16 = req.uri().path()[1..].parse().unwrap_or(200);
        async move {
            Ok(Response::builder()
                .status(status)
                .body(String::new())
                .unwrap())
        }
    }))
}

type Events = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// Captures this thread's events of `target` (current-thread runtimes only).
fn capture(target: &'static str) -> (Events, tracing::subscriber::DefaultGuard) {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(Capture(target, Arc::clone(&events)));
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (events, guard)
}

struct Capture(&'static str, Events);

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
        if event.metadata().target() == self.0 {
            let mut fields = Fields(BTreeMap::new());
            event.record(&mut fields);
            self.1.lock().unwrap().push(fields.0);
        }
    }
}
