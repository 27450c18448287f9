use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
    time::Instant,
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Span, field};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::inject;
use crate::{RequestExt as _, error_type::ErrorType, layer_time, logging::semconv};

/// Opens a client span per outbound call and injects its context as `traceparent`. See the
/// [module docs](super).
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct PropagateTraceContextLayer {
    _private: (),
}

impl PropagateTraceContextLayer {
    /// A layer for a client service.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl<S> Layer<S> for PropagateTraceContextLayer {
    type Service = PropagateTraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateTraceContext { inner }
    }
}

/// The service of [`PropagateTraceContextLayer`]. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct PropagateTraceContext<S> {
    inner: S,
}

impl<S> PropagateTraceContext<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The layer form, same as [`PropagateTraceContextLayer::new`].
    pub const fn layer() -> PropagateTraceContextLayer {
        PropagateTraceContextLayer::new()
    }

    define_inner_service_accessors!();
}

/// The client span of one call, by the HTTP client conventions. The URL is recorded without
/// its query (it may hold credentials) and bounded; its host is the URI's, else the `Host`
/// header's (escaped and bounded).
fn client_span<B>(req: &Request<B>) -> Span {
    let method = semconv::Method(req.method());
    let span = tracing::info_span!(
        "client request",
        otel.name = %method.span_name(),
        otel.kind = "client",
        otel.status_code = field::Empty,
        http.request.method = %method,
        http.request.method_original = field::Empty,
        server.address = field::Empty,
        server.port = field::Empty,
        url.full = field::Empty,
        http.response.status_code = field::Empty,
        error.type = field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if !method.is_known() {
        span.record(
            "http.request.method_original",
            field::display(semconv::bare(req.method().as_str(), 32)),
        );
    }
    let uri = req.uri();
    // The URI's authority, else the `Host` header (a client that keeps the authority out of
    // the URI, as a tonic channel does).
    if let Some((host, explicit_port)) = semconv::server_address(req) {
        span.record("server.address", field::display(semconv::bare(host, 256)));
        let port = explicit_port.or_else(|| match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        if let Some(port) = port {
            span.record("server.port", port);
        }
        let scheme = uri.scheme_str().unwrap_or("http");
        // Host and port, never the userinfo (`user:pass@`).
        let full = match explicit_port {
            Some(port) => format!("{scheme}://{host}:{port}{}", uri.path()),
            None => format!("{scheme}://{host}{}", uri.path()),
        };
        span.record("url.full", field::display(semconv::bare(&full, 2048)));
    }
    span
}

impl<S, B, RB> Service<Request<B>> for PropagateTraceContext<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let started = layer_time::wanted(req.try_context()).then(Instant::now);
        let span = client_span(&req);
        // No current span and no current OpenTelemetry context (a call from a spawned task):
        // the parent is the server span the request's context names, if any.
        let orphan = tracing::dispatcher::get_default(|d| d.current_span().id().is_none())
            && !opentelemetry::Context::map_current(opentelemetry::Context::has_active_span);
        let parent = if orphan {
            super::request_parent(req.try_context())
        } else {
            None
        };
        if let Some(parent) = &parent {
            // Fails only without the OpenTelemetry layer: then the parent is injected below.
            let _ = span.set_parent(parent.clone());
        }
        // The span's own context when `tracing-opentelemetry` sees it; else whatever is
        // current (a remote parent made current by `TraceContextLayer`) or the request's
        // server span: the callee still joins the caller's trace.
        let mut cx = span.context();
        if !cx.has_active_span() {
            cx = parent.unwrap_or_else(opentelemetry::Context::current);
        }
        if inject(&cx, req.headers_mut()).is_none() {
            req.headers_mut().remove(super::TRACEPARENT);
            req.headers_mut().remove(super::TRACESTATE);
        }
        if let Some(started) = started {
            layer_time::record(req.try_context(), "mw.otel_client", started.elapsed());
        }
        // Kept to tell a timeout from a cancellation if the call is given up.
        let request_cx = if span.is_disabled() {
            None
        } else {
            req.try_context().cloned()
        };
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            call: Some(ClientCall {
                span,
                cx: request_cx,
                done: false,
            }),
        }
    }
}

