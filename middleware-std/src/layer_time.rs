//! The time each std layer spends in its own code, recorded as context marks named `mw.<layer>`
//! when the request's context carries [`LayerTimes`] (the timing layer inserts it when asked
//! to report per-layer times). Off by default: recording costs a lock and, for the first mark, an
//! allocation.
// Until the std layers call into it (the timing helper wires it up and drops this allow).
#![allow(dead_code)]

use std::time::Duration;

use middleware_core::Context;

/// Context value: present when per-layer times are wanted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LayerTimes;

/// Records `spent` as the mark `mw.<layer>` when the context asks for layer times.
pub(crate) fn record(cx: Option<&Context>, layer: &'static str, spent: Duration) {
    if let Some(cx) = cx {
        if cx.get::<LayerTimes>().is_some() {
            cx.mark(layer, spent);
        }
    }
}
