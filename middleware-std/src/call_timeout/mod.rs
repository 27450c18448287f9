//! A per-call deadline for outbound requests, run in a child scope of the caller's context.
//!
//! [`CallTimeoutLayer`] sits in front of a *client* service (hyper-util's legacy `Client`, a
//! tonic channel, any `Service<http::Request<B>>`). Each call gets its own
//! [child scope](crate::Context::child_with_timeout) of the request's [`Context`]: its deadline is
//! `min(cap, the caller's remaining budget)`, and the outbound request carries that child in its
//! extensions, so layers and adapters below (deadline propagation, drop guards, the client's own
//! middleware) see the call's scope, not the caller's:
//!
//! - the caller's own deadline is **never shortened**: a 100 ms cap under a 10 s request budget
//!   leaves the request with its 10 s;
//! - when the call runs out of time, the child is cancelled with
//!   [`CancelCause::Deadline`], the inner future is dropped and the
//!   call fails with a [`CallTimeoutError`] (boxed into [`BoxError`], like tower's `Timeout`:
//!   a client answers with errors, not made-up responses); the caller's scope is untouched;
//! - when the call future is **dropped** before it finishes (a `select!` lost, the caller gave
//!   up), the child is cancelled with [`CancelCause::Dropped`]:
//!   work spawned on the call's behalf stops, the request goes on.
//!
//! A request without a context gets one (the caller's scope, with no deadline) before the child
//! is made, so the cap always applies.
//!
//! **The tie rule.** Each poll polls the inner future first: a response that is ready wins,
//! even if the deadline passed in the same instant. A call whose scope has no time left at all
//! (the caller's budget is spent) is not sent: it fails at once, and the inner service keeps its
//! readiness for the next call.
//!
//! **Timers.** The deadline is a `tokio::time::Sleep`: calls need a tokio runtime with its time
//! driver (as tower's `Timeout` does), and a paused test clock drives it.
//!
//! **What it covers.** The call until its response head. The response body streams under the
//! caller's scope: bound it with the caller's deadline, or with a body deadline on the client.
//!
//! # How it differs from tower's `Timeout` and `PropagateDeadlineLayer`
//!
//! `tower::timeout::Timeout` knows nothing of the request's budget: a 1 s cap under 100 ms left
//! waits 1 s. [`PropagateDeadlineLayer`](crate::timeout::PropagateDeadlineLayer) (feature
//! `timeout`) stamps the remaining budget on the outbound request; put it *inside* this layer so
//! that it stamps the call's budget, `min(cap, remaining)`.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::{convert::Infallible, time::Duration};
//!
//! use http::{Request, Response};
//! use middleware_std::{CancelCause, Context, RequestExt, call_timeout::{CallTimeoutError, CallTimeoutLayer}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // An upstream that answers after 1 s, and reports the scope it ran in.
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let upstream = service_fn(move |req: Request<()>| {
//!     tx.send(req.try_context().cloned()).unwrap();
//!     async move {
//!         tokio::time::sleep(Duration::from_secs(1)).await;
//!         Ok::<_, Infallible>(Response::new(()))
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .layer(CallTimeoutLayer::new(Duration::from_millis(100)))
//!     .service(upstream);
//!
//! // The inbound request's context, with a 10 s budget.
//! let request = Context::new();
//! request.set_timeout(Duration::from_secs(10));
//! let mut call = Request::new(());
//! call.extensions_mut().insert(request.clone());
//!
//! let err = client.oneshot(call).await.unwrap_err();
//! assert!(err.downcast_ref::<CallTimeoutError>().is_some());
//!
//! let scope = rx.recv().await.unwrap().unwrap();
//! assert_eq!(scope.cause(), Some(CancelCause::Deadline), "the call's scope expired");
//! assert_eq!(request.cause(), None, "the caller's did not");
//! assert!(request.remaining().unwrap() > Duration::from_secs(9), "nor was it shortened");
//! # }
//! ```

use std::{
    fmt,
    future::Future,
    mem,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
    time::Duration,
};

use http::Request;
use pin_project_lite::pin_project;
use tokio::time::{Instant as TokioInstant, Sleep, sleep_until};
use tower_layer::Layer;
use tower_service::Service;

use crate::{BoxError, CancelCause, Context, DropGuard, RequestExt};

/// Runs each outbound call in a child scope whose deadline is `min(cap, remaining budget)`.
///
/// See the [module docs](self) for an example.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct CallTimeoutLayer {
    cap: Duration,
}

impl CallTimeoutLayer {
    /// A cap of `cap` per call (the caller's remaining budget may make it shorter).
    pub const fn new(cap: Duration) -> Self {
        Self { cap }
    }

    /// The cap per call.
    #[must_use]
    pub const fn cap(&self) -> Duration {
        self.cap
    }
}

impl<S> Layer<S> for CallTimeoutLayer {
    type Service = CallTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallTimeout::new(inner, self.cap)
    }
}

