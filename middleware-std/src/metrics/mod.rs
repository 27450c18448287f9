//! HTTP metrics by the OpenTelemetry semantic conventions, on the OpenTelemetry metrics API.
//!
//! [`HttpMetricsLayer`] (server side) records, once per request whatever its ending:
//!
//! | instrument | kind, unit | attributes |
//! | --- | --- | --- |
//! | `http.server.request.duration` | histogram, `s`, the conventions' buckets (5 ms … 10 s) | method, scheme, route, status, `error.type` |
//! | `http.server.active_requests` | up-down counter, `{request}` | method, scheme |
//! | `http.server.request.body.size` | histogram, `By`: the request's `Content-Length`, when sent, at most 4 GiB, and not for a 413 (see below) | as the duration |
//! | `http.server.response.body.size` | histogram, `By` (bytes streamed) | as the duration |
//! | `middleware.server.timeouts` | counter, `{request}`: requests whose budget expired, as a timeout layer reported it ([`Expiry`](crate::Expiry)) | method, scheme, `timeout.phase` (`ready`, `head`, `request_body`, `response_body`), `timeout.by_client` |
//!
//! The duration runs to the **end of the response body** (the last frame, the last byte of the
//! body's exact size or `Content-Length`, a body error, or the body dropped by a client that
//! went away), not to the response head: the layer wraps the body in a [`MetricsBody`]. A
//! bodiless response (`HEAD`, 1xx, 204, 304: hyper drops its body unpolled) ends at the head;
//! so does, at its last declared byte, a streamed body with a `Content-Length` (hyper drops it
//! unpolled once that many bytes are written, as for every file tower-http's `ServeDir`
//! serves).
//!
//! The request body size is the client's `Content-Length` (as the conventions allow: the
//! layer does not wrap the request body, so it leaves its type alone and costs nothing per
//! frame). It is a claim, so it is recorded only when it is sane: at most 4 GiB (hyper accepts
//! claims up to `u64::MAX - 2`, which would ruin the series' sum or overflow it), and not when
//! the response is a 413 (the body was refused, not read). A request answered without
//! reading its body (a 401, a 404) still records its claim.
//!
//! `error.type` is set when the request failed, with the same value as the access span of
//! the `logging` feature (one mapping for both):
//!
//! | what happened | `error.type` |
//! | --- | --- |
//! | a 5xx response | its status code |
//! | an error of the inner service or of the body | `_OTHER` |
//! | the inner service, its future or the body panicked (whoever catches it), or the context was cancelled with `panicked` | `panic` |
//! | a timeout layer reported an [`Expiry`](crate::Expiry) of the server's deadline, or the request was dropped after its context was cancelled with `deadline` | `timeout` |
//! | the expiry a timeout layer reported was the client's own deadline (an inbound `grpc-timeout`) | `client_deadline` |
//! | dropped before the end after its context was cancelled explicitly | `cancelled` |
//! | dropped before the end with no other cause (the client went away) | `disconnected` |
//!
//! [`HttpClientMetricsLayer`] records `http.client.request.duration` (histogram, `s`, to the
//! response head) per outbound call, with method, scheme, `server.address`, `server.port`,
//! status and `error.type`: the status of a 4xx or 5xx, `_OTHER` for an error of the client,
//! and for a call given up before its head (a timeout or a `select!` outside dropped it)
//! `timeout` when the call's [`Context`](crate::Context) was cancelled with its deadline (as
//! `CallTimeoutLayer` and the timeout layers do) or the deadline passed, else `cancelled`.
//!
//! **Cardinality is bounded.** No raw path or client value becomes an attribute: the method is
//! one of the known methods or `_OTHER`, the route is the template axum matched
//! (`/users/{id}`, from `MatchedPath`, when the layer runs inside the router) or absent, the
//! scheme is the URI's or `http`, and the status a number. A client's `server.address` is the
//! host the *application* called: the URI's, else, only with
//! [`server_from_host_header`](HttpClientMetricsLayer::server_from_host_header) (an
//! origin-form URI, as a tonic channel sends), the `Host` header's when it is a valid
//! authority of at most 256 bytes (off by default: a proxy forwarding its clients' `Host`
//! would turn them into series).
//!
//! The layer reads the request's [`Context`](crate::Context) (and makes one when no outer
//! layer did, which the layers inside then share): a timeout layer inside reports its
//! expiry there, and an outer one cancels it with its deadline.
//!
//! The instruments come from the [`Meter`](opentelemetry::metrics::Meter) you pass: with no meter provider installed (the
//! API's no-op), recording costs next to nothing.
//!
//! Inside a timing layer that asks for per-layer times, the layers' own time is reported as
//! `mw.metrics` (server) and `mw.metrics_client` (client, on the outbound request's context).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use middleware_std::metrics::HttpMetricsLayer;
//! use opentelemetry::metrics::MeterProvider as _;
//! use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let exporter = InMemoryMetricExporter::default();
//! let provider = SdkMeterProvider::builder()
//!     .with_reader(PeriodicReader::builder(exporter.clone()).build())
//!     .build();
//! let app = ServiceBuilder::new()
//!     .layer(HttpMetricsLayer::new(&provider.meter("app")))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//!
//! let res = app.oneshot(Request::get("/").body(String::new()).unwrap()).await.unwrap();
//! res.into_body().collect().await.unwrap(); // the request ends with its body
//!
//! provider.force_flush().unwrap();
//! let metrics = exporter.get_finished_metrics().unwrap();
//! let names: Vec<String> = metrics
//!     .iter()
//!     .flat_map(|m| m.scope_metrics())
//!     .flat_map(|s| s.metrics())
//!     .map(|m| m.name().to_owned())
//!     .collect();
//! assert!(names.contains(&"http.server.request.duration".to_owned()), "{names:?}");
//! # }
//! ```

mod body;
mod client;
mod server;

use http::Method;
use opentelemetry::KeyValue;

#[doc(inline)]
pub use self::{
    body::MetricsBody,
    client::{ClientFuture, HttpClientMetrics, HttpClientMetricsLayer},
    server::{HttpMetrics, HttpMetricsLayer, ResponseFuture},
};

/// The histogram buckets the HTTP semantic conventions recommend for request durations, in
/// seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// `http.request.method`: the method when the conventions know it, `_OTHER` otherwise (a
/// bounded attribute: a client cannot mint new series with made-up methods).
pub(crate) fn method_attr(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

/// `url.scheme`: `http` or `https` from the URI, `http` otherwise (a server behind a TLS
/// terminator sees `http`).
pub(crate) fn scheme_attr(uri: &http::Uri) -> &'static str {
    if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        "https"
    } else {
        "http"
    }
}

/// `error.type` values of this module: the crate's shared vocabulary.
pub(crate) use crate::error_type::ErrorType;

/// The `error.type` attribute of `error`.
fn error_attr(error: ErrorType) -> KeyValue {
    match error.as_static() {
        Some(value) => KeyValue::new("error.type", value),
        None => KeyValue::new("error.type", error.to_string()),
    }
}

#[cfg(test)]
mod tests;
