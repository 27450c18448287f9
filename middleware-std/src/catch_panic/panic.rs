//! [`Panic`], the responder hook, the opt-in location hook and the one log event.

use std::{any::Any, cell::RefCell, fmt, panic::PanicHookInfo, sync::Once};

use bytes::Bytes;
use http::{Response, StatusCode};
use middleware_core::{Context, Error, RequestId};

/// Where a panic was caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PanicSite {
    /// The inner service's `poll_ready`.
    PollReady,
    /// The inner service's `call`.
    Call,
    /// The response future (any poll).
    ResponseFuture,
    /// The response body, after the head was sent.
    ResponseBody,
}

impl PanicSite {
    /// A short lowercase name for logs: `poll_ready`, `call`, `response_future`,
    /// `response_body`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PollReady => "poll_ready",
            Self::Call => "call",
            Self::ResponseFuture => "response_future",
            Self::ResponseBody => "response_body",
        }
    }
}

impl fmt::Display for PanicSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Source location of a panic, known when [`install_panic_hook`] (or
/// [`record_panic_location`] in the application's own hook) recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicLocation {
    file: String,
    line: u32,
    column: u32,
}

impl PanicLocation {
    /// The source file.
    #[must_use]
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line.
    #[must_use]
    pub const fn line(&self) -> u32 {
        self.line
    }

    /// The column.
    #[must_use]
    pub const fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A caught panic: its payload, its location when known, and where it was caught.
///
/// The payload is for logs and custom responders; the default response never shows it.
pub struct Panic {
    payload: Box<dyn Any + Send + 'static>,
    location: Option<PanicLocation>,
    site: PanicSite,
}

impl Panic {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>, site: PanicSite) -> Self {
        let location = take_location(payload_message(&*payload));
        Self {
            payload,
            location,
            site,
        }
    }

    /// The panic message, when the payload is a string (as with `panic!("...")`).
    #[must_use]
    pub fn message(&self) -> Option<&str> {
        payload_message(&*self.payload)
    }

    /// Where the panic happened, when a hook recorded it (see [`install_panic_hook`]).
    #[must_use]
    pub const fn location(&self) -> Option<&PanicLocation> {
        self.location.as_ref()
    }

    /// Where the panic was caught.
    #[must_use]
    pub const fn site(&self) -> PanicSite {
        self.site
    }

    /// The raw payload.
    #[must_use]
    pub fn payload(&self) -> &(dyn Any + Send + 'static) {
        &*self.payload
    }

    /// The raw payload, e.g. to resume the panic with `std::panic::resume_unwind`.
    #[must_use]
    pub fn into_payload(self) -> Box<dyn Any + Send + 'static> {
        self.payload
    }

    /// Logs the panic once, at error level, with the request id from `cx`.
    pub(crate) fn log(&self, cx: Option<&Context>) {
        let request_id = cx
            .and_then(Context::request_id)
            .map_or("", RequestId::as_str);
        let location = self
            .location
            .as_ref()
            .map_or_else(String::new, PanicLocation::to_string);
        // `?` (Debug) escapes CR, LF and control characters: one record per event.
        tracing::error!(
            request_id,
            panic.message = ?self.message().unwrap_or("<non-string payload>"),
            panic.location = ?location,
            panic.site = self.site.as_str(),
            "request panicked"
        );
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Panic))
            .field("message", &self.message())
            .field("location", &self.location)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

