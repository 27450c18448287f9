//! The access record of one request: created in `call`, carried by the future and then the
//! body, and turned into exactly one event: by `finish`, or by its `Drop`.

use std::{
    fmt::{self, Write as _},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::error_type::ErrorType;
use bytes::Buf;
use http::{HeaderMap, Request, Response, StatusCode};
use middleware_core::{CancelCause, Context, DropGuard, Expiry};
use tracing::{Level, Span, field};

use super::{
    MakeLevel, RequestOutcome,
    capture::{self, Capture, SharedCapture},
    escape::{Bare, EscapeDisplay, Limit, bounded},
    headers,
    layer::Config,
};

/// `tracing::span!` with a level chosen at run time.
macro_rules! dyn_span {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            Level::ERROR => tracing::span!(Level::ERROR, $($rest)+),
            Level::WARN => tracing::span!(Level::WARN, $($rest)+),
            Level::INFO => tracing::span!(Level::INFO, $($rest)+),
            Level::DEBUG => tracing::span!(Level::DEBUG, $($rest)+),
            _ => tracing::span!(Level::TRACE, $($rest)+),
        }
    };
}

/// `tracing::event!` with a level chosen at run time.
macro_rules! dyn_event {
    (parent: $parent:expr, $level:expr, $($rest:tt)+) => {
        match $level {
            Level::ERROR => tracing::event!(parent: $parent, Level::ERROR, $($rest)+),
            Level::WARN => tracing::event!(parent: $parent, Level::WARN, $($rest)+),
            Level::INFO => tracing::event!(parent: $parent, Level::INFO, $($rest)+),
            Level::DEBUG => tracing::event!(parent: $parent, Level::DEBUG, $($rest)+),
            _ => tracing::event!(parent: $parent, Level::TRACE, $($rest)+),
        }
    };
}

/// Whether the current subscriber (thread-local or global) would record an access event at
/// any level: `ERROR` is the least verbose level an event can have, so if it is off, all are.
/// Same target as the events (this module), so per-target filters agree.
pub(crate) fn any_event_enabled() -> bool {
    tracing::enabled!(Level::ERROR)
}

/// The most the method takes in a record (bytes of escaped text, before the cut marker).
pub(crate) const MAX_METHOD: usize = 32;
/// The most the path takes.
pub(crate) const MAX_PATH: usize = 2048;
/// The most the (masked) query takes.
pub(crate) const MAX_QUERY: usize = 2048;
/// The most the request id takes.
pub(crate) const MAX_REQUEST_ID: usize = 256;
/// The most an error message takes.
pub(crate) const MAX_ERROR: usize = 1024;

/// The most the `Host`-derived `server.address` and the route take.
pub(crate) const MAX_ADDRESS: usize = 256;
/// The most the user agent takes.
pub(crate) const MAX_USER_AGENT: usize = 256;

mod span;

pub(crate) use span::make_span;

pub(crate) mod semconv;

/// The clock: the context's (tokio's, so paused test clocks are honoured) when the request
/// has a context, the standard monotonic clock otherwise.
enum Start {
    Context(Duration),
    Std(std::time::Instant),
}

/// One request's access record, as carried by the layer's future and then its body: the full
/// record behind one allocation when a subscriber may see the event, or a few bytes when none
/// can (then the future and the response body stay small, and only the client-gone
/// cancellation is kept).
pub(crate) enum Access<L: MakeLevel> {
    Off(Watch),
    On(Box<Record<L>>),
}

impl<L: MakeLevel> Access<L> {
    /// A record for when no subscriber can see anything (`LevelFilter::current()` is `OFF`):
    /// it reads no clock and emits nothing, so the layer costs next to nothing then.
    pub(crate) const fn off(guard: DropGuard) -> Self {
        Self::Off(Watch {
            guard,
            polling: false,
            ended: false,
            sent: false,
        })
    }

    pub(crate) fn on(record: Record<L>) -> Self {
        Self::On(Box::new(record))
    }

    /// Runs `f` (a call or poll of the inner service or body) inside the request span, noting
    /// that it runs: if `f` unwinds, the record is dropped while still marked, which is how a
    /// panic is told from a disconnect, whoever catches it.
    pub(crate) fn polling<T>(&mut self, f: impl FnOnce() -> T) -> T {
        match self {
            Self::Off(watch) => {
                watch.polling = true;
                let out = f();
                watch.polling = false;
                out
            }
            Self::On(record) => {
                let _entered = record.span.enter();
                record.polling = true;
                let out = f();
                record.polling = false;
                out
            }
        }
    }

