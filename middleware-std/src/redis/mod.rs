//! Rate limits and circuit breakers shared by a fleet through Redis (feature `redis`).
//!
//! A service that runs N instances behind a load balancer admits N times a per-process rate
//! limit, and a breaker opened by one instance leaves the others hammering a dead upstream.
//! These stores keep that state in one Redis, so the instances count and trip together:
//!
//! - [`RedisRateLimitStore`], a [`RateLimitStore`](crate::rate_limit::RateLimitStore) for the
//!   [`RateLimitLayer`](crate::rate_limit::RateLimitLayer): one `EVALSHA` round trip per
//!   decision, the GCRA step done atomically by a Lua script on the server's clock.
//! - [`RedisBreakerStore`], a [`BreakerStore`](crate::breaker::BreakerStore) for the
//!   [`BreakerLayer`](crate::breaker::BreakerLayer) and
//!   [`CircuitBreaker`](crate::breaker::CircuitBreaker): the state machine and its window
//!   counters in Redis, updated by scripts; the instances answer from a local view refreshed
//!   in the background.
//!
//! Both talk through a [`Redis`] handle (redis-rs's multiplexed `ConnectionManager`: one
//! connection per handle, lazy, reconnecting on its own, and replaced when a failover left it
//! on a read-only replica or the peer went silent: see [`Redis`]). Every rate-limit call is bounded by
//! a small timeout (50 ms by default) and by the request's remaining time; the breaker's
//! calls, which no request waits on, by the timeout or a second, whichever is longer.
//!
//! # When Redis is slow or down
//!
//! A dependency must never take the service down with it. A call that fails or outlasts its
//! bound is decided by the store's [`Fallback`]: [`Local`](Fallback::Local) (the default: an
//! in-process store with the same policy), [`FailOpen`](Fallback::FailOpen) or
//! [`FailClosed`](Fallback::FailClosed). The switch is logged once (`WARN`, target
//! `middleware_std::redis`), and from then on requests are decided by the fallback at once,
//! without waiting on Redis, while one call every [`retry_every`](Redis::retry_every) (500 ms;
//! for the breaker, a refresh) tries Redis again; the first of these retries that succeeds
//! switches back and logs the recovery once, with the number of decisions the fallback made
//! meanwhile. Nothing else switches back: a call sent before the switch that answers late,
//! or a read that works on a Redis refusing writes (every script writes, so an out-of-memory
//! or read-only Redis fails every call alike), so the store does not flap. Under [`FailOpen`](Fallback::FailOpen) the rate limit's
//! responses carry no `RateLimit` headers (there is no quota to report). So with Redis down, a request waits
//! at most one timeout, and only the requests that happen to try Redis wait at all.
//!
//! # Consistent and approximate
//!
//! - **Rate limit: consistent.** Every decision is made by the server, atomically, on its
//!   clock: instances sharing a prefix admit at most the quota together, with no
//!   read-modify-write race and no clock skew. Under the local fallback each instance counts
//!   alone (a fleet of N admits up to N times the quota until Redis is back), and the counts it
//!   made are not replayed into Redis (they are logged as `by_fallback`).
//! - **Breaker: the transitions are consistent, the view is approximate.** Scripts count the
//!   outcomes and move the state atomically: a circuit opens once, goes open → half-open once
//!   across the fleet, and admits at most `probes` probes at once fleet-wide, per lease (a
//!   slot not handed back within the cool-down or a second, whichever is longer, is
//!   forgotten, so a probe slower than that no longer holds its slot). An instance answers from
//!   a local view refreshed every [`refresh`](RedisBreakerStore::refresh) (100 ms by default):
//!   a circuit opened elsewhere is seen open after at most one refresh (plus a round trip), and
//!   during that delay the instance may still let calls through. Outcomes are sent in the
//!   background (a call never waits on Redis); a transition a call made is reported to the
//!   instance's observer with the next call of that circuit.
//!
//! # Cost
//!
//! A rate-limit decision is one `EVALSHA` round trip and one boxed future (redis-rs's calls are
//! `async fn`s). Measured on loopback on a shared 2-core machine (`cargo run -p
//! middleware-benches --release -- --redis`, `benches/BENCHMARKS.md`): p50 35 µs, p99 116 µs
//! with one caller, against 0.2 µs in process; about 78 000 decisions per second with 32
//! concurrent callers on one multiplexed connection. A breaker call costs a map lookup under a
//! lock on the call's path, and one background script per outcome (one task spawned per
//! outcome), plus one refresh script per [`refresh`](RedisBreakerStore::refresh) period per
//! store whatever the traffic.
//!
//! # Memory: set `maxmemory` and a `volatile-*` policy
//!
//! Every key these stores write has a TTL, but the rate-limit keys are chosen by clients (an
//! address, a header): a flood of distinct keys makes one key each, living up to one window
//! (`per_day(10)` at 10 000 requests per second is about 86 million keys). The in-process
//! store caps its table; Redis does not, so give the Redis (or the database) these stores
//! use a memory bound and a policy that evicts keys with a TTL:
//!
//! ```text
//! maxmemory 256mb
//! maxmemory-policy volatile-ttl    # or volatile-lru
//! ```
//!
//! An evicted rate-limit key is a fresh quota for that client, the same trade-off as the
//! in-process store's eviction. Under the default `noeviction`, Redis at its bound refuses
//! every write (`OOM command not allowed`): both stores then decide by their fallback (once,
//! logged once, without flapping) until memory frees up. An `allkeys-*` policy would let a
//! flood evict other data sharing the server.
//!
//! # Running it
//!
//! The stores need Redis 5.0 or later (or a server speaking its protocol and Lua scripting,
//! such as Valkey): their scripts read the server's clock (`TIME`) before they write, which
//! Redis allows from 5.0 on (script effects replication), and set several hash fields in one
//! `HSET` (4.0). They use no command of 6.0 or later.
//!
//! Start a server and point the stores at it, e.g. `redis-server --port 6379 --save ''` and
//! `REDIS_URL=redis://127.0.0.1:6379`. The tests (`middleware-std/tests/redis_*.rs`,
//! `tests/tests/redis_fleet.rs`) read `REDIS_URL`; without it they say loudly that they were
//! skipped, and under `CI=true` they fail. The example `examples/examples/fleet.rs` runs two
//! instances sharing a limit.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), redis::RedisError> {
//! use middleware_std::{
//!     rate_limit::{Policy, RateLimitLayer},
//!     redis::{Fallback, Redis, RedisRateLimitStore},
//! };
//!
//! let redis = Redis::open(&std::env::var("REDIS_URL").unwrap())?;
//! let store = RedisRateLimitStore::new(redis, Policy::per_second(100))
//!     .prefix("myapp:rl:")
//!     .fallback(Fallback::Local);
//! let layer = RateLimitLayer::with_store(store);
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```

mod backend;
mod breaker;
mod rate_limit;

#[doc(inline)]
pub use self::{
    backend::{DEFAULT_RETRY_EVERY, DEFAULT_TIMEOUT, Fallback, Redis},
    breaker::{DEFAULT_BREAKER_PREFIX, DEFAULT_REFRESH, RedisBreakerStore},
    rate_limit::{DEFAULT_RATE_LIMIT_PREFIX, RedisCheck, RedisRateLimitStore},
};
