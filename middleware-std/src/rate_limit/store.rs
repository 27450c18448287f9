//! The storage behind the rate limit: the [`RateLimitStore`] trait, its [`Policy`] and
//! [`Decision`], and the in-process [`MemoryStore`] (GCRA from the `governor` crate in a
//! bounded key table).

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    hash::{BuildHasher, RandomState},
    num::NonZeroU32,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::Clock,
    middleware::StateInformationMiddleware,
    nanos::Nanos,
    state::{StateStore, keyed::ShrinkableKeyedStateStore},
};
use http::HeaderValue;

use super::key::Key;

/// A quota: `quota` requests per `window`, replenished continuously (GCRA: one request's worth
/// every `window / quota`), with bursts of up to `quota`. Named in the `RateLimit-Policy` and
/// `RateLimit` headers (`"default"` unless [`named`](Self::named)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    name: Box<str>,
    quota: NonZeroU32,
    window: Duration,
    gcra: Quota,
}

impl Policy {
    /// `quota` requests per `window`.
    ///
    /// # Panics
    ///
    /// When `quota` is `0` or `window` is shorter than `quota` nanoseconds (no request could be
    /// replenished).
    #[must_use]
    pub fn new(quota: u32, window: Duration) -> Self {
        let quota = NonZeroU32::new(quota).expect("a rate limit quota must be at least 1");
        let gcra = Quota::with_period(window / quota.get())
            .expect("a rate limit window must be at least one nanosecond per request")
            .allow_burst(quota);
        Self {
            name: "default".into(),
            quota,
            window,
            gcra,
        }
    }

    /// `quota` requests per second.
    ///
    /// # Panics
    ///
    /// When `quota` is `0`.
    #[must_use]
    pub fn per_second(quota: u32) -> Self {
        Self::new(quota, Duration::from_secs(1))
    }

    /// `quota` requests per minute.
    ///
    /// # Panics
    ///
    /// When `quota` is `0`.
    #[must_use]
    pub fn per_minute(quota: u32) -> Self {
        Self::new(quota, Duration::from_secs(60))
    }

    /// Names the policy in the headers.
    ///
    /// # Panics
    ///
    /// When `name` is empty or has a character other than printable ASCII (the name is sent
    /// as a structured-field string; `"` and `\` are escaped).
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        assert!(
            !name.is_empty() && name.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "a rate limit policy name must be non-empty printable ASCII"
        );
        self.name = name.into();
        self
    }

    /// The name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests per window.
    #[must_use]
    pub const fn quota(&self) -> u32 {
        self.quota.get()
    }

    /// The window.
    #[must_use]
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// How long one request's worth of quota takes to come back.
    #[must_use]
    pub fn replenish_interval(&self) -> Duration {
        self.window / self.quota.get()
    }

    /// The name as a structured-field string: quoted, `"` and `\` escaped.
    pub(crate) fn quoted_name(&self) -> String {
        let mut out = String::with_capacity(self.name.len() + 2);
        out.push('"');
        for c in self.name.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    /// `RateLimit-Policy: "<name>";q=<quota>;w=<window in whole seconds, rounded up>`.
    pub(crate) fn header_value(&self) -> HeaderValue {
        let value = format!(
            "{};q={};w={}",
            self.quoted_name(),
            self.quota,
            ceil_secs(self.window)
        );
        HeaderValue::try_from(value).expect("printable ASCII")
    }
}

/// Whole seconds, rounded up (saturating: a store may answer any `Duration`).
pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// What the store decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    remaining: u32,
    reset: Duration,
}

impl Decision {
    /// The request may pass; `remaining` requests may follow at once, and the quota is whole
    /// again after `reset`.
    #[must_use]
    pub const fn allowed(remaining: u32, reset: Duration) -> Self {
        Self {
            allowed: true,
            remaining,
            reset,
        }
    }

