//! A conformance kit for layer authors (feature `testing`).
//!
//! [`Conformance`] wraps a probe service with your layer and checks the contract every layer
//! of this ecosystem keeps. [`Conformance::run`] checks the service, around a [`Probe`]:
//!
//! 1. **readiness is forwarded**: while the probe is not ready, the layered service is not ready,
//!    and the task is woken when the probe becomes ready (no lost wakeups); `poll_ready` errors
//!    pass through unchanged;
//! 2. **the ready service is the one called**: a clone that was never made ready is never called
//!    (the `mem::replace` rule), the probe is never called without a `poll_ready`, and no handle
//!    is left holding a readiness reservation after the request;
//! 3. **the context survives**: a [`Context`] inserted before the layer reaches the inner service
//!    as the same request's context, with its values;
//! 4. **inner errors pass through** unchanged.
//!
//! [`Conformance::run_bodies`] checks the response body, around a [`BodyProbe`] whose
//! [`ProbeBody`] releases scripted frames one at a time:
//!
//! 5. **streaming is untouched**: data frames and trailers come out in order and unchanged, and
//!    frame 1 reaches the caller before frame 2 is released (no buffering); the body ends when
//!    the inner body ends;
//! 6. **`size_hint` and `is_end_stream` are kept**: the exact size follows the inner body as it
//!    streams, and an empty body reports its end at the head;
//! 7. **an errored body never ends cleanly afterwards**: after the inner body's error, the
//!    layer's own error on a stalled body (a deadline: see [`Conformance::with_stall`]), or the
//!    error a panic-recovering layer makes of a body that panics (the probe body panics once,
//!    then reports its end), later polls never return `None` and `is_end_stream` stays false,
//!    or a cut response would look complete (a layer without panic recovery lets the panic
//!    through, which the kit accepts);
//! 8. **bodiless responses finish at the head**: hyper never polls the body of a response to
//!    `HEAD`, nor of a `204` or `304`, and drops it; the request's context must not be cancelled
//!    with [`CancelCause::Dropped`](crate::CancelCause::Dropped) when that body is dropped
//!    unpolled (it is not a disconnect);
//! 9. **`Default` is passed through**: the layered response body type is `Default`, as the
//!    probe's is, and its default is an empty body. This needs the concrete body type, which a
//!    generic method cannot test for without specialization: the
//!    [`check_conformance!`](crate::check_conformance) macro checks it where it is written.
//!
//! [`check_conformance!`](crate::check_conformance) runs all nine. Failures panic with a message
//! naming the broken rule, so the kit drops into any test. The body checks suit layers that pass
//! bodies through; a layer that rewrites bodies (compression) is outside rules 5 and 6.
//!
//! With the feature `testing-alloc`, the kit also counts heap allocations per request:
//! `allocations_per_request` drives requests through a service in one poll each and returns
//! the exact, per-request count, around a ready inner service, `Bare`; `measure` counts
//! what a closure allocates. A layer's cost is then an exact number a test can assert.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use middleware_core::{HookLayer, check_conformance, testing::Conformance};
//!
//! // `()` is the do-nothing hook; put your own layer here.
//! Conformance::new(HookLayer::new(())).run().await;
//!
//! // Every check, bodies and `Default` included; `with_request` when the layer only lets
//! // some requests through.
//! check_conformance!(
//!     Conformance::new(HookLayer::new(())).with_request(|| {
//!         http::Request::builder()
//!             .header("authorization", "Bearer t")
//!             .body(String::new())
//!             .unwrap()
//!     })
//! )
//! .await;
//! # }
//! ```

use std::{
    fmt,
    future::{Future, poll_fn},
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll, Wake, Waker},
    time::Duration,
};

use tower_layer::Layer;
use tower_service::Service;

use crate::context::{Context, RequestExt};

#[cfg(feature = "testing-alloc")]
mod alloc;
mod body;
mod default_body;
mod probe_body;

#[cfg(feature = "testing-alloc")]
pub use self::alloc::{Allocations, Bare, allocations_per_request, measure, measure_per_request};

#[doc(hidden)]
pub use self::default_body::__private;
pub use self::probe_body::{BodyProbe, ProbeBody};

