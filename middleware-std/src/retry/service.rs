//! [`Retry`] and its [`ResponseFuture`].

use std::{
    fmt,
    future::Future,
    mem,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
    time::{Duration, SystemTime},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep};
use tower_service::Service;

use super::{RetryLayer, RetryPolicy, backoff::retry_after, layer::Config};
use crate::{Context, DropGuard, RequestExt};

/// The service made by [`RetryLayer`]. See the [module docs](super) for an example.
pub struct Retry<S, P = super::DefaultRetryPolicy> {
    inner: S,
    policy: P,
    config: Config,
}

impl<S> Retry<S> {
    /// Wraps `inner` with the defaults of [`RetryLayer::new`].
    pub fn new(inner: S) -> Self {
        Self::from_layer(inner, RetryLayer::new())
    }

    /// The layer with the defaults of [`RetryLayer::new`].
    pub fn layer() -> RetryLayer {
        RetryLayer::new()
    }
}

impl<S, P> Retry<S, P> {
    pub(crate) fn from_layer(inner: S, layer: RetryLayer<P>) -> Self {
        Self {
            inner,
            policy: layer.policy,
            config: layer.config,
        }
    }

    define_inner_service_accessors!();
}

impl<S: Clone, P: Clone> Clone for Retry<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Retry<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Retry))
            .field("inner", &self.inner)
            .field("policy", &std::any::type_name::<P>())
            .field("config", &self.config)
            .finish()
    }
}

impl<S, P, B, RB> Service<Request<B>> for Retry<S, P>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    P: RetryPolicy<B, RB, S::Error> + Clone,
    B: Clone,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, P>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        self.config.budget.deposit();
        let parent = req.context().clone();
        // Keep a copy only of a request that may be retried (and of its body: `B: Clone`).
        let template = (self.config.max_attempts > 1 && self.policy.is_retryable(&req))
            .then(|| copy_for_retries(&req, self.policy.reads_extensions()));
        let scope = parent.child();
        let guard = scope.drop_guard();
        *req.context() = scope;
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);
        let future = service.call(req);
        ResponseFuture {
            state: State::Calling { future },
            service,
            template,
            parent,
            guard,
            attempt: 1,
            policy: self.policy.clone(),
            config: self.config.clone(),
        }
    }
}

/// The copy of `req` the retries are made from. Each attempt runs in a scope of its own, so the
/// copy's context is never sent: when it is the request's only extension (a handler's call,
/// carrying its context and nothing else) and the policy does not read extensions, the copy is
/// made without the extension map (three allocations: the map, its table, the context's box),
/// which only a retry then makes.
fn copy_for_retries<B: Clone>(req: &Request<B>, policy_reads_extensions: bool) -> Request<B> {
    if policy_reads_extensions || req.extensions().len() != 1 || req.try_context().is_none() {
        return req.clone();
    }
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

pin_project! {
    /// The response future of [`Retry`].
    pub struct ResponseFuture<S, B, P>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future>,
        // The service of the attempts: made ready again before each retry.
        service: S,
        // A copy of the request, for the retries; `None` when it may not be retried.
        template: Option<Request<B>>,
        // The caller's scope; each attempt runs in a child of it.
        parent: Context,
        // Cancels the current attempt's scope with `Dropped` if this future is dropped mid-way.
        guard: DropGuard,
        attempt: u32,
        policy: P,
        config: Config,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        Waiting { #[pin] sleep: Sleep },
        Ready,
    }
}

impl<S, B, P> fmt::Debug for ResponseFuture<S, B, P>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("attempt", &self.attempt)
            .field("parent", &self.parent)
            .finish_non_exhaustive()
    }
}

/// Why an attempt's outcome is the answer (the `decision` field of the attempt's event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Retry(Duration),
    Done,
    NotRetryable,
    Attempts,
    Deadline,
    RetryAfterTooLong,
    Budget,
    Cancelled,
}

