//! The time each std layer spends in its own code, recorded as context marks named `mw.<layer>`
//! when a layer asked for per-layer times ([`Context::request_layer_times`]: the timing layer
//! does when it reports them, see `ServerTimingLayer::per_layer_times`). Off by default:
//! recording costs a lock and, for the first mark of a request, an allocation.
//!
//! A layer measures its own code (not the inner service) and calls [`record`]:
//!
//! ```text
//! let started = layer_time::wanted(req.try_context()).then(Instant::now);
//! /* the layer's own work */
//! if let Some(started) = started {
//!     layer_time::record(req.try_context(), "mw.timeout", started.elapsed());
//! }
//! ```
//!
//! Pass the full `mw.<layer>` name as a `&'static str`: the mark then borrows it.
//!
//! The flag is set by the timing layer on its way in, so the layers inside it report and the
//! layers outside it, whose own code already ran, do not: put the timing layer outside the
//! layers whose times it should report.

use std::time::Duration;

use middleware_core::Context;

/// Whether `cx` asks for per-layer times: layers that would have to read a clock only to
/// call [`record`] check this first.
// Used by every std layer that times itself; a build with none of them leaves it unused.
#[allow(dead_code)]
pub(crate) fn wanted(cx: Option<&Context>) -> bool {
    cx.is_some_and(Context::layer_times_requested)
}

/// Records `spent` as the mark `layer` (a full `mw.<layer>` name) when the context asks for
/// layer times.
#[allow(dead_code)] // see `wanted`
pub(crate) fn record(cx: Option<&Context>, layer: &'static str, spent: Duration) {
    if let Some(cx) = cx.filter(|cx| cx.layer_times_requested()) {
        cx.mark(layer, spent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(cx: &Context) -> Vec<String> {
        cx.marks().iter().map(|m| m.name().to_owned()).collect()
    }

    #[test]
    fn nothing_is_recorded_unless_asked() {
        let cx = Context::new();
        assert!(!wanted(Some(&cx)));
        assert!(!wanted(None));
        record(Some(&cx), "mw.timeout", Duration::from_millis(1));
        record(None, "mw.timeout", Duration::from_millis(1));
        assert!(cx.marks().is_empty());
    }

    #[test]
    fn marks_are_recorded_once_asked_by_any_handle_of_the_request() {
        let cx = Context::new();
        let inner = cx.child();
        cx.request_layer_times();
        assert!(wanted(Some(&inner)));
        record(Some(&inner), "mw.timeout", Duration::from_millis(1));
        record(Some(&cx), "mw.auth", Duration::from_millis(2));
        assert_eq!(names(&cx), ["mw.timeout", "mw.auth"]);
    }
}
