//! [`RedisRateLimitStore`]: the GCRA step of the rate limit, done on the Redis server.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll, ready},
    time::Duration,
};

use redis::Script;

use super::backend::{Attempt, Call, CallError, Fallback, Health, Redis, bounded};
use crate::rate_limit::{Check, Decision, Key, MemoryStore, Policy, RateLimitStore};

/// The GCRA step, atomic on the server, on the server's clock.
///
/// `KEYS[1]`: the key. `ARGV[1]`: the replenish interval (µs, with a fraction: see
/// [`interval_arg`]). `ARGV[2]`: the burst (the
/// quota). The key holds the theoretical arrival time (µs, server clock) and expires when the
/// quota is whole again, so an idle key vanishes. Answers `{allowed, remaining, reset µs}`.
/// Every path writes (a limited key is written back as it is, with the expiry it had: when
/// its TAT passes): a Redis that refuses writes (out of memory, a read-only replica) fails
/// every call alike, instead of answering the limited ones and making the store flap. No
/// `KEEPTTL` (Redis 6.0): the script runs on Redis 5.0.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
local tat = tonumber(raw or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  redis.call('SET', KEYS[1], raw, 'PX', math.ceil((tat - now) / 1000))
  return {0, 0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now - allow_at) / interval), new_tat - now}
";

/// A [`RateLimitStore`] in Redis: every instance of a service that uses the same Redis and
/// key prefix counts against one quota per key.
///
/// Each decision is one `EVALSHA` of a Lua script doing the GCRA step atomically on the
/// server with the server's clock (`TIME`; the instances' clocks play no part), so two
/// instances never both spend the last request of a quota. A key expires (`PX`) when its
/// quota is whole again: idle keys vanish. Keys are the prefix followed by the [`Key`]'s
/// bytes, at most [`MAX_KEY_LEN`](crate::rate_limit::MAX_KEY_LEN) whatever the client sends.
/// The default prefix is derived from the policy (`mw:rl:<name>:<quota>:<window ms>:`, see
/// [`default_prefix`](Self::default_prefix)), so two different policies never share a key;
/// two layers with the same policy (same name, quota and window) share their counts unless
/// one is [`named`](Policy::named) or given its own [`prefix`](Self::prefix).
///
/// **When Redis is slow or down** every call is bounded by the connection's
/// [`timeout`](Redis::timeout) (50 ms by default) and, when the rate limit passes it, by the
/// request's remaining time ([`check_within`](RateLimitStore::check_within)); then the store
/// decides by its [`Fallback`] (an in-process [`MemoryStore`] with the same policy by
/// default), logs the switch once, and decides by the fallback at once (no waiting) until one
/// call every [`retry_every`](Redis::retry_every) finds Redis again; the recovery is logged
/// once with the number of decisions the fallback made. A call cut short by the request's
/// own deadline (a budget shorter than the timeout) is not a Redis failure: that one request
/// is decided by the fallback, the store stays on Redis, and the call finishes in the
/// background within the timeout to learn whether Redis answers; a request with no time left
/// is decided by the fallback without a call.
///
/// See the [module docs](super) for an example and the costs.
pub struct RedisRateLimitStore {
    shared: Arc<Shared>,
}

struct Shared {
    redis: Redis,
    script: Script,
    policy: Policy,
    prefix: Box<[u8]>,
    fallback: Fallback,
    local: MemoryStore,
    health: Health,
    /// The replenish interval as sent to the script.
    interval: String,
}

/// The replenish interval in microseconds, with three decimals (nanoseconds): a whole number
/// of microseconds would round `per_second(300_000)`'s 3.333 µs down to 3, and Redis would
/// admit 11 % over the quota. The script computes in Lua doubles, whose step at today's
/// microsecond timestamps (until 2041) is a quarter of a microsecond: a busy key's TAT moves
/// by the interval rounded to that, 3.25 µs for 3.333 (2.6 % over), exact for intervals that
/// are whole quarters. Only limits of hundreds of thousands per second per key notice.
fn interval_arg(policy: &Policy) -> String {
    // Exact below 2^53 ns (104 days per request), and any longer interval is far past
    // microseconds' precision mattering.
    #[allow(clippy::cast_precision_loss)] // reason: see above
    let us = policy.replenish_interval().as_nanos() as f64 / 1000.0;
    format!("{us:.3}")
}

/// The start of the default key prefix of [`RedisRateLimitStore`] (the policy follows it, see
/// [`RedisRateLimitStore::default_prefix`]).
pub const DEFAULT_RATE_LIMIT_PREFIX: &str = "mw:rl:";

