//! The storage behind the rate limit: the [`RateLimitStore`] trait and the in-process
//! [`MemoryStore`] (GCRA from the `governor` crate in a
//! bounded key table).

use std::{
    borrow::Borrow,
    collections::HashMap,
    fmt,
    future::Future,
    hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use governor::{
    RateLimiter,
    clock::Clock,
    middleware::StateInformationMiddleware,
    nanos::Nanos,
    state::{StateStore, keyed::ShrinkableKeyedStateStore},
};

use super::{
    key::Key,
    policy::{Decision, Policy},
};

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
/// fail open ([`Decision::unchecked`]: allowed, without quota headers) or closed
/// ([`Decision::unavailable`]: `503` with `Retry-After`; not [`Decision::limited`], whose
/// `429` tells the client it is over a quota).
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
/// the clients send, plus the [anonymous](Key::anonymous) key (every request of a global `()`
/// limit), which has a slot of its own outside the shards: counted without a lock; the price under such a flood is some extra requests for the forgotten
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
    /// The policy's replenish interval, divided out once.
    interval: Duration,
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
        let policy_interval = policy.replenish_interval();
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let clock = TokioClock::new();
        let pressure = Arc::new(AtomicBool::new(false));
        let hasher = RandomState::new();
        let table = Table {
            pressure: Arc::clone(&pressure),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            anonymous: AtomicU64::new(ABSENT),
            hasher,
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
            interval: policy_interval,
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
        let interval = self.interval;
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
///
/// A key is hashed once per check (`SipHash` keyed per store, as `HashMap`'s default: keys come
/// from clients), over its bytes in one write; that hash picks the shard and is the map's hash
/// too (the maps store it next to the key and do not hash again).
struct Table {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// The state of [`Key::anonymous`] (the key of every request of a global `()` limit, and
    /// of requests without a key), outside the shards: one atomic, no lock, no hashing.
    /// `ABSENT` when not tracked (a state is never `0`: it is at least one interval).
    anonymous: AtomicU64,
    per_shard: usize,
    len: AtomicUsize,
    pressure: Arc<AtomicBool>,
}

/// One shard: a stored key with its hash, to its state.
type Shard = HashMap<Hashed, u64, BuildHasherDefault<Prehashed>>;

/// A key and its hash, as stored in a shard.
#[derive(Clone)]
struct Hashed {
    hash: u64,
    key: Key,
}

/// A key and its hash, stored ([`Hashed`]) or borrowed for a lookup: what a shard's map hashes
/// and compares, so a lookup neither copies the key nor hashes it again.
trait Lookup {
    fn hash(&self) -> u64;
    fn key(&self) -> &Key;
}

impl Lookup for Hashed {
    fn hash(&self) -> u64 {
        self.hash
    }

    fn key(&self) -> &Key {
        &self.key
    }
}

impl Lookup for (u64, &Key) {
    fn hash(&self) -> u64 {
        self.0
    }

    fn key(&self) -> &Key {
        self.1
    }
}

impl<'a> Borrow<dyn Lookup + 'a> for Hashed {
    fn borrow(&self) -> &(dyn Lookup + 'a) {
        self
    }
}

// `Hashed` and `dyn Lookup` hash and compare alike, as `Borrow` requires.
impl Hash for Hashed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Hashed {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for Hashed {}

impl Hash for dyn Lookup + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(Lookup::hash(self));
    }
}

impl PartialEq for dyn Lookup + '_ {
    fn eq(&self, other: &Self) -> bool {
        Lookup::hash(self) == Lookup::hash(other) && self.key() == other.key()
    }
}

impl Eq for dyn Lookup + '_ {}

/// The shards' hasher: the hash computed once per check, passed through.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only a key's precomputed hash is hashed");
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

impl Table {
    fn hash(hasher: &RandomState, bytes: &[u8]) -> u64 {
        let mut hasher = hasher.build_hasher();
        hasher.write(bytes);
        hasher.finish()
    }

    /// The key's hash and its shard. The shard comes from bits the maps use neither for the
    /// bucket (the low bits) nor for the tag (the top seven), so each shard's keys still
    /// spread over its whole map.
    fn locate(&self, key: &Key) -> (u64, &Mutex<Shard>) {
        let hash = Self::hash(&self.hasher, key.as_bytes());
        let index = usize::try_from((hash >> 40) % SHARDS as u64).unwrap_or(0);
        (hash, &self.shards[index])
    }
}

impl StateStore for Table {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if key.is_anonymous() {
            return self.measure_and_replace_anonymous(f);
        }
        let (hash, shard) = self.locate(key);
        // A panic elsewhere cannot leave a map half-updated (inserts and removes are whole):
        // go on with the data.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let lookup: &dyn Lookup = &(hash, key);
        if let Some(slot) = shard.get_mut(lookup) {
            let (result, state) = f(Some(Nanos::from(*slot)))?;
            *slot = state.as_u64();
            return Ok(result);
        }
        let (result, state) = f(None)?;
        if shard.len() >= self.per_shard {
            // Full: forget the sampled key closest to a whole quota (the smallest arrival
            // time).
            let victim = shard
                .iter()
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, tat)| **tat)
                .map(|(victim, _)| victim.clone());
            if let Some(victim) = victim {
                self.pressure.store(true, Ordering::Relaxed);
                shard.remove(&victim);
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
        }
        shard.insert(
            Hashed {
                hash,
                key: key.clone(),
            },
            state.as_u64(),
        );
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(result)
    }
}

impl Table {
    /// `measure_and_replace` for the anonymous key: compare-and-swap on its slot, retried when
    /// another thread got there first (as governor's own unkeyed state does).
    fn measure_and_replace_anonymous<T, F, E>(&self, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut current = self.anonymous.load(Ordering::Acquire);
        loop {
            let previous = (current != ABSENT).then(|| Nanos::from(current));
            let (result, state) = f(previous)?;
            // A state is at least one interval after the start, never `ABSENT`.
            let state = state.as_u64().max(1);
            match self.anonymous.compare_exchange_weak(
                current,
                state,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if current == ABSENT {
                        self.len.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(result);
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// The anonymous slot's value when the anonymous key is not tracked.
const ABSENT: u64 = 0;

impl ShrinkableKeyedStateStore<Key> for Table {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        let anonymous = self.anonymous.load(Ordering::Acquire);
        if anonymous != ABSENT
            && anonymous <= drop_below
            && self
                .anonymous
                .compare_exchange(anonymous, ABSENT, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
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
