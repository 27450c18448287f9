//! The request span: its name, kind and OpenTelemetry HTTP fields.

use std::net::SocketAddr;

use http::Request;
use middleware_core::Context;
use tracing::{Level, Span, field};

use super::{
    MAX_ADDRESS, MAX_METHOD, MAX_PATH, MAX_QUERY, MAX_REQUEST_ID, MAX_USER_AGENT, semconv,
};
use crate::logging::{
    escape::{Bare, Limit, MaskedQuery},
    layer::Config,
};

/// The request span with its OpenTelemetry HTTP fields. The method, path, query and request
/// id are written unquoted, escaped so that they hold no blank at all (http's parser already
/// rejects a space in them), and bounded.
///
/// The `otel.*` fields are `tracing-opentelemetry`'s: the OpenTelemetry span's name, kind and
/// status. They are recorded with the `otel` feature only (they are plumbing, not log text);
/// the name and kind before the span can be built.
pub(crate) fn make_span<B>(config: &Config, req: &Request<B>, cx: Option<&Context>) -> Span {
    let method = semconv::Method(req.method());
    let span = dyn_span!(
        config.span_level,
        "request",
        otel.name = field::Empty,
        otel.kind = field::Empty,
        otel.status_code = field::Empty,
        http.request.method = %method,
        http.request.method_original = field::Empty,
        url.scheme = req.uri().scheme_str().unwrap_or("http"),
        url.path = %Limit(Bare(req.uri().path()), MAX_PATH),
        url.query = field::Empty,
        http.route = field::Empty,
        server.address = field::Empty,
        server.port = field::Empty,
        client.address = field::Empty,
        client.port = field::Empty,
        user_agent.original = field::Empty,
        request_id = field::Empty,
        http.request.headers = field::Empty,
        http.response.status_code = field::Empty,
        error.type = field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let route = crate::route::route(req);
    if !method.is_known() {
        let original = Limit(Bare(req.method().as_str()), MAX_METHOD);
        span.record("http.request.method_original", field::display(original));
    }
    if let Some(route) = route {
        span.record("http.route", field::display(Limit(Bare(route), MAX_PATH)));
    }
    if let Some((host, port)) = semconv::server_address(req) {
        span.record(
            "server.address",
            field::display(Limit(Bare(host), MAX_ADDRESS)),
        );
        if let Some(port) = port {
            span.record("server.port", port);
        }
    }
    if config.query {
        if let Some(query) = req.uri().query() {
            let keys = &config.query_keys;
            let query = Limit(MaskedQuery { query, keys }, MAX_QUERY);
            span.record("url.query", field::display(query));
        }
    }
    if let Some(addr) = req.extensions().get::<SocketAddr>() {
        span.record("client.address", field::display(addr.ip()));
        span.record("client.port", addr.port());
    }
    if let Some(agent) = req.headers().get(http::header::USER_AGENT) {
        semconv::record_text(
            &span,
            "user_agent.original",
            agent.as_bytes(),
            MAX_USER_AGENT,
        );
    }
    if let Some(id) = cx.and_then(Context::request_id) {
        let id = Limit(Bare(id.as_str()), MAX_REQUEST_ID);
        span.record("request_id", field::display(id));
    }
    // Last, so that a text log keeps its fields in their usual order; still before the span
    // can be built (the caller asks for its context only after this returns).
    #[cfg(feature = "otel")]
    {
        span.record("otel.name", field::display(method.span_name_with(route)));
        span.record("otel.kind", "server");
    }
    span
}
