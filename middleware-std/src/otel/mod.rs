//! W3C Trace Context across services, and the access span as the OpenTelemetry server span.
//!
//! Three pieces, one per direction (feature `otel`, opt-in: it brings the `opentelemetry` API,
//! the SDK's [`TraceContextPropagator`](opentelemetry_sdk::propagation::TraceContextPropagator)
//! and `tracing-opentelemetry`):
//!
//! - **In**: [`TraceContextLayer`] reads `traceparent` / `tracestate` with the SDK's propagator
//!   and hands the remote span context to the layers inside. A value that is not a W3C Trace
//!   Context level 1 `traceparent` (wrong version or `ff`, all-zero ids, wrong lengths,
//!   uppercase hex, extra fields on version `00`, a repeated header, more than 512 bytes) is
//!   ignored as the spec says: the request starts a fresh trace, it is never an error response,
//!   and the value is never logged by this module (the access log shows it only escaped, with
//!   header logging on). Several `tracestate` fields are combined into one list (as the spec
//!   says a receiver must); a list over 512 bytes combined, with more than 32 members, with a
//!   key twice or that the SDK cannot parse is dropped whole, and the trace kept.
//! - **The server span** is the access span of [`LogLayer`](crate::logging::LogLayer), put
//!   *inside* [`TraceContextLayer`]: with this feature on, the access span becomes a child of the
//!   remote span, is named `{method} {route}` (or `{method}`), has kind `server` and the HTTP
//!   semantic conventions' attributes (see the [logging docs](crate::logging#fields)), sets
//!   `error.type` and the span status when the request fails, and puts the [`TraceIds`] of the
//!   server span into the request's extensions and [`Context`](crate::Context) (for handlers)
//!   and into the access record (`trace_id`, `span_id`). One span per request: this module
//!   opens none of its own on the server side. Without a [`LogLayer`](crate::logging::LogLayer)
//!   the remote context is still made current while the inner service runs, so the first span
//!   a handler opens (with no `tracing` parent) is a child of the remote span.
//! - **Out**: [`PropagateTraceContextLayer`] sits in front of a client (next to
//!   `timeout::PropagateDeadlineLayer` and the request id): it
//!   opens a client span (`otel.kind = client`, the HTTP client conventions; `server.address`,
//!   `server.port` and `url.full` from the URI, else from the `Host` header, escaped and
//!   bounded) as a child of the
//!   current span, and injects that span's context as `traceparent` / `tracestate`. With no
//!   current span and no current OpenTelemetry context (a call made from a spawned task, where
//!   neither follows), the parent is the server span whose [`TraceIds`] (and `tracestate`) the
//!   outbound request's [`Context`](crate::Context) carries: pass the request's context on
//!   (`call.extensions_mut().insert(cx)`, as for `PropagateDeadlineLayer`) and the call stays in
//!   the request's trace. Without either, the call starts a new trace; a span of your own
//!   carried into the task (`.instrument(Span::current())`) works too. The client span fails
//!   (status error, `error.type`) on a 4xx or 5xx (the status), an error of the client
//!   (`_OTHER`), or when the call is given up before its head: `timeout` when the call's
//!   context was cancelled with its deadline (or the deadline passed), else `cancelled`.
//!
//! Inside a timing layer that asks for per-layer times, the layers' own time is reported as
//! `mw.otel` ([`TraceContextLayer`]) and `mw.otel_client` ([`PropagateTraceContextLayer`], on
//! the outbound request's context).
//!
//! The spans reach OpenTelemetry through `tracing-opentelemetry`'s layer in the `tracing`
//! subscriber: without it, no span has an OpenTelemetry context, nothing is injected, and no
//! [`TraceIds`] are recorded.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use middleware_std::{Context, RequestExt, logging::LogLayer, otel::{TraceContextLayer, TraceIds}};
//! use opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let exporter = InMemorySpanExporter::default();
//! let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("app")));
//! let _guard = tracing::subscriber::set_default(subscriber);
//!
//! let app = ServiceBuilder::new()
//!     .layer(TraceContextLayer::new())
//!     .layer(LogLayer::new().create_context(true))
//!     .service(service_fn(|req: Request<()>| async move {
//!         // The server span's ids, for the handler.
//!         let ids = *req.try_context().and_then(Context::get::<TraceIds>).unwrap();
//!         Ok::<_, Infallible>(Response::new(ids.trace_id().to_string()))
//!     }));
//!
//! let req = Request::get("/orders")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(())
//!     .unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! let body = res.into_body().collect().await.unwrap().to_bytes(); // the span ends with the body
//! assert_eq!(body, "4bf92f3577b34da6a3ce929d0e0e4736");
//!
//! let spans = exporter.get_finished_spans().unwrap();
//! assert_eq!(spans.len(), 1);
//! assert_eq!(spans[0].name, "GET");
//! assert_eq!(spans[0].span_kind, opentelemetry::trace::SpanKind::Server);
//! assert_eq!(spans[0].parent_span_id.to_string(), "00f067aa0ba902b7");
//! # }
//! ```

