//! Counting the access log: a `tracing` layer that prints nothing and attributes every
//! `request finished` event to its request (by the request id `rel-<i>` the client sent), so
//! that "exactly one record per request" is checked per request, not in aggregate.
//!
//! Per request one `AtomicU64` slot, allocated and touched before the warm-up (so it does not
//! show in the RSS comparison), receives one `fetch_add` per event:
//! `1 << 48 | outcome << 40 | cause << 32 | status`. A slot whose count is 1 holds exact
//! fields; a count above 1 is the failure itself.

use std::{
    fmt::{self, Write as _},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

use super::{hostile::TOKEN, mix};

static RECORDS: OnceLock<Vec<AtomicU64>> = OnceLock::new();
/// The protection phase's requests (ids `prot-<i>`), a table of their own.
static PROTECT_RECORDS: OnceLock<Vec<AtomicU64>> = OnceLock::new();
/// Marks a protection-phase number in [`RequestNumber`].
const PROTECT_TAG: u64 = 1 << 63;

/// Events the layer could not attribute to a request, and other counters.
pub static UNATTRIBUTED: AtomicU64 = AtomicU64::new(0);
pub static PANIC_EVENTS: AtomicU64 = AtomicU64::new(0);
pub static EVENTS: AtomicU64 = AtomicU64::new(0);
/// Logged request-header sets that carried an `authorization` header, and how many showed
/// it `[redacted]`; and any logged field in which the secret token appeared.
pub static AUTH_HEADERS: AtomicU64 = AtomicU64::new(0);
pub static AUTH_REDACTED: AtomicU64 = AtomicU64::new(0);
pub static SECRET_LEAKS: AtomicU64 = AtomicU64::new(0);

/// Allocates (and touches) one slot per request number.
pub fn init(total: u64) {
    let slots: Vec<AtomicU64> = (0..total).map(|_| AtomicU64::new(0)).collect();
    for slot in &slots {
        slot.store(0, Relaxed);
    }
    RECORDS.set(slots).expect("init once");
}

/// Allocates (and touches) one slot per request number of the protection phase.
pub fn init_protect(total: u64) {
    let slots: Vec<AtomicU64> = (0..total).map(|_| AtomicU64::new(0)).collect();
    for slot in &slots {
        slot.store(0, Relaxed);
    }
    PROTECT_RECORDS.set(slots).expect("init once");
}

/// The slot of the protection phase's request `i`.
pub fn protect_slot(i: u64) -> u64 {
    PROTECT_RECORDS
        .get()
        .and_then(|r| r.get(usize::try_from(i).ok()?))
        .map_or(0, |s| s.load(Relaxed))
}

pub fn slot(i: u64) -> u64 {
    RECORDS
        .get()
        .and_then(|r| r.get(usize::try_from(i).ok()?))
        .map_or(0, |s| s.load(Relaxed))
}

/// The fields of a slot: (events, outcome code, cause code, status).
pub const fn fields(slot: u64) -> (u64, u64, u64, u64) {
    (
        slot >> 48,
        (slot >> 40) & 0xff,
        (slot >> 32) & 0xff,
        slot & 0xffff,
    )
}

pub fn cause_code(cause: &str) -> u64 {
    match cause {
        "deadline" => 1,
        "dropped" => 2,
        "explicit" => 3,
        "panicked" => 4,
        _ => 5,
    }
}

pub const fn cause_name(code: u64) -> &'static str {
    match code {
        0 => "-",
        1 => "deadline",
        2 => "dropped",
        3 => "explicit",
        4 => "panicked",
        _ => "unknown",
    }
}

/// The request number in a request id `rel-<i>`.
pub fn request_number(id: &str) -> Option<u64> {
    id.strip_prefix("rel-")?.parse().ok()
}

/// The number of a logged request id: `rel-<i>` as `i`, `prot-<i>` as `i` tagged with
/// [`PROTECT_TAG`].
fn tagged_number(id: &str) -> Option<u64> {
    if let Some(n) = id.strip_prefix("prot-") {
        return n
            .parse::<u64>()
            .ok()
            .filter(|n| n & PROTECT_TAG == 0)
            .map(|n| n | PROTECT_TAG);
    }
    request_number(id)
}

/// The layer. Install it on a `tracing_subscriber::registry()`.
#[derive(Debug, Default)]
pub struct AccessCounter;

/// Stored in the `request` span's extensions.
struct RequestNumber(u64);

#[derive(Default)]
struct SpanFields {
    number: Option<u64>,
    buf: String,
}

impl Visit for SpanFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "request_id" => {
                self.buf.clear();
                let _ = write!(self.buf, "{value:?}");
                self.number = tagged_number(&self.buf);
            }
            "http.request.headers" => {
                self.buf.clear();
                let _ = write!(self.buf, "{value:?}");
                if self.buf.contains(TOKEN) {
                    SECRET_LEAKS.fetch_add(1, Relaxed);
                }
                if self.buf.contains("authorization") {
                    AUTH_HEADERS.fetch_add(1, Relaxed);
                    if self.buf.contains("authorization: [redacted]") {
                        AUTH_REDACTED.fetch_add(1, Relaxed);
                    }
                }
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct EventFields {
    finished: bool,
    outcome: u64,
    cause: u64,
    status: u64,
    buf: String,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "outcome" => self.outcome = mix::outcome_code(value),
            "cancel_cause" => self.cause = cause_code(value),
            _ => {}
        }
        if value.contains(TOKEN) {
            SECRET_LEAKS.fetch_add(1, Relaxed);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "http.response.status_code" {
            self.status = value & 0xffff;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.buf.clear();
        let _ = write!(self.buf, "{value:?}");
        if field.name() == "message" && self.buf == "request finished" {
            self.finished = true;
        }
        if self.buf.contains(TOKEN) {
            SECRET_LEAKS.fetch_add(1, Relaxed);
        }
    }
}

impl<S> Layer<S> for AccessCounter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "request" {
            return;
        }
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        if let (Some(n), Some(span)) = (fields.number, ctx.span(id)) {
            span.extensions_mut().insert(RequestNumber(n));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.name() != "request" {
            return;
        }
        let mut fields = SpanFields::default();
        values.record(&mut fields);
        if let Some(n) = fields.number {
            let mut ext = span.extensions_mut();
            if ext.get_mut::<RequestNumber>().is_none() {
                ext.insert(RequestNumber(n));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if target.starts_with("middleware_std::catch_panic") {
            PANIC_EVENTS.fetch_add(1, Relaxed);
            return;
        }
        if !target.starts_with("middleware_std::logging") {
            return;
        }
        let mut fields = EventFields::default();
        event.record(&mut fields);
        if !fields.finished {
            return;
        }
        EVENTS.fetch_add(1, Relaxed);
        let number = ctx
            .event_span(event)
            .and_then(|span| span.extensions().get::<RequestNumber>().map(|n| n.0));
        let slot = number.and_then(|n| {
            let table = if n & PROTECT_TAG == 0 {
                &RECORDS
            } else {
                &PROTECT_RECORDS
            };
            table.get()?.get(usize::try_from(n & !PROTECT_TAG).ok()?)
        });
        match slot {
            Some(slot) => {
                slot.fetch_add(
                    1 << 48 | fields.outcome << 40 | fields.cause << 32 | fields.status,
                    Relaxed,
                );
            }
            None => {
                UNATTRIBUTED.fetch_add(1, Relaxed);
            }
        }
    }
}
