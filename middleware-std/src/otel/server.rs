use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::Instant,
};

use http::Request;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{RemoteParent, extract};
use crate::{RequestExt, layer_time};

/// Reads the W3C trace context of inbound requests. See the [module docs](super) for an
/// example.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct TraceContextLayer {
    _private: (),
}

impl TraceContextLayer {
    /// A layer that reads `traceparent` / `tracestate` from every request.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl<S> Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContext { inner }
    }
}

/// The service of [`TraceContextLayer`]. See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct TraceContext<S> {
    inner: S,
}

impl<S> TraceContext<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The layer form, same as [`TraceContextLayer::new`].
    pub const fn layer() -> TraceContextLayer {
        TraceContextLayer::new()
    }

    define_inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for TraceContext<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let started = layer_time::wanted(req.try_context()).then(Instant::now);
        let remote = extract(req.headers());
        if let Some(remote) = &remote {
            req.extensions_mut().insert(RemoteParent(remote.clone()));
        }
        if let Some(started) = started {
            layer_time::record(req.try_context(), "mw.otel", started.elapsed());
        }
        let inner = match &remote {
            Some(remote) => {
                let _attached = remote.clone().attach();
                self.inner.call(req)
            }
            None => self.inner.call(req),
        };
        ResponseFuture { inner, remote }
    }
}

pin_project! {
    /// The response future of [`TraceContext`]: the remote context is current while the inner
    /// future is polled.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        remote: Option<opentelemetry::Context>,
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _attached = this.remote.clone().map(opentelemetry::Context::attach);
        this.inner.poll(cx)
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &format_args!("..."))
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::Response;
    use opentelemetry::trace::TraceContextExt as _;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::Context;

    #[tokio::test]
    async fn a_valid_traceparent_reaches_the_inner_service_as_the_remote_parent() {
        let app = ServiceBuilder::new()
            .layer(TraceContextLayer::new())
            .service(service_fn(|req: Request<()>| async move {
                let parent = req.extensions().get::<RemoteParent>().cloned();
                let current = opentelemetry::Context::current();
                let ids = (
                    parent.map(|p| p.0.span().span_context().trace_id().to_string()),
                    current.span().span_context().trace_id().to_string(),
                );
                Ok::<_, Infallible>(Response::new(ids))
            }));
        let req = Request::get("/")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        let (parent, current) = app.oneshot(req).await.unwrap().into_body();
        assert_eq!(parent.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(current, "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[tokio::test]
    async fn a_hostile_traceparent_is_not_an_error_and_leaves_no_parent() {
        let app = ServiceBuilder::new()
            .layer(TraceContextLayer::new())
            .service(service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(Response::new(
                    req.extensions().get::<RemoteParent>().is_some(),
                ))
            }));
        let req = Request::get("/")
            .header(
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        assert!(!app.oneshot(req).await.unwrap().into_body());
    }

    #[tokio::test]
    async fn the_layer_reports_its_own_time_when_asked() {
        let app = TraceContextLayer::new().layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        let mut req = Request::get("/")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        let cx = Context::new();
        cx.request_layer_times();
        req.extensions_mut().insert(cx.clone());
        app.oneshot(req).await.unwrap();
        let marks: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(marks, ["mw.otel"]);
    }
}