/// How long one step of the kit may take before it is reported as a hang.
const STEP: Duration = Duration::from_secs(5);

/// The value the kit puts in the context to recognise it downstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeMarker(pub u64);

/// The error the [`Probe`] returns when told to fail; it must come out of the layer unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeError(pub u64);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "probe error {}", self.0)
    }
}

impl std::error::Error for ProbeError {}

#[derive(Default)]
struct ProbeState {
    open: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
    fail_with: Mutex<Option<u64>>,
    fail_ready: Mutex<Option<u64>>,
    /// Handles that returned `Ready` from `poll_ready` and were neither called nor dropped.
    reserved: AtomicIsize,
    calls: AtomicUsize,
    unready_calls: AtomicUsize,
    seen: Mutex<Vec<Option<Context>>>,
}

/// The inner service the kit wraps with the layer under test.
///
/// Every clone tracks its own readiness: `call` on a clone whose `poll_ready` did not return
/// `Ready(Ok)` is recorded as a violation.
pub struct Probe {
    state: Arc<ProbeState>,
    ready: bool,
}

impl Probe {
    fn new() -> Self {
        let state = ProbeState::default();
        state.open.store(true, Ordering::SeqCst);
        Self {
            state: Arc::new(state),
            ready: false,
        }
    }

    fn set_open(&self, open: bool) {
        self.state.open.store(open, Ordering::SeqCst);
        if open {
            for waker in self.state.waiters.lock().expect("probe lock").drain(..) {
                waker.wake();
            }
        }
    }
}

impl Clone for Probe {
    fn clone(&self) -> Self {
        // A clone is a new handle: it must be made ready before it is called.
        Self {
            state: Arc::clone(&self.state),
            ready: false,
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if self.ready {
            self.state.reserved.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A waker that records that it was woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Probe))
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Service<http::Request<String>> for Probe {
    type Response = http::Response<String>;
    type Error = ProbeError;
    type Future = std::future::Ready<Result<Self::Response, ProbeError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), ProbeError>> {
        if let Some(code) = *self.state.fail_ready.lock().expect("probe lock") {
            return Poll::Ready(Err(ProbeError(code)));
        }
        if self.state.open.load(Ordering::SeqCst) {
            if !self.ready {
                self.ready = true;
                self.state.reserved.fetch_add(1, Ordering::SeqCst);
            }
            Poll::Ready(Ok(()))
        } else {
            self.state
                .waiters
                .lock()
                .expect("probe lock")
                .push(cx.waker().clone());
            Poll::Pending
        }
    }

    fn call(&mut self, req: http::Request<String>) -> Self::Future {
        self.state.calls.fetch_add(1, Ordering::SeqCst);
        if std::mem::take(&mut self.ready) {
            self.state.reserved.fetch_sub(1, Ordering::SeqCst);
        } else {
            self.state.unready_calls.fetch_add(1, Ordering::SeqCst);
        }
        self.state
            .seen
            .lock()
            .expect("probe lock")
            .push(req.try_context().cloned());
        let result = match *self.state.fail_with.lock().expect("probe lock") {
            Some(code) => Err(ProbeError(code)),
            None => Ok(http::Response::new(String::from("probe"))),
        };
        std::future::ready(result)
    }
}

/// Runs the conformance checks on a layer. See the [module docs](self).
pub struct Conformance<L> {
    layer: L,
    make_request: Box<dyn Fn() -> http::Request<String> + Send + Sync>,
    stall: Duration,
}

impl<L> fmt::Debug for Conformance<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Conformance))
            .field("layer", &std::any::type_name::<L>())
            .finish_non_exhaustive()
    }
}

