//! [`RedisBreakerStore`]: circuits shared by a fleet, moved by scripts on the Redis server,
//! answered from a local view.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::Script;

use super::backend::{Attempt, CallError, Fallback, Health, Redis};
use crate::breaker::{
    Acquired, BreakerConfig, BreakerState, BreakerStore, CallOutcome, MemoryStore, Permit,
    Transition,
};

mod scripts;

mod calls;
mod local;

use calls::refresh_loop;

use local::{LOCAL, NOTHING, Remote, UNKNOWN, View, Views, probe_generation, split};
use scripts::{PROBE, RECORD, REFRESH};

/// The default key prefix of [`RedisBreakerStore`].
pub const DEFAULT_BREAKER_PREFIX: &str = "mw:cb:";

/// How often the local view is refreshed by default.
pub const DEFAULT_REFRESH: Duration = Duration::from_millis(100);

/// A [`BreakerStore`] in Redis: every instance that uses the same Redis and prefix sees one
/// circuit per key.
///
/// **Shared, atomic.** The circuit's state, generation, consecutive failures and failure-rate
/// window live in a Redis hash (the prefix, default `mw:cb:`, then `c:` and the key), moved
/// only by Lua scripts on the server's clock: a circuit opens once, goes open → half-open once
/// across the fleet (the caller whose script moved it is the one that reports it), and hands
/// out at most `probes` probe slots at once fleet-wide, each leased for the cool-down or a
/// second, whichever is longer. A slot not handed back within its lease (its instance died,
/// or its call is slower than that) is forgotten and may be granted again: the bound is
/// `probes` per lease, so a hung upstream gets a new probe every lease. Each slot has its own
/// id, so a release that comes after its lease frees nothing else (never another probe's
/// slot). Circuit hashes expire after the window and the cool-down have passed twice: idle
/// circuits vanish. A cool-down or window longer than a
/// year counts as a year (as [`MemoryStore`] reads an "open until further notice" cool-down).
///
/// **Answered locally.** The [`BreakerStore`] methods are synchronous (a call never waits on
/// the network to be admitted), so the store answers from a local view of the circuits that
/// are not closed, refreshed by a background task every [`refresh`](Self::refresh) (100 ms),
/// and sends each outcome to Redis in the background. Hence:
///
/// - a circuit opened by another instance is seen open at most one refresh (plus a round
///   trip) later;
/// - when the cool-down is over, the first call asks Redis for a probe slot and is refused;
///   a call after the answer takes the slot;
/// - a change of state made by this instance's outcome is reported with the next call of that
///   circuit (the trait's [`Acquired::transition`] or the `release` return);
/// - an outcome of a call admitted before the circuit opened counts for nothing once it has
///   closed again (as in [`MemoryStore`]); so does the first outcome this instance sends for a
///   circuit whose latest generation it learned from a refresh only (its answer teaches it);
/// - the view holds at most 1024 circuits, closed ones included (their generation), and
///   evicts the least recently used to make room: a circuit this instance calls always has
///   one, whatever other circuits a flood opened. A view made afresh (a circuit new to this
///   instance, or its view evicted) does not know the circuit's generation until an answer
///   teaches it: the outcomes of the calls it admitted meanwhile count in the circuit's
///   current closed period if they were admitted after it began (by the server's clock, to
///   about a round trip), so a flood that keeps evicting a circuit's view does not silence
///   it. An evicted view loses a change of state not yet reported (the observer never hears
///   of it) and the probe slots granted to it (held until their lease ends);
/// - the refreshes ship at most 1024 circuits that are not closed (the first listed): past
///   that (a flood of hostile per-host circuits), a circuit still opens in Redis for the
///   whole fleet, but each other instance learns it from the answer to its own next call's
///   outcome rather than from a refresh (one more call through per instance).
///
/// **When Redis is slow or down** (a background call failed or outlasted the
/// [`timeout`](Redis::timeout), at least a second here since no request waits on it) the store decides by its [`Fallback`] (default: an in-process
/// [`MemoryStore`] with the same config) until a retry succeeds (a refresh every
/// [`retry_every`](Redis::retry_every)); both switches are logged once.
///
/// Its scripts touch keys they compute (not only those passed as `KEYS`): it is for one
/// Redis server (or a primary with replicas), not a Redis Cluster.
///
/// Made inside a tokio runtime: the refresh task runs on it, and stops when the store is
/// dropped.
pub struct RedisBreakerStore {
    shared: Arc<Shared>,
}

