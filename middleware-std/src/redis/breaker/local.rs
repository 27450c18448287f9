//! What an instance keeps locally: its view of the shared circuits, and what its permits
//! carry (the generation, and a probe's slot id).

use std::{collections::HashMap, time::Instant};

use crate::breaker::{Permit, Transition};

/// The most circuits the local view holds (as [`MemoryStore`](crate::breaker::MemoryStore)'s default).
pub(super) const MAX_VIEWS: usize = 1024;

/// A permit's generation bit for the calls the local fallback admitted.
pub(super) const LOCAL: u64 = 1 << 63;

/// The generation of a permit the fail-open fallback handed out (counts for nothing).
pub(super) const NOTHING: u64 = u64::MAX;

/// The bit of a closed permit handed out by a view that has not learned its circuit's
/// generation (made afresh: a circuit new to this instance, or its view evicted); the low
/// bits hold when it was issued (milliseconds since the store was made). Redis counts its
/// outcome in the current closed period if that began before the permit was issued.
pub(super) const UNKNOWN: u64 = 1 << 62;

/// A Redis probe permit's generation: the circuit's generation in the low 32 bits, the
/// slot's id in bits 32 to 62 (bit 63 is [`LOCAL`]).
pub(super) fn probe_generation(generation: u64, slot: u32) -> u64 {
    (u64::from(slot & 0x7fff_ffff) << 32) | (generation & 0xffff_ffff)
}

/// A Redis permit's circuit generation, and its probe slot id (0 for a closed permit).
pub(super) fn split(permit: Permit) -> (u64, u32) {
    let generation = permit.generation();
    if permit.is_probe() {
        let slot = u32::try_from((generation >> 32) & 0x7fff_ffff).unwrap_or(0);
        (generation & 0xffff_ffff, slot)
    } else {
        (generation, 0)
    }
}

/// The local view: at most [`MAX_VIEWS`] circuits, the least recently used evicted to make
/// room (a closed circuit's view is kept too: its generation tells stale outcomes apart).
#[derive(Debug, Default)]
pub(super) struct Views {
    pub(super) map: HashMap<String, View>,
    /// Bumped by each use of a view.
    pub(super) tick: u64,
}

impl Views {
    pub(super) fn get(&self, key: &str) -> Option<&View> {
        self.map.get(key)
    }

    /// The view of `key`, made (evicting the least recently used when full) if there is none.
    pub(super) fn entry(&mut self, key: &str) -> &mut View {
        self.tick += 1;
        let tick = self.tick;
        if !self.map.contains_key(key) && self.map.len() >= MAX_VIEWS {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, v)| v.used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.map.remove(&oldest);
            }
        }
        let view = self.map.entry(key.to_owned()).or_default();
        view.used = tick;
        view
    }
}

#[derive(Debug, Default)]
pub(super) struct View {
    /// When it was last used (`Views::tick`).
    pub(super) used: u64,
    pub(super) state: Remote,
    pub(super) generation: u64,
    /// Whether `generation` was learned from Redis (a script's answer or a refresh); a view
    /// made fresh does not know it.
    pub(super) known: bool,
    /// The ids of the probe slots Redis granted this instance (for `generation`), not yet
    /// used.
    pub(super) slots: Vec<u32>,
    /// A probe request is in flight.
    pub(super) asking: bool,
    /// A change of state this instance made, to report with the next call.
    pub(super) pending: Option<Transition>,
    /// When a script's answer last set this view (a refresh started before it is older).
    pub(super) updated: Option<Instant>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Remote {
    #[default]
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen,
}