    /// Starts a request body capture of `limit` bytes; the body wrapper gets the other handle.
    /// When off, the capture is made but never read.
    pub(crate) fn capture_request(&mut self, limit: usize) -> SharedCapture {
        match self {
            Self::Off(_) => Arc::new(Mutex::new(Capture::new(limit))),
            Self::On(record) => record.capture_request(limit),
        }
    }

    /// See [`Record::response`].
    pub(crate) fn response<B>(&mut self, res: &Response<B>) {
        if let Self::On(record) = self {
            record.response(res);
        }
    }

    /// See [`Record::data`].
    pub(crate) fn data(&mut self, data: &impl Buf) {
        if let Self::On(record) = self {
            record.data(data);
        }
    }

    /// See [`Record::completed`].
    pub(crate) fn completed(&self) -> RequestOutcome {
        match self {
            Self::Off(_) => RequestOutcome::Completed,
            Self::On(record) => record.completed(),
        }
    }

    /// The response's declared length has streamed: dropped from now on, it was complete.
    pub(crate) fn sent(&mut self) {
        match self {
            Self::Off(watch) => watch.sent = true,
            Self::On(record) => record.sent = true,
        }
    }

    /// Emits the access event, once (notes the end, when off).
    pub(crate) fn finish(&mut self, outcome: RequestOutcome, error: Option<&dyn fmt::Display>) {
        match self {
            Self::Off(watch) => watch.ended = true,
            Self::On(record) => record.finish(outcome, error),
        }
    }
}

impl<L: MakeLevel> fmt::Debug for Access<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off(watch) => f
                .debug_struct("Access")
                .field("off", &true)
                .field("ended", &watch.ended)
                .finish_non_exhaustive(),
            Self::On(record) => fmt::Debug::fmt(record, f),
        }
    }
}

/// What is left of a record when logging is off: the client-gone cancellation of [`Record`]'s
/// `Drop`, with the same rules, through the context's drop guard (a thin handle: the future
/// and the body that carry it stay small).
pub(crate) struct Watch {
    guard: DropGuard,
    polling: bool,
    ended: bool,
    /// The response's declared length has streamed: dropped now, it was complete.
    sent: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.ended || self.sent || self.polling || std::thread::panicking() {
            self.guard.disarm();
        }
        // Otherwise the guard cancels with `Dropped` as it drops. The first cause wins: a
        // context already cancelled (deadline, explicit, panicked) keeps its cause.
    }
}

/// One request's pending access event.
// Five independent facts about one record (polling, id recorded, emitted, ended, sent): not a
// state machine in disguise.
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct Record<L: MakeLevel> {
    span: Span,
    /// Set while the inner service is being called or polled: if the record is dropped while
    /// it is still set, the poll unwound (a panic), whoever caught it.
    polling: bool,
    config: Arc<Config>,
    level: L,
    cx: Option<Context>,
    start: Start,
    id_recorded: bool,
    status: Option<StatusCode>,
    headers_at: Option<Duration>,
    /// The outcome if the body ends normally: `TimedOut` when the deadline had passed by the
    /// time the response arrived (an inner timeout layer's answer).
    on_complete: RequestOutcome,
    /// Boxed: only with header logging on, and a `HeaderMap` is large. Written when the
    /// request ends, so that headers declared sensitive meanwhile (by an auth layer inside)
    /// are redacted.
    request_headers: Option<Box<HeaderMap>>,
    /// Boxed: only with header logging on, and a `HeaderMap` is large.
    response_headers: Option<Box<HeaderMap>>,
    body_bytes: u64,
    /// Boxed: only with body capture on.
    capture: Option<Box<Capture>>,
    request_capture: Option<SharedCapture>,
    /// The server span's trace id and span id (`otel`), for the event.
    trace: Option<(u128, u64)>,
    /// The event was emitted (or, with logging off, would have been).
    done: bool,
    /// The request reached an end that `finish` saw: a complete body, an error.
    ended: bool,
    /// The response's declared length has streamed: dropped now, it was complete.
    sent: bool,
}

impl<L: MakeLevel> Record<L> {
    pub(crate) fn new(config: Arc<Config>, level: L, cx: Option<Context>) -> Self {
        let start = match &cx {
            Some(cx) => Start::Context(cx.elapsed()),
            None => Start::Std(std::time::Instant::now()),
        };
        Self::with_start(config, level, cx, start)
    }

    fn with_start(config: Arc<Config>, level: L, cx: Option<Context>, start: Start) -> Self {
        Self {
            span: Span::none(),
            polling: false,
            config,
            level,
            cx,
            start,
            id_recorded: false,
            status: None,
            headers_at: None,
            on_complete: RequestOutcome::Completed,
            request_headers: None,
            response_headers: None,
            body_bytes: 0,
            capture: None,
            request_capture: None,
            trace: None,
            done: false,
            ended: false,
            sent: false,
        }
    }

