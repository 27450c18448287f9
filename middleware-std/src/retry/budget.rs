//! The retry budget shared by clones.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// The number of slots the window is split into.
const SLOTS: usize = 10;

/// Bounds retries to a ratio of requests over a sliding window, so that a failing upstream
/// sees at most `1 + ratio` times its normal load, not `max_attempts` times (tower's
/// `retry::budget::TpsBudget`, Finagle's `RetryBudget`).
///
/// Within the last `window`, the retries allowed are
/// `min_per_sec × window (in seconds) + ratio × requests`; a retry beyond that is not made
/// (the last outcome is returned). Every request counts, retried or not. The window slides in
/// ten steps. Clones share the budget: a [`RetryLayer`](super::RetryLayer) and every service it
/// makes draw on one budget; pass the same budget to several layers to share it wider.
///
/// ```
/// use std::time::Duration;
/// use middleware_std::retry::RetryBudget;
///
/// // No floor, one retry per two requests.
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5);
/// budget.deposit();
/// assert!(!budget.withdraw(), "half a retry is not a retry");
/// budget.clone().deposit(); // clones share
/// assert!(budget.withdraw());
/// assert!(!budget.withdraw());
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    shared: Arc<Shared>,
}

struct Shared {
    /// The window, for `Debug`.
    span: Duration,
    /// The length of a slot in nanoseconds (at least 1 ms).
    slot_nanos: u64,
    reserve: f64,
    ratio: f64,
    window: Mutex<Window>,
}

struct Window {
    start: Instant,
    /// Per slot: the slot's number since `start`, requests, retries.
    slots: [(u64, u64, u64); SLOTS],
}

impl RetryBudget {
    /// A budget over `window` (at least 10 ms) that allows `min_per_sec` retries per second
    /// whatever the traffic, plus `ratio` retries per request (`0.2`: one retry per five
    /// requests). A negative or NaN `ratio` counts as `0`; the ratio is capped at `1000`.
    #[must_use]
    pub fn new(window: Duration, min_per_sec: u32, ratio: f32) -> Self {
        let window = window.max(Duration::from_millis(10));
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            f64::from(ratio).clamp(0.0, 1000.0)
        };
        Self {
            shared: Arc::new(Shared {
                span: window,
                slot_nanos: u64::try_from((window / u32::try_from(SLOTS).unwrap_or(10)).as_nanos())
                    .unwrap_or(u64::MAX)
                    .max(1),
                reserve: f64::from(min_per_sec) * window.as_secs_f64(),
                ratio,
                window: Mutex::new(Window {
                    start: Instant::now(),
                    slots: [(0, 0, 0); SLOTS],
                }),
            }),
        }
    }

    /// Counts a request.
    pub fn deposit(&self) {
        // Every request deposits: only the current slot is touched (stale slots are cleared
        // when a retry reads the window's totals).
        let mut window = self.lock();
        let now = self.slot_number(&window);
        let slot = &mut window.slots[slot_index(now)];
        if slot.0 != now {
            *slot = (now, 0, 0);
        }
        slot.1 += 1;
    }

    /// Takes one retry from the budget; `false` (and nothing taken) when it is spent.
    #[must_use]
    pub fn withdraw(&self) -> bool {
        let (reserve, ratio) = (self.shared.reserve, self.shared.ratio);
        self.with_slot(|slot, (requests, retries)| {
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let allowed = reserve + ratio * requests as f64;
            #[allow(clippy::cast_precision_loss)]
            let ok = (retries + 1) as f64 <= allowed;
            if ok {
                slot.2 += 1;
            }
            ok
        })
    }

    /// Runs `f` on the current slot (cleared if stale) and the totals of the live window.
    fn with_slot<R>(&self, f: impl FnOnce(&mut (u64, u64, u64), (u64, u64)) -> R) -> R {
        let mut window = self.lock();
        let now = self.slot_number(&window);
        let oldest = now.saturating_sub(u64::try_from(SLOTS - 1).unwrap_or(9));
        let mut totals = (0, 0);
        for slot in &mut window.slots {
            if slot.0 < oldest || slot.0 > now {
                *slot = (0, 0, 0);
            }
            totals.0 += slot.1;
            totals.1 += slot.2;
        }
        let slot = &mut window.slots[slot_index(now)];
        if slot.0 != now {
            totals.0 -= slot.1;
            totals.1 -= slot.2;
            *slot = (now, 0, 0);
        }
        f(slot, totals)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.shared
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of the slot now, counted from the window's start.
    fn slot_number(&self, window: &Window) -> u64 {
        // In nanoseconds as a `u64` (584 years), so the division is not a 128-bit one.
        let elapsed = Instant::now().saturating_duration_since(window.start);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX) / self.shared.slot_nanos
    }
}

/// Where slot number `now` lives in the ring.
fn slot_index(now: u64) -> usize {
    usize::try_from(now % u64::try_from(SLOTS).unwrap_or(10)).unwrap_or(0)
}

impl Default for RetryBudget {
    /// Tower's defaults: a 10 s window, 10 retries a second, and 20% of requests.
    fn default() -> Self {
        Self::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(RetryBudget))
            .field("window", &self.shared.span)
            .field("reserve", &self.shared.reserve)
            .field("ratio", &self.shared.ratio)
            .finish_non_exhaustive()
    }
}