    /// The request is over the quota; the next one may pass after `retry_after`.
    #[must_use]
    pub const fn limited(retry_after: Duration) -> Self {
        Self {
            allowed: false,
            remaining: 0,
            reset: retry_after,
        }
    }

    /// Whether the request may pass.
    #[must_use]
    pub const fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Requests that may follow at once (`0` when limited).
    #[must_use]
    pub const fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Allowed: when the quota is whole again. Limited: when the next request may pass.
    #[must_use]
    pub const fn reset(&self) -> Duration {
        self.reset
    }
}

/// A decision now, or one to wait for (a store across the network).
#[derive(Debug)]
pub enum Check<F> {
    /// Decided without waiting; the service calls its inner service right away.
    Ready(Decision),
    /// To be awaited; the request (and the ready inner service) wait in the response future.
    Pending(F),
}

/// Where the rate limit keeps its counts: the in-process [`MemoryStore`], or a shared store
/// (Redis, …) so that every instance of a service counts together.
///
/// A store counts each checked request against the key's quota under its [`Policy`] and says
/// whether it may pass. It is shared by every clone of the service (behind an `Arc`), so it
/// synchronizes itself. A store that cannot reach its backend decides for itself whether to
/// fail open ([`Decision::allowed`]) or closed ([`Decision::limited`]).
pub trait RateLimitStore {
    /// The future of a decision that is not ready at once; `std::future::Ready` for a store
    /// that always decides at once.
    type Future: Future<Output = Decision>;

    /// The policy, for the `RateLimit-Policy` header.
    fn policy(&self) -> &Policy;

    /// Counts one request under `key`.
    fn check(&self, key: &Key) -> Check<Self::Future>;

    /// Counts one request under `key`, deciding within `budget` (the request's remaining
    /// time, when it has a deadline): a store across the network bounds its call by it and
    /// decides by its fallback past it. The default ignores the budget and calls
    /// [`check`](Self::check).
    fn check_within(&self, key: &Key, budget: Option<Duration>) -> Check<Self::Future> {
        let _ = budget;
        self.check(key)
    }
}

/// How many keys a [`MemoryStore`] tracks by default.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Shards of the key table (each its own lock).
const SHARDS: usize = 16;

/// Keys sampled to choose one to evict when a shard is full and none is idle.
const EVICTION_SAMPLE: usize = 8;

/// How often a nearly full table is swept for idle keys, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The in-process store: GCRA (`governor`) per key, in a table of at most `capacity` keys.
///
/// **Bounded memory.** A key whose quota is whole again is indistinguishable from a new key,
/// so it is forgotten: when the table is three quarters full, it is swept for such idle keys
/// (at most once a second). When a key arrives at a full shard of the table all the same (a
/// flood of distinct keys inside one window; the table has 16 shards of `capacity / 16` keys,
/// and a shard can fill before the table does), one of a few sampled keys, the one closest to
/// a whole quota, is forgotten to make room (and the next check sweeps): that key gets a fresh quota early. Memory stays
/// bounded by `capacity` keys of at most [`MAX_KEY_LEN`](super::MAX_KEY_LEN) bytes whatever
/// the clients send; the price under such a flood is some extra requests for the forgotten
/// keys, never a refusal of new keys.
///
/// **Time** is read through `tokio::time::Instant`, so a paused test clock drives it.
pub struct MemoryStore {
    policy: Policy,
    limiter: RateLimiter<Key, Table, TokioClock, StateInformationMiddleware>,
    clock: TokioClock,
    capacity: usize,
    /// Nanoseconds (since the clock's origin) of the last sweep.
    last_sweep: AtomicU64,
    /// Raised by the table when a full shard evicts a key.
    pressure: Arc<AtomicBool>,
}