mod client;
mod server;

use std::{borrow::Cow, fmt};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    propagation::{Extractor, Injector},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};

#[doc(inline)]
pub use self::{
    client::{PropagateTraceContext, PropagateTraceContextLayer, ResponseFuture as ClientFuture},
    server::{ResponseFuture, TraceContext, TraceContextLayer},
};

/// The trace id and span id of a request's server span (or of a client call's span), as the
/// request's extensions and [`Context`](crate::Context) hold them. See the
/// [module docs](self) for an example.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceIds {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
}

impl TraceIds {
    /// The ids of `span_context`, when it is valid (neither id all zeros).
    #[must_use]
    pub fn from_span_context(span_context: &SpanContext) -> Option<Self> {
        span_context.is_valid().then(|| Self {
            trace_id: span_context.trace_id(),
            span_id: span_context.span_id(),
            sampled: span_context.is_sampled(),
        })
    }

    /// The trace id (32 lowercase hex digits when displayed).
    #[must_use]
    pub const fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span id (16 lowercase hex digits when displayed).
    #[must_use]
    pub const fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// Whether the trace is sampled (the `traceparent` flag).
    #[must_use]
    pub const fn is_sampled(&self) -> bool {
        self.sampled
    }
}

/// Writes the ids as a version-00 `traceparent` value.
impl fmt::Display for TraceIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-0{}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl fmt::Debug for TraceIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(TraceIds))
            .field("trace_id", &format_args!("{}", self.trace_id))
            .field("span_id", &format_args!("{}", self.span_id))
            .field("sampled", &self.sampled)
            .finish()
    }
}

/// The remote span context that [`TraceContextLayer`] extracted, for the access span inside.
#[derive(Clone, Debug)]
pub(crate) struct RemoteParent(pub(crate) opentelemetry::Context);

/// The server span's `tracestate`, next to its [`TraceIds`] in the request's
/// [`Context`](crate::Context) when it is not empty: an outbound call with no current span
/// (made from a spawned task) continues the trace from these and keeps the state.
#[derive(Clone, Debug)]
pub(crate) struct ServerTraceState(pub(crate) TraceState);