impl RedisRateLimitStore {
    /// `policy` counted in `redis` under the policy's [default prefix](Self::default_prefix),
    /// falling back to an in-process store.
    ///
    /// # Panics
    ///
    /// When the policy's replenish interval is under a microsecond (more than a million
    /// requests per second per key). The server keeps the interval to a quarter of a
    /// microsecond: a limit of hundreds of thousands per second per key may admit a few
    /// percent more than its quota.
    #[must_use]
    pub fn new(redis: Redis, policy: Policy) -> Self {
        assert!(
            policy.replenish_interval() >= Duration::from_micros(1),
            "a Redis rate limit counts in microseconds: at most a million requests per second per key"
        );
        let interval = interval_arg(&policy);
        let prefix = Self::default_prefix(&policy).into_bytes().into();
        Self {
            shared: Arc::new(Shared {
                local: MemoryStore::new(policy.clone()),
                redis,
                script: Script::new(GCRA),
                policy,
                prefix,
                fallback: Fallback::Local,
                health: Health::new("rate-limit"),
                interval,
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::try_unwrap(self.shared)
            .unwrap_or_else(|_| unreachable!("the store is not shared before it is built"));
        f(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The default key prefix of `policy`: [`DEFAULT_RATE_LIMIT_PREFIX`], then the policy's
    /// name, quota and window (in milliseconds), so that two different policies never count in
    /// one key.
    ///
    /// ```
    /// use middleware_std::{rate_limit::Policy, redis::RedisRateLimitStore};
    ///
    /// assert_eq!(
    ///     RedisRateLimitStore::default_prefix(&Policy::per_minute(5).named("login")),
    ///     "mw:rl:login:5:60000:"
    /// );
    /// ```
    #[must_use]
    pub fn default_prefix(policy: &Policy) -> String {
        format!(
            "{DEFAULT_RATE_LIMIT_PREFIX}{}:{}:{}:",
            policy.name(),
            policy.quota(),
            policy.window().as_millis()
        )
    }

    /// The key prefix (default: [derived from the policy](Self::default_prefix)): instances
    /// that share it share their quotas. It replaces the default whole; give each policy its
    /// own.
    #[must_use]
    pub fn prefix(self, prefix: &str) -> Self {
        self.map(|s| s.prefix = prefix.as_bytes().into())
    }

    /// What to decide while Redis is slow or down (default [`Fallback::Local`]).
    #[must_use]
    pub fn fallback(self, fallback: Fallback) -> Self {
        self.map(|s| s.fallback = fallback)
    }

    /// Whether the store decides by its fallback now (Redis failed and has not answered
    /// since).
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.shared.health.is_degraded()
    }

    /// The in-process store the [`Fallback::Local`] fallback decides with.
    #[must_use]
    pub fn local(&self) -> &MemoryStore {
        &self.shared.local
    }

    /// The Redis key of `key`.
    fn redis_key(&self, key: &Key) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.shared.prefix.len() + key.as_bytes().len());
        out.extend_from_slice(&self.shared.prefix);
        out.extend_from_slice(key.as_bytes());
        out
    }
}

impl Shared {
    /// A call failed: switches to the fallback (if it was sent while healthy) and replaces
    /// the connection if it cannot recover alone.
    fn failed(&self, generation: u64, attempt: Attempt, error: &CallError) {
        self.health
            .failed(attempt, &self.redis.address, self.redis.retry_every, error);
        self.redis.after_failure(generation, attempt, error);
    }

    fn decide_by_fallback(&self, key: &Key) -> Decision {
        self.health.count_fallback();
        match self.fallback {
            Fallback::Local => match self.local.check(key) {
                Check::Ready(decision) => decision,
                Check::Pending(_) => unreachable!("the in-process store decides at once"),
            },
            Fallback::FailOpen => Decision::unchecked(),
            Fallback::FailClosed => {
                Decision::unavailable(self.redis.retry_every.max(Duration::from_secs(1)))
            }
        }
    }
}

impl fmt::Debug for RedisRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(RedisRateLimitStore))
            .field("redis", &self.shared.redis)
            .field("policy", &self.shared.policy)
            .field("prefix", &String::from_utf8_lossy(&self.shared.prefix))
            .field("fallback", &self.shared.fallback)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl RateLimitStore for RedisRateLimitStore {
    type Future = RedisCheck;

    fn policy(&self) -> &Policy {
        &self.shared.policy
    }

    fn check(&self, key: &Key) -> Check<RedisCheck> {
        self.check_within(key, None)
    }

    fn check_within(&self, key: &Key, budget: Option<Duration>) -> Check<RedisCheck> {
        let shared = &self.shared;
        if budget == Some(Duration::ZERO) {
            // The request's time is up: no call could answer in time, and Redis is not to
            // blame for it.
            return Check::Ready(shared.decide_by_fallback(key));
        }
        let Some(attempt) = shared.health.should_try(shared.redis.retry_every) else {
            return Check::Ready(shared.decide_by_fallback(key));
        };
        let by_budget = budget.is_some_and(|b| b < shared.redis.timeout);
        let timeout = budget.map_or(shared.redis.timeout, |b| b.min(shared.redis.timeout));
        let redis_key = self.redis_key(key);
        let call_shared = Arc::clone(shared);
        let (generation, mut conn) = shared.redis.connection();
        let call: Call<(i64, i64, i64)> = Box::pin(async move {
            call_shared
                .script
                .key(redis_key)
                .arg(&call_shared.interval)
                .arg(call_shared.policy.quota())
                .invoke_async(&mut conn)
                .await
        });
        Check::Pending(RedisCheck {
            call: Some(call),
            timer: tokio::time::sleep(timeout),
            timeout,
            by_budget,
            attempt,
            generation,
            shared: Arc::clone(shared),
            key: Some(key.clone()),
        })
    }
}

pin_project_lite::pin_project! {
    /// A decision of [`RedisRateLimitStore`] in flight: the script's answer, or the fallback's
    /// once the call failed or timed out.
    pub struct RedisCheck {
        call: Option<Call<(i64, i64, i64)>>,
        #[pin]
        timer: tokio::time::Sleep,
        timeout: Duration,
        // The bound is the request's remaining time, shorter than the connection's timeout:
        // running out of it says nothing about Redis.
        by_budget: bool,
        attempt: Attempt,
        // The connection's, for a reconnection.
        generation: u64,
        shared: Arc<Shared>,
        key: Option<Key>,
    }
}

impl fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(RedisCheck))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// Lets a call cut short by its request's deadline finish within `rest`, to learn whether
/// Redis answers (no request waits on it; outside a runtime it is dropped).
fn finish_in_background(
    shared: Arc<Shared>,
    (attempt, generation): (Attempt, u64),
    call: Call<(i64, i64, i64)>,
    rest: Duration,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        match bounded(call, rest).await {
            Ok(_) => shared.health.succeeded(attempt, &shared.redis.address),
            Err(error) => shared.failed(generation, attempt, &error),
        }
    });
}