/// The service made by [`CallTimeoutLayer`]. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct CallTimeout<S> {
    inner: S,
    cap: Duration,
}

impl<S> CallTimeout<S> {
    /// Wraps `inner` with a per-call cap of `cap`.
    pub const fn new(inner: S, cap: Duration) -> Self {
        Self { inner, cap }
    }

    /// The layer with a per-call cap of `cap`.
    pub const fn layer(cap: Duration) -> CallTimeoutLayer {
        CallTimeoutLayer::new(cap)
    }

    define_inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for CallTimeout<S>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let scope = req.context().child_with_timeout(self.cap);
        *req.context() = scope.clone();
        // `child_with_timeout` always sets a deadline; `remaining` is `None` only without one.
        let deadline = scope.deadline();
        if scope.remaining().is_some_and(|left| left.is_zero()) {
            // Nothing left: the call is not sent, and the ready inner service stays ready.
            scope.cancel_with(CancelCause::Deadline);
            return ResponseFuture {
                state: State::Expired {
                    error: Some(CallTimeoutError::new(true)),
                },
                scope: None,
            };
        }
        let clone = self.inner.clone();
        let future = mem::replace(&mut self.inner, clone).call(req);
        let sleep = sleep_until(deadline.map_or_else(far_future, TokioInstant::from_std));
        let guard = scope.drop_guard();
        ResponseFuture {
            state: State::Running { future, sleep },
            scope: Some((scope, guard)),
        }
    }
}

/// A deadline nobody reaches (the child always has one; this only keeps `call` total).
fn far_future() -> TokioInstant {
    TokioInstant::now() + Duration::from_secs(86_400 * 365 * 30)
}

pin_project! {
    /// The response future of [`CallTimeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        // The call's scope and the guard that cancels it with `Dropped` if this future is
        // dropped before it finishes; `None` once finished (or when the call was never sent).
        scope: Option<(Context, DropGuard)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F, #[pin] sleep: Sleep },
        Expired { error: Option<CallTimeoutError> },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("scope", &self.scope.as_ref().map(|(scope, _)| scope))
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Expired { error } => Poll::Ready(Err(error
                .take()
                .expect("future polled after completion")
                .into())),
            StateProj::Running { future, sleep } => {
                if let Poll::Ready(result) = future.poll(cx) {
                    if let Some((_, mut guard)) = this.scope.take() {
                        guard.disarm();
                    }
                    return Poll::Ready(result.map_err(Into::into));
                }
                ready!(sleep.poll(cx));
                let (scope, mut guard) = this.scope.take().expect("future polled after completion");
                scope.cancel_with(CancelCause::Deadline);
                guard.disarm();
                Poll::Ready(Err(CallTimeoutError::new(false).into()))
            }
        }
    }
}

/// An outbound call ran out of time: its cap, or the caller's remaining budget.
///
/// Display: "outbound call timed out".
#[derive(Debug)]
pub struct CallTimeoutError {
    not_sent: bool,
}

impl CallTimeoutError {
    const fn new(not_sent: bool) -> Self {
        Self { not_sent }
    }

    /// Whether the call was never sent, because the caller's budget was already spent.
    #[must_use]
    pub const fn is_not_sent(&self) -> bool {
        self.not_sent
    }
}

impl fmt::Display for CallTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outbound call timed out")
    }
}

impl std::error::Error for CallTimeoutError {}

// ----- stack introspection -----

impl middleware_core::Describe for CallTimeoutLayer {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("CallTimeoutLayer")
            .setting("cap", format_args!("{:?}", self.cap));
    }
}

impl<S: middleware_core::Describe> middleware_core::Describe for CallTimeout<S> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        CallTimeoutLayer::new(self.cap).describe(description);
        self.inner.describe(description);
    }
}

#[cfg(test)]
mod tests;