impl<L> Conformance<L>
where
    L: Layer<Probe>,
    L::Service: Service<http::Request<String>, Error = ProbeError> + Clone,
    <L::Service as Service<http::Request<String>>>::Response: fmt::Debug,
{
    /// Checks `layer` with plain `GET /` requests.
    #[must_use]
    pub fn new(layer: L) -> Self {
        Self {
            layer,
            make_request: Box::new(|| http::Request::new(String::new())),
            stall: Duration::from_millis(100),
        }
    }

    /// Checks `layer` with requests from `make`: use it when the layer only lets some requests
    /// through (credentials, required headers). The requests must reach the inner service.
    #[must_use]
    pub fn with_request(
        mut self,
        make: impl Fn() -> http::Request<String> + Send + Sync + 'static,
    ) -> Self {
        self.make_request = Box::new(make);
        self
    }

    /// Runs the service checks (rules 1 to 4 of the [module docs](self)); panics on the first
    /// broken rule. [`Conformance::run_bodies`] checks bodies, and
    /// [`check_conformance!`](crate::check_conformance) runs everything.
    ///
    /// # Panics
    ///
    /// When the layer breaks a rule, or a step hangs for more than 5 seconds.
    pub async fn run(self) {
        self.readiness_is_forwarded().await;
        self.the_ready_service_is_called().await;
        self.context_survives().await;
        self.inner_errors_pass_through().await;
    }

    async fn readiness_is_forwarded(&self) {
        let probe = Probe::new();
        probe.set_open(false);
        let mut svc = self.layer.layer(probe.clone());
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = TaskContext::from_waker(&waker);
        assert!(
            svc.poll_ready(&mut cx).is_pending(),
            "readiness is not forwarded: the layered service is ready while the inner service is not"
        );
        probe.set_open(true);
        assert!(
            flag.0.load(Ordering::SeqCst),
            "lost wakeup: the inner service became ready but the task that polled the layered \
             service was not woken (pass the caller's `Context` to the inner `poll_ready`)"
        );
        let ready = step(
            poll_fn(|cx| svc.poll_ready(cx)),
            "poll_ready after the inner service became ready",
        )
        .await;
        assert!(
            ready.is_ok(),
            "poll_ready failed once the inner service was ready"
        );
        let res = step(svc.call((self.make_request)()), "call").await;
        assert!(res.is_ok(), "the request failed: {res:?}");
        assert_eq!(
            probe.state.calls.load(Ordering::SeqCst),
            1,
            "the inner service was not called exactly once"
        );
    }

    async fn the_ready_service_is_called(&self) {
        let probe = Probe::new();
        let mut svc = self.layer.layer(probe.clone());
        for round in 0..3 {
            step(poll_fn(|cx| svc.poll_ready(cx)), "poll_ready")
                .await
                .expect("poll_ready failed");
            // A clone made after `poll_ready` is not ready; the layer must not call it instead.
            let idle_clone = svc.clone();
            let res = step(svc.call((self.make_request)()), "call").await;
            assert!(res.is_ok(), "round {round}: the request failed: {res:?}");
            drop((idle_clone, res));
            assert_eq!(
                probe.state.reserved.load(Ordering::SeqCst),
                0,
                "round {round}: a readiness reservation leaked: the inner service that reported \
                 ready was not the one called (call the ready service, not a fresh clone)"
            );
        }
        assert_eq!(
            probe.state.calls.load(Ordering::SeqCst),
            3,
            "the inner service was not called once per request"
        );
        assert_eq!(
            probe.state.unready_calls.load(Ordering::SeqCst),
            0,
            "the inner service was called without a successful poll_ready: take the ready \
             service with `mem::replace` instead of calling a fresh clone"
        );
    }

    async fn context_survives(&self) {
        let probe = Probe::new();
        let mut svc = self.layer.layer(probe.clone());
        let mut req = (self.make_request)();
        req.context().insert(ProbeMarker(42));
        let sent = req.context().clone();
        step(poll_fn(|cx| svc.poll_ready(cx)), "poll_ready")
            .await
            .expect("poll_ready failed");
        let res = step(svc.call(req), "call").await;
        assert!(res.is_ok(), "the request failed: {res:?}");
        let seen = probe.state.seen.lock().expect("probe lock").pop().flatten();
        let seen = seen.expect("the context did not reach the inner service");
        assert!(
            seen.same_request(&sent),
            "the inner service got a different context: the layer must find the request's context, not create a new one"
        );
        assert_eq!(
            seen.get::<ProbeMarker>(),
            Some(&ProbeMarker(42)),
            "a value inserted before the layer is missing downstream"
        );
    }

    async fn inner_errors_pass_through(&self) {
        let probe = Probe::new();
        *probe.state.fail_with.lock().expect("probe lock") = Some(7);
        let mut svc = self.layer.layer(probe.clone());
        step(poll_fn(|cx| svc.poll_ready(cx)), "poll_ready")
            .await
            .expect("poll_ready failed");
        let res = step(svc.call((self.make_request)()), "call").await;
        match res {
            Err(ProbeError(7)) => {}
            other => panic!("the inner error did not pass through unchanged: {other:?}"),
        }
    }
}