struct Shared {
    redis: Redis,
    config: BreakerConfig,
    prefix: String,
    tripped_key: String,
    alive_key: String,
    fallback: Fallback,
    local: MemoryStore,
    health: Health,
    views: Mutex<Views>,
    refresh: Duration,
    runtime: tokio::runtime::Handle,
    record: Script,
    probe: Script,
    refresh_script: Script,
    ttl_ms: u64,
    /// When the store was made (the clock of [`UNKNOWN`] permits).
    origin: Instant,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The longest cool-down or window sent to the scripts: a longer one means "a year", as
/// [`MemoryStore`] reads it (Redis refuses expiry times past `i64` milliseconds, and a script
/// that fails leaves its earlier writes behind).
const YEAR: Duration = Duration::from_secs(365 * 86_400);

fn clamped(duration: Duration) -> Duration {
    duration.min(YEAR)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn state_of(code: i64) -> BreakerState {
    match code {
        1 => BreakerState::Open,
        2 => BreakerState::HalfOpen,
        _ => BreakerState::Closed,
    }
}

impl RedisBreakerStore {
    /// Circuits following `config` in `redis` under the prefix `mw:cb:`, falling back to an
    /// in-process store.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[must_use]
    pub fn new(redis: Redis, config: BreakerConfig) -> Self {
        Self::build(
            redis,
            config,
            DEFAULT_BREAKER_PREFIX,
            Fallback::Local,
            DEFAULT_REFRESH,
        )
    }

    fn build(
        redis: Redis,
        config: BreakerConfig,
        prefix: &str,
        fallback: Fallback,
        refresh: Duration,
    ) -> Self {
        let (_, _, window) = config.failure_rate_threshold();
        let ttl_ms = millis(clamped(window).max(clamped(config.cool_down_period())))
            .saturating_mul(2)
            .max(1000);
        let shared = Arc::new(Shared {
            redis,
            config,
            prefix: format!("{prefix}c:"),
            tripped_key: format!("{prefix}tripped"),
            alive_key: format!("{prefix}alive"),
            fallback,
            local: MemoryStore::new(config),
            health: Health::new("breaker"),
            views: Mutex::default(),
            refresh,
            runtime: tokio::runtime::Handle::current(),
            record: Script::new(RECORD),
            probe: Script::new(PROBE),
            refresh_script: Script::new(REFRESH),
            ttl_ms,
            origin: now(),
        });
        shared
            .runtime
            .spawn(refresh_loop(Arc::downgrade(&shared), refresh));
        Self { shared }
    }

    fn rebuild(
        self,
        prefix: Option<&str>,
        fallback: Option<Fallback>,
        refresh: Option<Duration>,
    ) -> Self {
        let s = &self.shared;
        let old_prefix = s.prefix.strip_suffix("c:").unwrap_or(&s.prefix).to_owned();
        Self::build(
            s.redis.clone(),
            s.config,
            prefix.unwrap_or(&old_prefix),
            fallback.unwrap_or(s.fallback),
            refresh.unwrap_or(s.refresh),
        )
    }

    /// The key prefix (default `mw:cb:`): instances that share it share their circuits.
    #[must_use]
    pub fn prefix(self, prefix: &str) -> Self {
        self.rebuild(Some(prefix), None, None)
    }

    /// What to decide while Redis is slow or down (default [`Fallback::Local`]): the local
    /// breaker, admit every call, or refuse every call.
    #[must_use]
    pub fn fallback(self, fallback: Fallback) -> Self {
        self.rebuild(None, Some(fallback), None)
    }

    /// How often the local view of the shared circuits is refreshed (default 100 ms): the
    /// bound on how late this instance sees a circuit another instance opened.
    #[must_use]
    pub fn refresh(self, every: Duration) -> Self {
        self.rebuild(None, None, Some(every.max(Duration::from_millis(1))))
    }

    /// Whether the store decides by its fallback now.
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.shared.health.is_degraded()
    }

    /// The in-process store the [`Fallback::Local`] fallback decides with.
    #[must_use]
    pub fn local(&self) -> &MemoryStore {
        &self.shared.local
    }
}

impl fmt::Debug for RedisBreakerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct(stringify!(RedisBreakerStore))
            .field("redis", &s.redis)
            .field("config", &s.config)
            .field("prefix", &s.prefix.strip_suffix("c:").unwrap_or(&s.prefix))
            .field("fallback", &s.fallback)
            .field("refresh", &s.refresh)
            .field("degraded", &s.health.is_degraded())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn views(&self) -> std::sync::MutexGuard<'_, Views> {
        self.views.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The view of `key`, made if there is none (evicting the least recently used one when
    /// the view is full: a circuit this instance calls, or one a script just answered for,
    /// always has a view).
    fn with_view<R>(&self, key: &str, f: impl FnOnce(&mut View) -> R) -> R {
        f(self.views().entry(key))
    }

    /// The bound of a call no request waits on (outcomes, probes, refreshes): the
    /// connection's timeout, at least a second, so that a burst of outcomes queued on the
    /// connection is not taken for a failing Redis.
    fn background_timeout(&self) -> Duration {
        self.redis.timeout.max(Duration::from_secs(1))
    }

    fn failed(&self, generation: u64, attempt: Attempt, error: &CallError) {
        self.health
            .failed(attempt, &self.redis.address, self.redis.retry_every, error);
        self.redis.after_failure(generation, attempt, error);
    }

    fn circuit_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Applies a script's answer to the view of `key`.
    fn apply(&self, key: &str, state: i64, generation: i64, until_ms: i64, from: i64) {
        let at = now();
        let generation = u64::try_from(generation).unwrap_or(0);
        self.with_view(key, |view| {
            let state = match state {
                1 => Remote::Open {
                    until: at + Duration::from_millis(u64::try_from(until_ms).unwrap_or(0)),
                },
                2 => Remote::HalfOpen,
                _ => Remote::Closed,
            };
            if generation >= view.generation {
                if generation != view.generation {
                    view.slots.clear();
                }
                view.state = state;
                view.generation = generation;
                view.known = true;
                view.updated = Some(at);
            }
            if from >= 0 {
                view.pending = Some(Transition {
                    from: state_of(from),
                    to: match state {
                        Remote::Closed => BreakerState::Closed,
                        Remote::Open { .. } => BreakerState::Open,
                        Remote::HalfOpen => BreakerState::HalfOpen,
                    },
                });
            }
        });
    }
}

impl BreakerStore for RedisBreakerStore {
    fn acquire(&self, key: &str, now: Instant) -> Acquired {
        let shared = &self.shared;
        if shared.health.is_degraded() {
            shared.health.count_fallback();
            return match shared.fallback {
                Fallback::Local => {
                    let mut acquired = shared.local.acquire(key, now);
                    acquired.permit = acquired.permit.map(|p| {
                        let generation = p.generation() | LOCAL;
                        if p.is_probe() {
                            Permit::probe(generation)
                        } else {
                            Permit::closed(generation)
                        }
                    });
                    acquired
                }
                Fallback::FailOpen => Acquired {
                    permit: Some(Permit::closed(NOTHING)),
                    transition: None,
                },
                Fallback::FailClosed => Acquired {
                    permit: None,
                    transition: None,
                },
            };
        }
        let mut ask = false;
        let acquired = shared.with_view(key, |view| {
            let transition = view.pending.take();
            let permit = match view.state {
                Remote::Closed if !view.known => {
                    let issued = millis(self::now().saturating_duration_since(shared.origin));
                    Some(Permit::closed(UNKNOWN | (issued & (UNKNOWN - 1))))
                }
                Remote::Closed => Some(Permit::closed(view.generation)),
                Remote::Open { until } if now < until => None,
                Remote::Open { .. } | Remote::HalfOpen => {
                    if let Some(slot) = view.slots.pop() {
                        Some(Permit::probe(probe_generation(view.generation, slot)))
                    } else {
                        ask = !view.asking;
                        view.asking = true;
                        None
                    }
                }
            };
            Acquired { permit, transition }
        });
        if ask {
            shared.ask_probe(key);
        }
        acquired
    }