impl Decision {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Retry(_) => "retry",
            Self::Done => "done",
            Self::NotRetryable => "not-retryable",
            Self::Attempts => "attempts-exhausted",
            Self::Deadline => "deadline",
            Self::RetryAfterTooLong => "retry-after-too-long",
            Self::Budget => "budget-exhausted",
            Self::Cancelled => "cancelled",
        }
    }
}

impl<S, B, P, RB> Future for ResponseFuture<S, B, P>
where
    S: Service<Request<B>, Response = Response<RB>>,
    P: RetryPolicy<B, RB, S::Error>,
    B: Clone,
{
    type Output = Result<Response<RB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let outcome = ready!(future.poll(cx));
                    this.guard.disarm();
                    let decision = decide(
                        this.template.as_ref(),
                        *this.attempt,
                        this.policy,
                        this.config,
                        this.parent,
                        outcome.as_ref(),
                    );
                    log_attempt(*this.attempt, this.parent, outcome.as_ref(), decision);
                    let Decision::Retry(delay) = decision else {
                        return Poll::Ready(outcome);
                    };
                    drop(outcome);
                    this.state.set(State::Waiting {
                        sleep: sleep(delay),
                    });
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    ready!(this.service.poll_ready(cx))?;
                    let mut req = this
                        .template
                        .clone()
                        .expect("only a request with a copy is retried");
                    let scope = this.parent.child();
                    *this.guard = scope.drop_guard();
                    // Inserted, not assigned through `context()`: a copy made without its
                    // context would otherwise make one only to replace it.
                    req.extensions_mut().insert(scope);
                    *this.attempt += 1;
                    let future = this.service.call(req);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

/// What to do after attempt `attempt` ended with `outcome`.
fn decide<B, RB, E, P: RetryPolicy<B, RB, E>>(
    template: Option<&Request<B>>,
    attempt: u32,
    policy: &P,
    config: &Config,
    parent: &Context,
    outcome: Result<&Response<RB>, &E>,
) -> Decision {
    let Some(request) = template else {
        return Decision::NotRetryable;
    };
    if !policy.should_retry(request, outcome) {
        return Decision::Done;
    }
    if attempt >= config.max_attempts {
        return Decision::Attempts;
    }
    if parent.is_cancelled() {
        return Decision::Cancelled;
    }
    let mut delay = config.backoff.delay(attempt);
    let asked = outcome
        .ok()
        .and_then(|res| retry_after(res.headers(), SystemTime::now()));
    if let Some(asked) = asked {
        if parent.deadline().is_none() && asked > config.max_retry_after {
            return Decision::RetryAfterTooLong;
        }
        delay = delay.max(asked);
    }
    // Never past the caller's deadline: the retry must start with time left.
    if parent.remaining().is_some_and(|left| delay >= left) {
        return Decision::Deadline;
    }
    if !config.budget.withdraw() {
        return Decision::Budget;
    }
    Decision::Retry(delay)
}

/// One event per attempt, with its number and what came of it.
fn log_attempt<RB, E>(
    attempt: u32,
    parent: &Context,
    outcome: Result<&Response<RB>, &E>,
    decision: Decision,
) {
    let status = outcome.ok().map(|res| res.status().as_u16());
    let request_id = parent.request_id().map(crate::RequestId::as_str);
    let delay_ms = match decision {
        Decision::Retry(delay) => Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
        _ => None,
    };
    // tracing fixes an event's level at its call site: the fields are written once, here, for
    // the two levels (a `None` delay records nothing).
    macro_rules! attempt_event {
        ($level:expr) => {
            tracing::event!(
                target: "middleware_std::retry",
                $level,
                attempt,
                request_id,
                status,
                error = outcome.is_err(),
                decision = decision.as_str(),
                delay_ms,
                "outbound attempt"
            )
        };
    }
    // A first attempt that settled the call is routine.
    if attempt == 1 && matches!(decision, Decision::Done | Decision::NotRetryable) {
        attempt_event!(tracing::Level::DEBUG);
    } else {
        attempt_event!(tracing::Level::INFO);
    }
}

// ----- stack introspection -----

impl<S: middleware_core::Describe, P> middleware_core::Describe for Retry<S, P> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.config.describe::<P>(description);
        self.inner.describe(description);
    }
}