    /// Sets the request span, and keeps a copy of the request headers when they are logged.
    pub(crate) fn set_span<B>(&mut self, span: Span, req: &Request<B>) {
        self.id_recorded = self.cx.as_ref().and_then(Context::request_id).is_some();
        if self.config.headers && !span.is_disabled() {
            self.request_headers = Some(Box::new(req.headers().clone()));
        }
        self.span = span;
    }

    /// Notes the server span's trace id and span id, for the event (`otel`).
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) const fn set_trace(&mut self, trace_id: u128, span_id: u64) {
        self.trace = Some((trace_id, span_id));
    }

    /// Starts a request body capture of `limit` bytes; the body wrapper gets the other handle.
    pub(crate) fn capture_request(&mut self, limit: usize) -> SharedCapture {
        let capture = Arc::new(Mutex::new(Capture::new(limit)));
        self.request_capture = Some(Arc::clone(&capture));
        capture
    }

    pub(crate) fn context(&self) -> Option<&Context> {
        self.cx.as_ref()
    }

    pub(crate) fn elapsed(&self) -> Duration {
        match &self.start {
            // `Start::Context` is only chosen when there is a context, which is never removed.
            Start::Context(start) => self
                .cx
                .as_ref()
                .map_or(Duration::ZERO, |cx| cx.elapsed().saturating_sub(*start)),
            Start::Std(start) => start.elapsed(),
        }
    }

    /// Notes the response head; the body is still to come.
    pub(crate) fn response<B>(&mut self, res: &Response<B>) {
        self.status = Some(res.status());
        self.headers_at = Some(self.elapsed());
        if self.cause() == Some(CancelCause::Deadline) {
            self.on_complete = RequestOutcome::TimedOut;
        }
        self.span
            .record("http.response.status_code", res.status().as_u16());
        if self.config.headers && !self.span.is_disabled() {
            self.response_headers = Some(Box::new(res.headers().clone()));
        }
        if let Some(limit) = self.config.response_body {
            self.capture = Some(Box::new(Capture::new(limit)));
        }
    }

    /// Counts (and, when asked, copies the start of) a data frame.
    pub(crate) fn data(&mut self, data: &impl Buf) {
        self.body_bytes = self.body_bytes.saturating_add(data.remaining() as u64);
        if let Some(capture) = &mut self.capture {
            capture.push(data);
        }
    }

    fn cause(&self) -> Option<CancelCause> {
        self.cx.as_ref().and_then(Context::cause)
    }

    /// The outcome of a response whose body ended normally.
    pub(crate) const fn completed(&self) -> RequestOutcome {
        self.on_complete
    }

    /// The outcome of a request dropped before its end.
    fn dropped(&self) -> RequestOutcome {
        if self.polling || std::thread::panicking() {
            return RequestOutcome::Panicked;
        }
        match self.cause() {
            Some(CancelCause::Deadline) => RequestOutcome::TimedOut,
            Some(CancelCause::Explicit) => RequestOutcome::Cancelled,
            Some(CancelCause::Panicked) => RequestOutcome::Panicked,
            _ => RequestOutcome::Disconnected,
        }
    }

    /// The outcome, refined by the expiry a timeout layer reported: a deadline that expired
    /// was the client's own, or the server's.
    fn with_expiry(outcome: RequestOutcome, expiry: Option<Expiry>) -> RequestOutcome {
        // A body error is the timeout layer's own when it reported an expiry (a response
        // body cut by its deadline): the same rule as the metrics' `error.type`.
        match (outcome, expiry) {
            (
                RequestOutcome::Completed
                | RequestOutcome::TimedOut
                | RequestOutcome::Disconnected
                | RequestOutcome::Error,
                Some(expiry),
            ) if expiry.is_by_client() => RequestOutcome::ClientDeadline,
            (
                RequestOutcome::Completed | RequestOutcome::Disconnected | RequestOutcome::Error,
                Some(_),
            ) => RequestOutcome::TimedOut,
            (outcome, _) => outcome,
        }
    }

    /// Emits the access event, once.
    pub(crate) fn finish(&mut self, outcome: RequestOutcome, error: Option<&dyn fmt::Display>) {
        self.ended = true;
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let cx = self.cx.as_ref();
        if !self.id_recorded {
            if let Some(id) = cx.and_then(Context::request_id) {
                let id = Limit(Bare(id.as_str()), MAX_REQUEST_ID);
                self.span.record("request_id", field::display(id));
            }
        }
        let expiry = cx.and_then(Context::expiry);
        let outcome = Self::with_expiry(outcome, expiry);
        let level = self.level.make_level(outcome, self.status);
        let cause = self.cause();
        let config = &*self.config;
        if let Some(map) = self.request_headers.take() {
            let text = headers::format(&map, &config.header_policy, &config.query_keys, cx);
            self.span.record("http.request.headers", text.as_str());
        }
        let response_headers = self
            .response_headers
            .as_deref()
            .map(|map| headers::format(map, &config.header_policy, &config.query_keys, cx));
        let error = error.map(|e| bounded(MAX_ERROR, |f| write!(f, "{}", EscapeDisplay(e))));
        let request_body = self.request_capture.as_ref().map(capture::lock);
        let request_body_text = request_body.as_deref().map(Capture::to_string);
        let response_body = self.capture.as_deref().map(Capture::to_string);
        let error_type = error_type(outcome, self.status);
        if let Some(error_type) = error_type {
            self.span.record("error.type", field::display(error_type));
            #[cfg(feature = "otel")]
            if outcome != RequestOutcome::ClientDeadline {
                self.span.record("otel.status_code", "error");
            }
        }
        dyn_event!(
            parent: &self.span,
            level,
            outcome = outcome.as_str(),
            http.response.status_code = self.status.map(|s| s.as_u16()),
            duration_ms = millis(self.elapsed()),
            headers_ms = self.headers_at.map(millis),
            http.response.body.size = self.status.map(|_| self.body_bytes),
            cancel_cause = cause.map(CancelCause::as_str),
            timeout.phase = expiry.map(|e| e.phase().as_str()),
            error = error.as_deref(),
            http.response.headers = response_headers.as_deref(),
            http.response.body = response_body.as_deref(),
            http.request.body = request_body_text.as_deref(),
            http.request.body.size = request_body.as_deref().map(Capture::size),
            trace_id = self.trace.map(|(id, _)| field::display(Hex(id, 32))),
            span_id = self.trace.map(|(_, id)| field::display(Hex(u128::from(id), 16))),
            "request finished"
        );
    }
}