    fn release(
        &self,
        key: &str,
        permit: Permit,
        outcome: CallOutcome,
        now: Instant,
    ) -> Option<Transition> {
        let shared = &self.shared;
        let generation = permit.generation();
        if generation == NOTHING {
            return None;
        }
        if generation & LOCAL != 0 {
            let generation = generation & !LOCAL;
            let permit = if permit.is_probe() {
                Permit::probe(generation)
            } else {
                Permit::closed(generation)
            };
            return shared.local.release(key, permit, outcome, now);
        }
        shared.send_outcome(key, permit, outcome);
        let (generation, _) = split(permit);
        shared.with_view(key, |view| {
            if permit.is_probe() && outcome == CallOutcome::Failure && view.generation == generation
            {
                // Reopened (the script will say so): stop probing here at once.
                view.state = Remote::Open {
                    until: now + clamped(shared.config.cool_down_period()),
                };
                view.slots.clear();
            }
            view.pending.take()
        })
    }

    fn state(&self, key: &str, now: Instant) -> BreakerState {
        let shared = &self.shared;
        if shared.health.is_degraded() {
            return match shared.fallback {
                Fallback::Local => shared.local.state(key, now),
                Fallback::FailOpen => BreakerState::Closed,
                Fallback::FailClosed => BreakerState::Open,
            };
        }
        match shared.views().get(key).map(|v| v.state) {
            None | Some(Remote::Closed) => BreakerState::Closed,
            Some(Remote::Open { until }) if now < until => BreakerState::Open,
            Some(Remote::Open { .. } | Remote::HalfOpen) => BreakerState::HalfOpen,
        }
    }
}