/// The server span of the request whose [`Context`](crate::Context) is `cx`, as a parent for
/// an outbound call that has no current span: its [`TraceIds`] and `tracestate`.
pub(crate) fn request_parent(cx: Option<&crate::Context>) -> Option<opentelemetry::Context> {
    let cx = cx?;
    let ids = cx.get::<TraceIds>()?;
    let state = cx
        .get::<ServerTraceState>()
        .map_or(TraceState::NONE, |state| state.0.clone());
    let flags = if ids.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let parent = SpanContext::new(ids.trace_id, ids.span_id, flags, true, state);
    Some(opentelemetry::Context::new().with_remote_span_context(parent))
}

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// The most a `traceparent` of a future version may take; version `00` is exactly 55 bytes.
const MAX_TRACEPARENT: usize = 512;
/// The most a `tracestate` may take, its fields combined (the spec's 32 members fit in 512
/// bytes as a rule; longer lists may be dropped whole).
const MAX_TRACESTATE: usize = 512;
/// The most members a `tracestate` may have.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Whether `value` is a `traceparent` of W3C Trace Context level 1: lowercase hex fields of
/// the right lengths, a version other than `ff`, non-zero ids, exactly four fields for version
/// `00` and a `-` after the flags for a later version. The SDK's propagator is lenient (it
/// accepts short ids and a `+` sign, as `from_str_radix` does): this check runs first.
pub(crate) fn is_valid_traceparent(value: &[u8]) -> bool {
    fn hex(field: &[u8]) -> bool {
        field
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    }
    if value.len() < 55 || value.len() > MAX_TRACEPARENT {
        return false;
    }
    let (version, trace_id, span_id, flags) =
        (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    let dashes = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    if !dashes || !hex(version) || !hex(trace_id) || !hex(span_id) || !hex(flags) {
        return false;
    }
    if version == b"ff" || trace_id.iter().all(|&c| c == b'0') || span_id.iter().all(|&c| c == b'0')
    {
        return false;
    }
    if version == b"00" {
        value.len() == 55
    } else {
        value.len() == 55 || value[55] == b'-'
    }
}

/// The request headers as the propagator reads them: `traceparent` only when it is one valid
/// value, `tracestate` only when its fields, combined, make a valid list.
pub(crate) struct HeaderExtractor<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<Cow<'a, str>>,
}

impl<'a> HeaderExtractor<'a> {
    pub(crate) fn new(headers: &'a HeaderMap) -> Self {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let traceparent = match (values.next(), values.next()) {
            (Some(value), None) if is_valid_traceparent(value.as_bytes()) => value.to_str().ok(),
            _ => None,
        };
        let tracestate = traceparent
            .and_then(|_| combined_tracestate(headers))
            .filter(|state| is_valid_tracestate(state));
        Self {
            traceparent,
            tracestate,
        }
    }
}

/// The `tracestate` fields combined into one list, as W3C Trace Context says a receiver MUST
/// (RFC 9110's `,` join): borrowed when there is one field, at most [`MAX_TRACESTATE`] bytes,
/// visible ASCII.
fn combined_tracestate(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let mut values = headers.get_all(TRACESTATE).iter();
    let first = values.next()?;
    let mut combined = Cow::Borrowed(first.to_str().ok()?);
    for value in values {
        let value = value.to_str().ok()?;
        if combined.len() + 1 + value.len() > MAX_TRACESTATE {
            return None;
        }
        let list = combined.to_mut();
        list.push(',');
        list.push_str(value);
    }
    (combined.len() <= MAX_TRACESTATE).then_some(combined)
}

/// Whether `list` has at most 32 members and one per key, as W3C Trace Context requires of a
/// `tracestate` (the SDK keeps the first 32 and duplicates): an invalid list is dropped whole,
/// the trace kept. The members' syntax is the SDK's to check.
fn is_valid_tracestate(list: &str) -> bool {
    let mut keys = [""; MAX_TRACESTATE_MEMBERS];
    let mut count = 0;
    for member in list.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let key = member.split_once('=').map_or(member, |(key, _)| key);
        if count == MAX_TRACESTATE_MEMBERS || keys[..count].contains(&key) {
            return false;
        }
        keys[count] = key;
        count += 1;
    }
    true
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent,
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let traceparent = self.traceparent.map(|_| TRACEPARENT);
        let tracestate = self.tracestate.as_ref().map(|_| TRACESTATE);
        traceparent.into_iter().chain(tracestate).collect()
    }
}

