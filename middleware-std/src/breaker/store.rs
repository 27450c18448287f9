//! Breaker state: the [`BreakerStore`] trait and the in-process [`MemoryStore`].

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// The state of one circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through; outcomes are counted.
    Closed,
    /// Calls are refused (the fallback answers) until the cool-down is over.
    Open,
    /// A bounded number of probe calls go through; the first success closes the circuit, a
    /// failure opens it again.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half-open`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of state, reported once to the caller whose call made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
}

/// What an admitted call is — an ordinary call of a closed circuit, or a probe of a half-open
/// one — and the circuit's generation when it was admitted. Handed back to
/// [`BreakerStore::release`] with the outcome.
///
/// A store counts a new generation at every change of state, and a permit of another
/// generation counts for nothing: a probe still in flight when its circuit reopened neither
/// frees a slot of the next half-open period nor closes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permit {
    probe: bool,
    generation: u64,
}

impl Permit {
    /// A call admitted while the circuit was closed, in `generation`.
    #[must_use]
    pub const fn closed(generation: u64) -> Self {
        Self {
            probe: false,
            generation,
        }
    }

    /// A probe admitted while the circuit was half-open, in `generation`.
    #[must_use]
    pub const fn probe(generation: u64) -> Self {
        Self {
            probe: true,
            generation,
        }
    }

    /// Whether this is a probe of a half-open circuit.
    #[must_use]
    pub const fn is_probe(self) -> bool {
        self.probe
    }

    /// The circuit's generation when the call was admitted.
    #[must_use]
    pub const fn generation(self) -> u64 {
        self.generation
    }
}

/// How an admitted call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallOutcome {
    /// The call succeeded.
    Success,
    /// The call failed (as the failure policy counts failures).
    Failure,
    /// The call was given up before it ended (its future dropped): it counts for nothing, but
    /// a probe's slot is freed.
    Abandoned,
}

/// The answer to [`BreakerStore::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    /// The permit when the call may go through, `None` when it is refused.
    pub permit: Option<Permit>,
    /// The change of state this request made (open to half-open after the cool-down), if any.
    pub transition: Option<Transition>,
}

/// Where circuits keep their state: the in-process [`MemoryStore`], or a shared store (Redis)
/// so that every instance of a service sees one circuit per upstream.
///
/// The store owns the state machine: it admits calls and counts outcomes atomically, and
/// reports each change of state to exactly one caller (the one whose call made it), so that
/// it is logged and observed once. Circuits are named by key (`""` when the breaker is not
/// keyed, the upstream host when it is).
///
/// The methods are synchronous because they sit on every call's path: a call is never made to
/// wait on the network to be admitted. A store shared between instances answers from a local
/// view that it keeps in step with the shared one in the background (and may report a
/// transition a little late); it counts outcomes in the same way.
pub trait BreakerStore: Send + Sync + 'static {
    /// Asks to let one call to `key` through at `now`.
    fn acquire(&self, key: &str, now: Instant) -> Acquired;

    /// Reports the outcome of a call admitted with `permit`; returns the change of state it
    /// made, if any. A permit from an earlier state (a call admitted before the circuit
    /// opened) counts for nothing.
    fn release(
        &self,
        key: &str,
        permit: Permit,
        outcome: CallOutcome,
        now: Instant,
    ) -> Option<Transition>;

    /// The state of `key` at `now`, as far as it is known (an open circuit whose cool-down is
    /// over reads `HalfOpen`; it becomes half-open at the next [`acquire`](Self::acquire)).
    fn state(&self, key: &str, now: Instant) -> BreakerState;
}

/// When a circuit opens, how long it stays open and how it probes.
///
/// ```
/// use std::time::Duration;
/// use middleware_std::breaker::BreakerConfig;
///
/// let config = BreakerConfig::new()
///     .consecutive_failures(3)
///     .failure_rate(0.5, 20, Duration::from_secs(10))
///     .cool_down(Duration::from_secs(2))
///     .probes(1);
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[must_use]
pub struct BreakerConfig {
    consecutive_failures: u32,
    failure_rate: f64,
    min_calls: u32,
    window: Duration,
    cool_down: Duration,
    probes: u32,
}

