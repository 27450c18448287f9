//! The time each std layer spends in its own code, recorded as context marks named `mw.<layer>`
//! when the request's context carries [`LayerTimes`] (the timing layer inserts it when asked
//! to report per-layer times, see `ServerTimingLayer::per_layer_times`). Off by default:
//! recording costs a lock and, for the first mark of a request, an allocation.
//!
//! A layer measures its own code (not the inner service) and calls [`record`]:
//!
//! ```text
//! let started = tokio::time::Instant::now();
//! /* the layer's own work */
//! layer_time::record(req.try_context(), "mw.timeout", started.elapsed());
//! ```
//!
//! Pass the full `mw.<layer>` name as a `&'static str`: the mark then borrows it. A bare
//! `<layer>` name works too, at the cost of one allocation for the prefixed copy.
//!
//! The value is a snapshot like every context value: only layers *inside* the timing layer see
//! it, so put the timing layer outside the layers whose times it should report.

use std::time::Duration;

use middleware_core::Context;

/// The prefix of per-layer mark names.
#[cfg_attr(not(feature = "logging"), allow(dead_code))] // see `record`
pub(crate) const PREFIX: &str = "mw.";

/// Context value: present when per-layer times are wanted.
#[cfg_attr(not(feature = "timing"), allow(dead_code))] // only the timing layer inserts it
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LayerTimes;

/// Whether `cx` asks for per-layer times: layers that would have to read a clock only to
/// call [`record`] check this first.
#[cfg_attr(not(feature = "logging"), allow(dead_code))] // see `record`
pub(crate) fn wanted(cx: Option<&Context>) -> bool {
    cx.is_some_and(|cx| cx.get::<LayerTimes>().is_some())
}

/// Records `spent` as the mark `mw.<layer>` when the context asks for layer times. `layer` may
/// already carry the `mw.` prefix (no allocation) or not (one allocation for the prefixed name).
// Called by the std layers that time themselves; with none of them enabled it is unused. Add
// each layer's feature to this list when it starts recording.
#[cfg_attr(not(feature = "logging"), allow(dead_code))]
pub(crate) fn record(cx: Option<&Context>, layer: &'static str, spent: Duration) {
    if let Some(cx) = cx.filter(|cx| cx.get::<LayerTimes>().is_some()) {
        if layer.starts_with(PREFIX) {
            cx.mark(layer, spent);
        } else {
            cx.mark(format!("{PREFIX}{layer}"), spent);
        }
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
    fn marks_are_prefixed_once() {
        let mut cx = Context::new();
        cx.insert(LayerTimes);
        assert!(wanted(Some(&cx)));
        record(Some(&cx), "mw.timeout", Duration::from_millis(1));
        record(Some(&cx), "auth", Duration::from_millis(2));
        assert_eq!(names(&cx), ["mw.timeout", "mw.auth"]);
    }
}