/// Checks `layer` with the default requests: shorthand for `Conformance::new(layer).run()`.
///
/// # Panics
///
/// When the layer breaks a rule; see [`Conformance::run`].
pub async fn assert_conformance<L>(layer: L)
where
    L: Layer<Probe>,
    L::Service: Service<http::Request<String>, Error = ProbeError> + Clone,
    <L::Service as Service<http::Request<String>>>::Response: fmt::Debug,
{
    Conformance::new(layer).run().await;
}

async fn step<F: Future>(future: F, what: &str) -> F::Output {
    let future = pin!(future);
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_elapsed| panic!("`{what}` did not complete within {STEP:?}"))
}

#[cfg(test)]
mod tests {
    //! The kit must catch broken layers, not just pass good ones.

    use std::{future::Future, pin::Pin};

    use super::*;

    #[derive(Clone, Copy, Debug)]
    enum Bug {
        CallsAFreshClone,
        PollsWithANoopWaker,
        SwallowsErrors,
        ReplacesTheContext,
    }

    #[derive(Clone, Copy, Debug)]
    struct Broken(Bug);

    impl<S> Layer<S> for Broken {
        type Service = BrokenService<S>;

        fn layer(&self, inner: S) -> BrokenService<S> {
            BrokenService { inner, bug: self.0 }
        }
    }

    #[derive(Clone, Debug)]
    struct BrokenService<S> {
        inner: S,
        bug: Bug,
    }

    type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

    impl<S> Service<http::Request<String>> for BrokenService<S>
    where
        S: Service<http::Request<String>, Response = http::Response<String>, Error = ProbeError>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
    {
        type Response = http::Response<String>;
        type Error = ProbeError;
        type Future = BoxFuture<Result<http::Response<String>, ProbeError>>;

        fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), ProbeError>> {
            if let Bug::PollsWithANoopWaker = self.bug {
                let mut noop = TaskContext::from_waker(Waker::noop());
                return self.inner.poll_ready(&mut noop);
            }
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, mut req: http::Request<String>) -> Self::Future {
            match self.bug {
                Bug::CallsAFreshClone => {
                    let mut clone = self.inner.clone();
                    Box::pin(async move {
                        poll_fn(|cx| clone.poll_ready(cx)).await?;
                        clone.call(req).await
                    })
                }
                Bug::SwallowsErrors => {
                    let future = self.inner.call(req);
                    Box::pin(async move {
                        Ok(future
                            .await
                            .unwrap_or_else(|_| http::Response::new(String::new())))
                    })
                }
                Bug::ReplacesTheContext => {
                    req.extensions_mut().insert(Context::new());
                    Box::pin(self.inner.call(req))
                }
                Bug::PollsWithANoopWaker => Box::pin(self.inner.call(req)),
            }
        }
    }

    #[tokio::test]
    #[should_panic(expected = "a readiness reservation leaked")]
    async fn catches_a_layer_that_calls_a_fresh_clone() {
        assert_conformance(Broken(Bug::CallsAFreshClone)).await;
    }

    #[tokio::test]
    #[should_panic(expected = "lost wakeup")]
    async fn catches_a_layer_that_loses_wakeups() {
        assert_conformance(Broken(Bug::PollsWithANoopWaker)).await;
    }

    #[tokio::test]
    #[should_panic(expected = "the inner error did not pass through unchanged")]
    async fn catches_a_layer_that_swallows_errors() {
        assert_conformance(Broken(Bug::SwallowsErrors)).await;
    }

    #[tokio::test]
    #[should_panic(expected = "the inner service got a different context")]
    async fn catches_a_layer_that_replaces_the_context() {
        assert_conformance(Broken(Bug::ReplacesTheContext)).await;
    }
}