impl Future for RedisCheck {
    type Output = Decision;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Decision> {
        let this = self.project();
        let call = this.call.as_mut().expect("future polled after completion");
        let error = match call.as_mut().poll(cx) {
            Poll::Ready(Ok((allowed, remaining, reset))) => {
                *this.call = None;
                this.shared
                    .health
                    .succeeded(*this.attempt, &this.shared.redis.address);
                return Poll::Ready(if allowed == 1 {
                    Decision::allowed(u32::try_from(remaining).unwrap_or(0), micros(reset))
                } else {
                    Decision::limited(micros(reset))
                });
            }
            Poll::Ready(Err(e)) => CallError::Redis(e),
            Poll::Pending => {
                ready!(this.timer.poll(cx));
                if *this.by_budget {
                    // The request's deadline, not Redis's: decided by the fallback, and the
                    // call left to finish within the connection's timeout in the background
                    // so that Redis's real health is still learned.
                    let call = this.call.take().expect("future polled after completion");
                    let rest = this.shared.redis.timeout.saturating_sub(*this.timeout);
                    finish_in_background(
                        Arc::clone(this.shared),
                        (*this.attempt, *this.generation),
                        call,
                        rest,
                    );
                    let key = this.key.take().expect("future polled after completion");
                    return Poll::Ready(this.shared.decide_by_fallback(&key));
                }
                CallError::TimedOut(*this.timeout)
            }
        };
        *this.call = None;
        let shared = &this.shared;
        shared.failed(*this.generation, *this.attempt, &error);
        let key = this.key.take().expect("future polled after completion");
        Poll::Ready(shared.decide_by_fallback(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_on_redis_5() {
        // `SET`'s options newer than 5.0: `KEEPTTL` (6.0), `GET`, `EXAT`, `PXAT` (6.2).
        let sets: Vec<_> = GCRA.lines().filter(|l| l.contains("'SET'")).collect();
        assert_eq!(sets.len(), 2, "both paths write");
        for set in sets {
            for newer in ["'KEEPTTL'", "'GET'", "'EXAT'", "'PXAT'"] {
                assert!(!set.contains(newer), "{set}");
            }
        }
    }

    #[test]
    fn the_interval_sent_to_redis_keeps_its_fraction_of_a_microsecond() {
        assert_eq!(interval_arg(&Policy::per_second(300_000)), "3.333");
        assert_eq!(interval_arg(&Policy::per_second(600_000)), "1.666");
        assert_eq!(interval_arg(&Policy::per_minute(5)), "12000000.000");
        assert_eq!(interval_arg(&Policy::per_second(1_000_000)), "1.000");
    }
}