/// The outbound request headers as the propagator writes them.
pub(crate) struct HeaderInjector<'a>(pub(crate) &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::try_from(value),
        ) else {
            return;
        };
        if value.is_empty() {
            // An empty `tracestate` says nothing: leave it out (and drop a stale one).
            self.0.remove(name);
        } else {
            self.0.insert(name, value);
        }
    }
}

/// The remote span context of `headers`, if they carry a valid `traceparent`.
pub(crate) fn extract(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    use opentelemetry::propagation::TextMapPropagator as _;
    if !headers.contains_key(TRACEPARENT) {
        return None;
    }
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let cx = propagator.extract_with_context(
        &opentelemetry::Context::new(),
        &HeaderExtractor::new(headers),
    );
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes the access span the server span: a child of the remote parent that
/// [`TraceContextLayer`] found, if any; returns its ids, after putting them into the request's
/// extensions and context (when it has one). `None` when no `tracing-opentelemetry` layer sees
/// the span.
pub(crate) fn server_span_started<B>(
    span: &tracing::Span,
    req: &mut http::Request<B>,
) -> Option<TraceIds> {
    use crate::RequestExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if span.is_disabled() {
        return None;
    }
    if let Some(RemoteParent(parent)) = req.extensions().get::<RemoteParent>() {
        // Fails only without the OpenTelemetry layer or once the span was built: then the
        // span is not an OpenTelemetry span, or it keeps its parent.
        let _ = span.set_parent(parent.clone());
    }
    let cx = span.context();
    let server = cx.span();
    let span_context = server.span_context();
    let ids = TraceIds::from_span_context(span_context)?;
    req.extensions_mut().insert(ids);
    if req.try_context().is_some() {
        let request = req.context();
        request.insert(ids);
        let state = span_context.trace_state();
        if state.into_iter().len() != 0 {
            request.insert(ServerTraceState(state.clone()));
        }
    }
    Some(ids)
}

/// Writes `cx`'s span context into `headers` as `traceparent` / `tracestate`; returns its ids.
pub(crate) fn inject(cx: &opentelemetry::Context, headers: &mut HeaderMap) -> Option<TraceIds> {
    use opentelemetry::propagation::TextMapPropagator as _;
    let ids = TraceIds::from_span_context(cx.span().span_context())?;
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    propagator.inject_context(cx, &mut HeaderInjector(headers));
    Some(ids)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(TRACEPARENT, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn a_valid_traceparent_is_extracted() {
        let cx = extract(&headers(&[VALID.as_bytes()])).unwrap();
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
    }

    #[test]
    fn a_later_version_with_more_fields_is_extracted() {
        let value = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        assert!(extract(&headers(&[value.as_bytes()])).is_some());
    }

    #[test]
    fn hostile_traceparents_are_ignored() {
        let long = format!("{VALID}{}", "-a".repeat(4096));
        let cases: &[&str] = &[
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // short version
            "000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // long version
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short trace id
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01", // long trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  // short span id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  // short flags
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", // uppercase span id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", // uppercase flags
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // extra field on 00
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // a sign
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", // wrong separators
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // padding
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // no dash after flags
            "00-1-2-01",                                               // short ids
            "",
        ];
        for value in cases.iter().copied().chain([long.as_str()]) {
            assert!(
                extract(&headers(&[value.as_bytes()])).is_none(),
                "{value:?} was accepted"
            );
        }
    }

    #[test]
    fn a_repeated_traceparent_is_ignored() {
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert!(extract(&headers(&[VALID.as_bytes(), other.as_bytes()])).is_none());
    }

    #[test]
    fn a_hostile_tracestate_keeps_the_parent_and_drops_the_state() {
        let mut map = headers(&[VALID.as_bytes()]);
        map.insert(TRACESTATE, HeaderValue::from_static("=,,\t=x=y,%%%"));
        let cx = extract(&map).unwrap();
        assert_eq!(cx.span().span_context().trace_state().header(), "");
        map.insert(
            TRACESTATE,
            HeaderValue::try_from("a=b,".repeat(1000)).unwrap(),
        );
        let cx = extract(&map).unwrap();
        assert_eq!(cx.span().span_context().trace_state().header(), "");
    }

    #[test]
    fn tracestate_follows_the_w3c_suite() {
        let state = |values: &[&str]| {
            let mut map = headers(&[VALID.as_bytes()]);
            for v in values {
                map.append(TRACESTATE, HeaderValue::from_str(v).unwrap());
            }
            extract(&map)
                .expect("the trace is kept whatever the tracestate")
                .span()
                .span_context()
                .trace_state()
                .header()
        };
        // Several fields are combined (a MUST).
        assert_eq!(
            state(&["foo=1,bar=2", "rojo=1,congo=2"]),
            "foo=1,bar=2,rojo=1,congo=2"
        );
        assert_eq!(state(&["foo=1", ""]), "foo=1");
        assert_eq!(state(&["", "foo=1"]), "foo=1");
        // One entry per key, at most 32: else the whole list is invalid.
        assert_eq!(state(&["foo=1,foo=2"]), "");
        assert_eq!(state(&["foo=1", "bar=2,foo=3"]), "");
        let many: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
        assert_eq!(state(&[many.join(",").as_str()]), "");
        assert_eq!(
            state(&[many[..32].join(",").as_str()]),
            many[..32].join(",")
        );
        let (first, second) = many.split_at(20);
        assert_eq!(state(&[&first.join(","), &second.join(",")]), "");
        // Combined, still at most 512 bytes.
        let long = format!("a={}", "x".repeat(300));
        assert_eq!(state(&[&long, &long.replace("a=", "b=")]), "");
        // Hostile values never fail the request.
        assert_eq!(state(&[",,,", " , ", "=,=="]), "");
        assert_eq!(state(&["foo=1", "\t"]), "foo=1");
        assert_eq!(state(&["foo=1", "%%%"]), "");
    }

    #[test]
    fn injection_writes_a_traceparent_the_extractor_reads_back() {
        let remote = extract(&headers(&[VALID.as_bytes()])).unwrap();
        let mut out = HeaderMap::new();
        let ids = inject(&remote, &mut out).unwrap();
        assert_eq!(out[TRACEPARENT], VALID);
        assert!(!out.contains_key(TRACESTATE));
        assert_eq!(ids.to_string(), VALID);
        assert!(extract(&out).is_some());
    }

    #[test]
    fn an_invalid_context_injects_nothing() {
        let mut out = HeaderMap::new();
        assert!(inject(&opentelemetry::Context::new(), &mut out).is_none());
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_header_bytes_never_panic_and_accepted_ones_are_well_formed(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let map = headers(&[value.as_bytes()]);
                if let Some(cx) = extract(&map) {
                    prop_assert!(is_valid_traceparent(value.as_bytes()));
                    prop_assert!(cx.span().span_context().is_valid());
                }
            }
        }

        #[test]
        fn mutations_of_a_valid_traceparent_are_accepted_only_when_well_formed(
            index in 0usize..55,
            byte in any::<u8>(),
        ) {
            let mut value = VALID.as_bytes().to_vec();
            value[index] = byte;
            let Ok(header) = HeaderValue::from_bytes(&value) else { return Ok(()) };
            let accepted = extract(&headers(&[header.as_bytes()])).is_some();
            let lower_hex = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
            let expected = if [2, 35, 52].contains(&index) {
                byte == b'-'
            } else {
                lower_hex && !(index < 2 && value[..2] == *b"ff")
            };
            prop_assert_eq!(accepted, expected, "{:?}", String::from_utf8_lossy(&value));
        }
    }
}