impl MemoryStore {
    /// A store for `policy` with room for [`DEFAULT_CAPACITY`] keys.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self::with_capacity(policy, DEFAULT_CAPACITY)
    }

    /// A store for `policy` with room for about `capacity` keys (at least one per shard).
    #[must_use]
    pub fn with_capacity(policy: Policy, capacity: usize) -> Self {
        let quota = policy.gcra;
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let clock = TokioClock::new();
        let pressure = Arc::new(AtomicBool::new(false));
        let table = Table {
            pressure: Arc::clone(&pressure),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            per_shard,
            len: AtomicUsize::new(0),
        };
        Self {
            limiter: RateLimiter::<_, _, _, governor::middleware::NoOpMiddleware<Duration>>::new(
                quota,
                table,
                clock.clone(),
            )
            .with_middleware::<StateInformationMiddleware>(),
            policy,
            clock,
            capacity: per_shard * SHARDS,
            last_sweep: AtomicU64::new(0),
            pressure,
        }
    }

    /// Keys tracked now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys this store tracks at once.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every key whose quota is whole again (what the periodic sweep does).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }

    fn sweep_if_due(&self) {
        let pressed = self.limiter_table_pressed();
        if !pressed && self.len() * 4 < self.capacity * 3 {
            return;
        }
        let now = u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_sweep.load(Ordering::Relaxed);
        let every = u64::try_from(SWEEP_EVERY.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every && last != 0 {
            return;
        }
        // One sweeper at a time; the others go on.
        if self
            .last_sweep
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.forget_idle();
        }
    }

    /// Whether a shard had to evict since the last look (a shard can fill before the table
    /// does).
    fn limiter_table_pressed(&self) -> bool {
        self.pressure.load(Ordering::Relaxed) && self.pressure.swap(false, Ordering::Relaxed)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(MemoryStore))
            .field("policy", &self.policy)
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl RateLimitStore for MemoryStore {
    type Future = std::future::Ready<Decision>;

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn check(&self, key: &Key) -> Check<Self::Future> {
        self.sweep_if_due();
        let interval = self.policy.replenish_interval();
        Check::Ready(match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // An upper bound: the spent requests come back one interval each.
                let reset = interval * (self.policy.quota() - remaining);
                Decision::allowed(remaining, reset)
            }
            Err(not_until) => Decision::limited(not_until.wait_time_from(self.clock.now())),
        })
    }
}

/// governor's clock on tokio's `Instant` (so a paused test clock drives it), as the time since
/// the store was made.
#[derive(Clone, Debug)]
struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// The bounded key table: each shard maps a key to its GCRA state (the theoretical arrival
/// time, in nanoseconds since the limiter started).
struct Table {
    shards: Box<[Mutex<HashMap<Key, u64>>]>,
    hasher: RandomState,
    per_shard: usize,
    len: AtomicUsize,
    pressure: Arc<AtomicBool>,
}

impl Table {
    fn shard(&self, key: &Key) -> &Mutex<HashMap<Key, u64>> {
        // The low bits pick the shard; each shard's map rehashes with its own state.
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }
}

impl StateStore for Table {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // A panic elsewhere cannot leave a map half-updated (inserts and removes are whole):
        // go on with the data.
        let mut shard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = shard.get(key).copied();
        let (result, state) = f(previous.map(Nanos::from))?;
        if let Some(slot) = shard.get_mut(key) {
            *slot = state.as_u64();
        } else {
            {
                if shard.len() >= self.per_shard {
                    // Full: forget the sampled key closest to a whole quota (the smallest
                    // arrival time).
                    let victim = shard
                        .iter()
                        .take(EVICTION_SAMPLE)
                        .min_by_key(|(_, tat)| **tat)
                        .map(|(key, _)| key.clone());
                    if let Some(victim) = victim {
                        self.pressure.store(true, Ordering::Relaxed);
                        shard.remove(&victim);
                        self.len.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                shard.insert(key.clone(), state.as_u64());
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(result)
    }
}

impl ShrinkableKeyedStateStore<Key> for Table {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let before = shard.len();
            shard.retain(|_, tat| *tat > drop_below);
            self.len.fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