impl BreakerConfig {
    /// Opens after 5 consecutive failures, or when half of at least 20 calls in the last 10 s
    /// failed; stays open 5 s; one probe at a time.
    pub const fn new() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
            probes: 1,
        }
    }

    /// Opens after `n` consecutive failures (`0` turns this rule off).
    pub const fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
        self
    }

    /// Opens when at least `rate` (0 to 1) of the calls in the last `window` failed, once there
    /// were at least `min_calls` of them (`min_calls` 0 counts as 1; a `rate` above 1 turns
    /// this rule off). The window slides in ten steps.
    pub fn failure_rate(mut self, rate: f64, min_calls: u32, window: Duration) -> Self {
        self.failure_rate = if rate.is_nan() { 2.0 } else { rate.max(0.0) };
        self.min_calls = min_calls.max(1);
        self.window = window.max(Duration::from_millis(10));
        self
    }

    /// How long an open circuit refuses calls before it lets probes through.
    pub const fn cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// How many probe calls a half-open circuit lets through at once (`0` counts as `1`).
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = probes.max(1);
        self
    }
}

// What a shared store sends its scripts.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl BreakerConfig {
    pub(crate) const fn consecutive_failures_threshold(&self) -> u32 {
        self.consecutive_failures
    }

    pub(crate) const fn failure_rate_threshold(&self) -> (f64, u32, Duration) {
        (self.failure_rate, self.min_calls, self.window)
    }

    pub(crate) const fn cool_down_period(&self) -> Duration {
        self.cool_down
    }

    pub(crate) const fn max_probes(&self) -> u32 {
        self.probes
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The slots of the failure-rate window.
const SLOTS: u64 = 10;

/// The in-process [`BreakerStore`]: one mutex, a map of circuits by key.
///
/// It holds at most [`max_keys`](Self::max_keys) circuits by key (1024): when keys come from
/// untrusted input (hosts of URLs a user supplied), a new key beyond the limit first evicts the
/// closed circuits that have seen no failure, then shares the overflow circuit `*`. The
/// unkeyed circuit (`""`: every call of a breaker that is not per host) is kept apart, never
/// evicted, and found without hashing.
pub struct MemoryStore {
    config: BreakerConfig,
    max_keys: usize,
    circuits: Mutex<Circuits>,
}

/// The circuits of a [`MemoryStore`].
#[derive(Default)]
struct Circuits {
    /// The unkeyed circuit (`""`: every call of a breaker that is not per host), apart: found
    /// without hashing.
    unkeyed: Option<Circuit>,
    keyed: HashMap<String, Circuit>,
}

impl Circuits {
    fn len(&self) -> usize {
        self.keyed.len() + usize::from(self.unkeyed.is_some())
    }

    fn get(&self, key: &str) -> Option<&Circuit> {
        if key.is_empty() {
            self.unkeyed.as_ref()
        } else {
            self.keyed.get(key)
        }
    }
}

impl MemoryStore {
    /// A store whose circuits follow `config`.
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            max_keys: 1024,
            circuits: Mutex::new(Circuits::default()),
        }
    }

    /// Holds at most `max` circuits by key (at least 1), besides the overflow circuit `*` and
    /// the unkeyed one.
    #[must_use]
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max.max(1);
        self
    }

    /// The number of circuits held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.circuits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no circuit is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with_circuit<R>(&self, key: &str, f: impl FnOnce(&mut Circuit) -> R) -> R {
        let mut circuits = self.circuits.lock().unwrap_or_else(PoisonError::into_inner);
        let circuits = &mut *circuits;
        if key.is_empty() {
            return f(circuits.unkeyed.get_or_insert_with(Circuit::new));
        }
        // A known circuit (every call but a circuit's first): one lookup, one hash of the key.
        if let Some(circuit) = circuits.keyed.get_mut(key) {
            return f(circuit);
        }
        if circuits.keyed.len() >= self.max_keys {
            circuits.keyed.retain(|_, c| !c.is_idle());
        }
        let key = if circuits.keyed.len() < self.max_keys {
            key
        } else {
            "*"
        };
        if let Some(circuit) = circuits.keyed.get_mut(key) {
            return f(circuit);
        }
        f(circuits
            .keyed
            .entry(key.to_owned())
            .or_insert_with(Circuit::new))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(MemoryStore))
            .field("config", &self.config)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl BreakerStore for MemoryStore {
    fn acquire(&self, key: &str, now: Instant) -> Acquired {
        let config = &self.config;
        self.with_circuit(key, |c| match c.state {
            State::Closed => Acquired {
                permit: Some(Permit::closed(c.generation)),
                transition: None,
            },
            State::Open { until } if now >= until => {
                c.state = State::HalfOpen { in_flight: 1 };
                c.generation += 1;
                Acquired {
                    permit: Some(Permit::probe(c.generation)),
                    transition: Some(Transition {
                        from: BreakerState::Open,
                        to: BreakerState::HalfOpen,
                    }),
                }
            }
            State::HalfOpen { ref mut in_flight } if *in_flight < config.probes => {
                *in_flight += 1;
                Acquired {
                    permit: Some(Permit::probe(c.generation)),
                    transition: None,
                }
            }
            State::Open { .. } | State::HalfOpen { .. } => Acquired {
                permit: None,
                transition: None,
            },
        })
    }

    fn release(
        &self,
        key: &str,
        permit: Permit,
        outcome: CallOutcome,
        now: Instant,
    ) -> Option<Transition> {
        let config = &self.config;
        self.with_circuit(key, |c| match (permit.is_probe(), &mut c.state) {
            _ if permit.generation() != c.generation => None,
            (false, State::Closed) => {
                let failed = match outcome {
                    CallOutcome::Success => false,
                    CallOutcome::Failure => true,
                    CallOutcome::Abandoned => return None,
                };
                c.count(failed, now, config);
                c.should_open(config)
                    .then(|| c.open(now, config, BreakerState::Closed))
            }
            (true, State::HalfOpen { in_flight }) => {
                *in_flight = in_flight.saturating_sub(1);
                match outcome {
                    CallOutcome::Abandoned => None,
                    CallOutcome::Success => {
                        *c = Circuit {
                            generation: c.generation + 1,
                            ..Circuit::new()
                        };
                        Some(Transition {
                            from: BreakerState::HalfOpen,
                            to: BreakerState::Closed,
                        })
                    }
                    CallOutcome::Failure => Some(c.open(now, config, BreakerState::HalfOpen)),
                }
            }
            _ => None,
        })
    }

    fn state(&self, key: &str, now: Instant) -> BreakerState {
        let circuits = self.circuits.lock().unwrap_or_else(PoisonError::into_inner);
        match circuits.get(key).map(|c| c.state) {
            None | Some(State::Closed) => BreakerState::Closed,
            Some(State::Open { until }) if now < until => BreakerState::Open,
            Some(State::Open { .. } | State::HalfOpen { .. }) => BreakerState::HalfOpen,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

#[derive(Debug)]
struct Circuit {
    state: State,
    /// Counts the changes of state (see [`Permit`]).
    generation: u64,
    consecutive: u32,
    /// When the window's slot numbers start.
    epoch: Option<Instant>,
    /// Per slot: its number since `epoch`, calls, failures.
    slots: [(u64, u64, u64); 10],
}

impl Circuit {
    const fn new() -> Self {
        Self {
            state: State::Closed,
            generation: 0,
            consecutive: 0,
            epoch: None,
            slots: [(0, 0, 0); 10],
        }
    }

    fn is_idle(&self) -> bool {
        matches!(self.state, State::Closed)
            && self.consecutive == 0
            && self.slots.iter().all(|s| s.2 == 0)
    }

    fn count(&mut self, failed: bool, now: Instant, config: &BreakerConfig) {
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        let epoch = *self.epoch.get_or_insert(now);
        // In nanoseconds as `u64`s (584 years), so the divisions are not 128-bit ones.
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let slot_len = nanos(config.window / 10).max(1);
        let number = nanos(now.saturating_duration_since(epoch)) / slot_len;
        let oldest = number.saturating_sub(SLOTS - 1);
        for slot in &mut self.slots {
            if slot.0 < oldest || slot.0 > number {
                *slot = (0, 0, 0);
            }
        }
        let slot = &mut self.slots[usize::try_from(number % SLOTS).unwrap_or(0)];
        if slot.0 != number {
            *slot = (number, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u64::from(failed);
    }

    fn should_open(&self, config: &BreakerConfig) -> bool {
        if config.consecutive_failures > 0 && self.consecutive >= config.consecutive_failures {
            return true;
        }
        let (calls, failures) = self
            .slots
            .iter()
            .fold((0u64, 0u64), |(c, f), s| (c + s.1, f + s.2));
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let rate = failures as f64 / calls.max(1) as f64;
        calls >= u64::from(config.min_calls) && rate >= config.failure_rate
    }

    fn open(&mut self, now: Instant, config: &BreakerConfig, from: BreakerState) -> Transition {
        *self = Self {
            generation: self.generation + 1,
            ..Self::new()
        };
        // A cool-down too long for the clock means "open for a year", then probe.
        let until = now
            .checked_add(config.cool_down)
            .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
            .unwrap_or(now);
        self.state = State::Open { until };
        Transition {
            from,
            to: BreakerState::Open,
        }
    }
}