impl<L: MakeLevel> Drop for Record<L> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if self.sent && !self.polling && !std::thread::panicking() {
            // Dropped after its declared length streamed: a server stops polling there.
            self.finish(self.completed(), None);
            return;
        }
        let outcome = self.dropped();
        // The client went away (before the head or in the middle of the body): the request is
        // over, so its context is cancelled with `dropped` and spawned work can stop. (Before
        // the head the adapters' drop guards do the same; the first cause wins.)
        if matches!(outcome, RequestOutcome::Disconnected) {
            if let Some(cx) = &self.cx {
                cx.cancel_with(CancelCause::Dropped);
            }
        }
        self.finish(outcome, None);
    }
}

impl<L: MakeLevel> fmt::Debug for Record<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("span", &self.span)
            .field("status", &self.status)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// `error.type` of a request, by the HTTP semantic conventions and the crate's shared
/// vocabulary (the server metrics use the same): the status code of a 5xx response, else the
/// outcome of a request that did not complete (`_OTHER` for an error, `panic`, `timeout`,
/// `cancelled`, `disconnected`, `client_deadline`).
fn error_type(outcome: RequestOutcome, status: Option<StatusCode>) -> Option<ErrorType> {
    Some(match outcome {
        RequestOutcome::Completed => return ErrorType::server_status(status),
        RequestOutcome::Error => ErrorType::Other,
        RequestOutcome::Panicked => ErrorType::Panic,
        RequestOutcome::TimedOut => ErrorType::Timeout,
        RequestOutcome::Cancelled => ErrorType::Cancelled,
        RequestOutcome::Disconnected => ErrorType::Disconnected,
        RequestOutcome::ClientDeadline => ErrorType::ClientDeadline,
    })
}

/// An id in lowercase hex, zero-padded to `.1` digits.
struct Hex(u128, usize);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$x}", self.0, width = self.1)
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl<L: MakeLevel> Access<L> {
    /// For a record that started without the request's context (a request-id layer inside
    /// this one made it: the reverse of the recommended order), the id that layer put on the
    /// response (the request-id layer's `response_extension`, on by default), so that the
    /// record does not lose it.
    pub(crate) fn response_request_id(&mut self, extensions: &http::Extensions) {
        let Self::On(record) = self else { return };
        if record.id_recorded || record.cx.is_some() {
            return;
        }
        if let Some(id) = extensions.get::<middleware_core::RequestId>() {
            let id = Limit(Bare(id.as_str()), MAX_REQUEST_ID);
            record.span.record("request_id", field::display(id));
            record.id_recorded = true;
        }
    }
}
