//! [`Breaker`] and its [`ResponseFuture`].

use std::{
    fmt,
    future::Future,
    mem,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header::HeaderName};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{
    BreakerLayer, BreakerOpenError, BreakerStore, CircuitBreaker, FailurePolicy, MemoryStore,
    OnStateChange, Ticket,
    layer::{DefaultFailurePolicy, Fallback},
};
use crate::{BoxError, DropGuard, RequestExt, ResponseBody};

/// The header a fallback response carries.
const X_CIRCUIT_BREAKER: HeaderName = HeaderName::from_static("x-circuit-breaker");

/// Marks a response as the fallback of an open circuit (in the response's extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerFallback;

/// The service made by [`BreakerLayer`]. See the [module docs](super) for an example.
pub struct Breaker<S, St = MemoryStore, C = (), F = DefaultFailurePolicy> {
    inner: S,
    layer: BreakerLayer<St, C, F>,
}

impl<S, St: BreakerStore, C: OnStateChange> Breaker<S, St, C> {
    /// Wraps `inner`, calling it through `breaker` (see [`BreakerLayer::new`]).
    pub fn new(inner: S, breaker: CircuitBreaker<St, C>) -> Self {
        Self::from_layer(inner, BreakerLayer::new(breaker))
    }

    /// The layer calling through `breaker` (see [`BreakerLayer::new`]).
    pub fn layer(breaker: CircuitBreaker<St, C>) -> BreakerLayer<St, C> {
        BreakerLayer::new(breaker)
    }
}

impl<S, St, C, F> Breaker<S, St, C, F> {
    pub(crate) const fn from_layer(inner: S, layer: BreakerLayer<St, C, F>) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();
}

impl<S: Clone, St, C, F: Clone> Clone for Breaker<S, St, C, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, St: fmt::Debug, C, F> fmt::Debug for Breaker<S, St, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Breaker))
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, St, C, F, B, RB> Service<Request<B>> for Breaker<S, St, C, F>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    St: BreakerStore,
    C: OnStateChange,
    F: FailurePolicy<RB, S::Error> + Clone,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, St, C, F>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let host = if self.layer.per_host {
            req.uri().host().map(str::to_ascii_lowercase)
        } else {
            None
        };
        let key = host.as_deref().unwrap_or("");
        let ticket = match self.layer.breaker.ask(key) {
            Ok(ticket) => ticket,
            Err(error) => {
                let fallback = match &self.layer.fallback {
                    Fallback::Error => "error",
                    Fallback::Response { .. } => "response",
                };
                tracing::debug!(
                    target: "middleware_std::breaker",
                    breaker_key = key,
                    breaker_state = "open",
                    breaker_fallback = fallback,
                    "call refused by an open circuit breaker"
                );
                let answer = match &self.layer.fallback {
                    Fallback::Error => Err(error),
                    Fallback::Response {
                        status,
                        headers,
                        body,
                    } => {
                        let mut res = Response::new(body.clone());
                        *res.status_mut() = *status;
                        *res.headers_mut() = headers.clone();
                        res.headers_mut()
                            .insert(X_CIRCUIT_BREAKER, HeaderValue::from_static("open"));
                        res.extensions_mut().insert(BreakerFallback);
                        Ok(res)
                    }
                };
                return ResponseFuture {
                    state: State::Refused {
                        answer: Some(answer),
                    },
                };
            }
        };
        let scope = req.context().child();
        let guard = scope.drop_guard();
        *req.context() = scope;
        let clone = self.inner.clone();
        let future = mem::replace(&mut self.inner, clone).call(req);
        ResponseFuture {
            state: State::Calling {
                future,
                call: Some((ticket, guard)),
                failure: self.layer.failure.clone(),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Breaker`].
    pub struct ResponseFuture<Fut, St: BreakerStore, C: OnStateChange, F> {
        #[pin]
        state: State<Fut, St, C, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, St: BreakerStore, C: OnStateChange, F> {
        Calling {
            #[pin]
            future: Fut,
            // The ticket to report the outcome on (dropped unreported if this future is
            // dropped: the call counts for nothing) and the guard of the call's scope.
            call: Option<(Ticket<St, C>, DropGuard)>,
            failure: F,
        },
        Refused { answer: Option<Result<Response<Bytes>, BreakerOpenError>> },
    }
}

impl<Fut, St: BreakerStore, C: OnStateChange, F> fmt::Debug for ResponseFuture<Fut, St, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .finish_non_exhaustive()
    }
}

impl<Fut, St, C, F, RB, E> Future for ResponseFuture<Fut, St, C, F>
where
    Fut: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    St: BreakerStore,
    C: OnStateChange,
    F: FailurePolicy<RB, E>,
{
    type Output = Result<Response<ResponseBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { answer } => Poll::Ready(
                match answer.take().expect("future polled after completion") {
                    Ok(res) => Ok(ResponseBody::response(res)),
                    Err(error) => Err(error.into()),
                },
            ),
            StateProj::Calling {
                future,
                call,
                failure,
            } => {
                let outcome = ready!(future.poll(cx));
                let (ticket, mut guard) = call.take().expect("future polled after completion");
                guard.disarm();
                ticket.report(!failure.is_failure(outcome.as_ref()));
                Poll::Ready(match outcome {
                    Ok(res) => Ok(res.map(ResponseBody::new)),
                    Err(error) => Err(error.into()),
                })
            }
        }
    }
}

// ----- stack introspection -----

impl<S: middleware_core::Describe, St, C, F> middleware_core::Describe for Breaker<S, St, C, F> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.layer.describe(description);
        self.inner.describe(description);
    }
}