use opentelemetry::trace::TraceContextExt as _;

/// A call's client span until it ends: with the response head or the error, or, dropped
/// before (a timeout or a cancellation outside), as an error with `error.type` `timeout` or
/// `cancelled`.
struct ClientCall {
    span: Span,
    /// The call's context: a deadline cancelled it when the drop is a timeout.
    cx: Option<crate::Context>,
    done: bool,
}

impl ClientCall {
    fn fail(&self, error: ErrorType) {
        self.span.record("error.type", field::display(error));
        self.span.record("otel.status_code", "error");
    }
}

impl Drop for ClientCall {
    fn drop(&mut self) {
        if !self.done {
            self.fail(ErrorType::call_dropped(self.cx.as_ref()));
        }
    }
}

pin_project! {
    /// The response future of [`PropagateTraceContext`]: the client span ends with the
    /// response head or the error, or as an error when the call is given up.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<ClientCall>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.call.as_ref().map(|call| call.span.enter());
            ready!(this.inner.poll(cx))
        };
        let mut call = this.call.take().expect("future polled after completion");
        call.done = true;
        if let Ok(res) = &result {
            let status = res.status();
            call.span
                .record("http.response.status_code", status.as_u16());
            // A client span fails on 4xx too: the call did not get what it asked for.
            if status.is_client_error() || status.is_server_error() {
                call.fail(ErrorType::Status(status.as_u16()));
            }
        } else {
            call.fail(ErrorType::Other);
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &format_args!("..."))
            .field("span", &self.call.as_ref().map(|call| &call.span))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{Arc, Mutex},
    };

    use http::StatusCode;
    use opentelemetry::trace::{SpanKind, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tower::{ServiceExt, service_fn};
    use tracing::Instrument as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    fn otel() -> (InMemorySpanExporter, tracing::subscriber::DefaultGuard) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        (exporter, tracing::subscriber::set_default(subscriber))
    }

    #[tokio::test]
    async fn a_call_inside_a_span_carries_its_trace_and_gets_a_client_span() {
        let (exporter, _guard) = otel();
        let seen = Arc::new(Mutex::new(None));
        let client = PropagateTraceContextLayer::new().layer(service_fn({
            let seen = Arc::clone(&seen);
            move |req: Request<()>| {
                *seen.lock().unwrap() = req.headers().get("traceparent").cloned();
                async {
                    let mut res = Response::new(());
                    *res.status_mut() = StatusCode::BAD_GATEWAY;
                    Ok::<_, Infallible>(res)
                }
            }
        }));
        let parent = tracing::info_span!("handler");
        let parent_ids = parent.context().span().span_context().clone();
        let req = Request::get("http://upstream.test:8080/orders?token=s3cret")
            .body(())
            .unwrap();
        client
            .oneshot(req)
            .instrument(parent.clone())
            .await
            .unwrap();
        drop(parent);

        let header = seen.lock().unwrap().clone().unwrap();
        let header = header.to_str().unwrap();
        assert!(
            header.starts_with(&format!("00-{}-", parent_ids.trace_id())),
            "{header}"
        );
        let spans = exporter.get_finished_spans().unwrap();
        let call = spans.iter().find(|s| s.name == "GET").unwrap();
        assert_eq!(call.span_kind, SpanKind::Client);
        assert_eq!(call.parent_span_id, parent_ids.span_id());
        assert!(
            header.contains(&call.span_context.span_id().to_string()),
            "{header}"
        );
        let attr = |key: &str| {
            call.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(attr("server.address").as_deref(), Some("upstream.test"));
        assert_eq!(attr("server.port").as_deref(), Some("8080"));
        assert_eq!(
            attr("url.full").as_deref(),
            Some("http://upstream.test:8080/orders")
        );
        assert_eq!(attr("http.response.status_code").as_deref(), Some("502"));
        assert_eq!(attr("error.type").as_deref(), Some("502"));
        assert!(matches!(
            call.status,
            opentelemetry::trace::Status::Error { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_given_up_by_a_timeout_ends_its_span_as_an_error() {
        let (exporter, _guard) = otel();
        let client =
            PropagateTraceContextLayer::new().layer(service_fn(|_req: Request<()>| async {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                Ok::<_, Infallible>(Response::new(()))
            }));
        let call = |cx: Option<crate::Context>| {
            let mut req = Request::get("http://upstream.test/slow").body(()).unwrap();
            if let Some(cx) = cx {
                req.extensions_mut().insert(cx);
            }
            let out = tokio::time::timeout(
                std::time::Duration::from_millis(50),
                client.clone().oneshot(req),
            );
            out.instrument(tracing::info_span!("handler"))
        };
        // Given up with no context: cancelled.
        assert!(call(None).await.is_err());
        // Given up after the call's context was cancelled with its deadline: a timeout.
        let cx = crate::Context::new();
        let deadline = cx.clone();
        let given_up = async move {
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            deadline.cancel_with(crate::CancelCause::Deadline);
        };
        let (out, ()) = tokio::join!(call(Some(cx)), given_up);
        assert!(out.is_err());

        let spans = exporter.get_finished_spans().unwrap();
        let calls: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Client)
            .collect();
        assert_eq!(calls.len(), 2);
        for (call, error_type) in calls.iter().zip(["cancelled", "timeout"]) {
            assert!(
                matches!(call.status, opentelemetry::trace::Status::Error { .. }),
                "{:?}",
                call.status
            );
            let attr = call
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == "error.type")
                .map(|kv| kv.value.to_string());
            assert_eq!(attr.as_deref(), Some(error_type));
        }
    }

    #[tokio::test]
    async fn an_origin_form_call_takes_its_server_from_the_host_header() {
        let (exporter, _guard) = otel();
        let client =
            PropagateTraceContextLayer::new().layer(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let req = Request::get("/orders?token=s3cret")
            .header("host", "upstream.test:8080")
            .body(())
            .unwrap();
        client
            .clone()
            .oneshot(req)
            .instrument(tracing::info_span!("handler"))
            .await
            .unwrap();
        // A hostile Host is escaped and bounded.
        let hostile = format!("evil host\u{1b}[31m{}", "a".repeat(1000));
        let req = Request::get("/")
            .header("host", hostile.replace('\u{1b}', "%"))
            .body(())
            .unwrap();
        client
            .oneshot(req)
            .instrument(tracing::info_span!("handler"))
            .await
            .unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        let calls: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Client)
            .collect();
        let attr = |i: usize, key: &str| {
            calls[i]
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(attr(0, "server.address").as_deref(), Some("upstream.test"));
        assert_eq!(attr(0, "server.port").as_deref(), Some("8080"));
        assert_eq!(
            attr(0, "url.full").as_deref(),
            Some("http://upstream.test:8080/orders")
        );
        let address = attr(1, "server.address").unwrap();
        assert!(address.len() <= 256 + 14, "{}", address.len());
        assert!(!address.contains(' '), "{address}");
    }

    #[tokio::test]
    async fn the_layer_reports_its_own_time_when_asked() {
        let client =
            PropagateTraceContextLayer::new().layer(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let cx = crate::Context::new();
        cx.request_layer_times();
        let mut req = Request::get("http://upstream.test/").body(()).unwrap();
        req.extensions_mut().insert(cx.clone());
        client.oneshot(req).await.unwrap();
        let marks: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(marks, ["mw.otel_client"]);
    }

    #[tokio::test]
    async fn a_stale_traceparent_is_removed_when_there_is_no_trace() {
        let client =
            PropagateTraceContextLayer::new().layer(service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(Response::new(req.headers().contains_key("traceparent")))
            }));
        let req = Request::get("http://upstream.test/")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        assert!(!client.oneshot(req).await.unwrap().into_body());
    }
}