fn payload_message<'a>(payload: &'a (dyn Any + Send + 'static)) -> Option<&'a str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Makes the response for a panic caught before the response head was sent.
///
/// Implemented for [`DefaultResponseForPanic`] and for closures
/// `Fn(&Panic, &Context) -> Response<Bytes> + Clone`. The panic is logged by the layer,
/// whatever the responder. A responder that panics itself is caught too: the answer is then
/// the fixed [`ProblemDetails::fallback`](crate::ProblemDetails::fallback) `500`, built without
/// any application code (the request's panic is still logged once).
pub trait ResponseForPanic: Clone {
    /// The response for `panic`. `cx` is the request's context (a fresh one if the request had
    /// none), for its request id and error renderer.
    fn response_for_panic(&self, panic: &Panic, cx: &Context) -> Response<Bytes>;
}

impl<F> ResponseForPanic for F
where
    F: Fn(&Panic, &Context) -> Response<Bytes> + Clone,
{
    fn response_for_panic(&self, panic: &Panic, cx: &Context) -> Response<Bytes> {
        self(panic, cx)
    }
}

/// The default responder: `500 Internal Server Error` rendered by the context's renderer
/// (RFC 9457 problem details with the request id by default), never the payload. If the
/// application's renderer panics, [`Context::render_error`] answers with the fixed
/// [`ProblemDetails::fallback`](crate::ProblemDetails::fallback) instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultResponseForPanic;

impl ResponseForPanic for DefaultResponseForPanic {
    fn response_for_panic(&self, _: &Panic, cx: &Context) -> Response<Bytes> {
        cx.render_error(&Error::new(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

thread_local! {
    /// The message and location of the last panic on this thread, recorded by the hook and
    /// taken by the next catch on this thread (unwinding stays on the panicking thread).
    static LAST_PANIC: RefCell<Option<(Option<String>, PanicLocation)>> = const { RefCell::new(None) };
}

/// Installs a process-wide panic hook that records each panic's location for
/// [`CatchPanic`](super::CatchPanic), then calls the hook that was installed before (by default
/// the one printing to stderr). Installs once; later calls do nothing.
///
/// Without a hook, Rust tells a `catch_unwind` caller the payload but not the location, so
/// the layer logs the message only. Nothing installs a hook behind the application's back: call
/// this at startup, or call [`record_panic_location`] from a hook of your own.
pub fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            record_panic_location(info);
            previous(info);
        }));
    });
}

/// Records the location of the panic being reported, for the next catch on this thread. Call
/// it from your own panic hook instead of [`install_panic_hook`].
pub fn record_panic_location(info: &PanicHookInfo<'_>) {
    let Some(location) = info.location() else {
        return;
    };
    let location = PanicLocation {
        file: location.file().to_owned(),
        line: location.line(),
        column: location.column(),
    };
    let message = payload_message(info.payload()).map(str::to_owned);
    // `try_with`: a panic during thread teardown has no slot; nothing to record then.
    let _ = LAST_PANIC.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some((message, location));
        }
    });
}

/// The recorded location, if the recorded message matches the caught payload's (a stale
/// record from a panic caught elsewhere is discarded, not misattributed).
fn take_location(message: Option<&str>) -> Option<PanicLocation> {
    let (recorded, location) = LAST_PANIC
        .try_with(|last| last.try_borrow_mut().ok()?.take())
        .ok()??;
    (recorded.as_deref() == message).then_some(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: Option<&str>) {
        LAST_PANIC.with(|last| {
            *last.borrow_mut() = Some((
                message.map(str::to_owned),
                PanicLocation {
                    file: String::from("src/handler.rs"),
                    line: 7,
                    column: 9,
                },
            ));
        });
    }

    #[test]
    fn a_recorded_location_is_used_by_the_matching_catch_only() {
        record(Some("boom"));
        let panic = Panic::new(Box::new("boom"), PanicSite::Call);
        assert_eq!(panic.location().unwrap().to_string(), "src/handler.rs:7:9");
        // Taken: a second catch does not reuse it.
        assert_eq!(
            Panic::new(Box::new("boom"), PanicSite::Call).location(),
            None
        );

        // A stale record from a panic caught elsewhere is discarded, not misattributed.
        record(Some("another panic"));
        assert_eq!(
            Panic::new(Box::new("boom"), PanicSite::Call).location(),
            None
        );
        assert_eq!(
            Panic::new(Box::new("another panic"), PanicSite::Call).location(),
            None
        );

        record(None);
        let panic = Panic::new(Box::new(42_u8), PanicSite::ResponseBody);
        assert_eq!(panic.location().map(PanicLocation::line), Some(7));
        assert_eq!(panic.message(), None);
        assert_eq!(panic.payload().downcast_ref::<u8>(), Some(&42));
        assert_eq!(
            panic.into_payload().downcast::<u8>().ok().as_deref(),
            Some(&42)
        );
    }
}
