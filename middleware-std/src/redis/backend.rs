//! [`Redis`], the connection both stores share, [`Fallback`] and the health flag that logs
//! the switch to the fallback and the recovery once each.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    Client, ErrorKind, RedisError, RedisResult, ServerErrorKind,
    aio::{ConnectionManager, ConnectionManagerConfig},
    io::tcp::socket2::TcpKeepalive,
};

/// The default bound of every Redis call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// The bound of one attempt to open a connection (TCP, TLS, `HELLO`/`AUTH`): longer than a
/// call's [`DEFAULT_TIMEOUT`], since no request waits on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The bound of opening a replacement connection in the background, its retry included.
const REPLACE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a store whose Redis failed tries it again (one call; the others decide locally
/// at once meanwhile).
pub const DEFAULT_RETRY_EVERY: Duration = Duration::from_millis(500);

/// A connection to one Redis server, shared by the stores made from it (a clone is another
/// handle to the same multiplexed connection).
///
/// It connects lazily (the first call connects; a server that is down when the service starts
/// is not an error) and reconnects on its own after the connection broke (redis-rs's
/// `ConnectionManager`). It also drops the connection and opens a fresh one when the server
/// answers that it cannot take writes as it is (`READONLY`: a primary demoted to a replica
/// by a failover, the name now pointing at the new primary; `MASTERDOWN`; `LOADING`), and
/// when a store's retry finds it still silent (a blackholed route or a frozen peer, which
/// never closes the connection); TCP keepalive is on, so the kernel gives up on such a peer
/// too. The fresh connection is opened in the background (one at a time, each attempt
/// bounded by a second, longer than a call's timeout: a far or TLS server may need several
/// round trips to set one up) and used once it is connected; meanwhile the calls go to the
/// old one, and the stores decide by their fallback. Every call a store makes through it is bounded by [`timeout`](Self::timeout) (50 ms
/// by default), and by the request's remaining time when the caller passes it.
#[derive(Clone)]
pub struct Redis {
    conn: Arc<Connection>,
    pub(crate) timeout: Duration,
    pub(crate) retry_every: Duration,
    /// `host:port/db`, without credentials (for `Debug` and logs).
    pub(crate) address: Box<str>,
}

impl Redis {
    /// A connection to the server at `url` (`redis://[user:password@]host:port[/db]`).
    ///
    /// # Errors
    ///
    /// When `url` is not a Redis URL.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the connection's task is spawned on the current one).
    pub fn open(url: &str) -> Result<Self, RedisError> {
        let info = Client::open(url)?.get_connection_info().clone();
        let address = format!("{}/{}", info.addr(), info.redis_settings().db()).into();
        // Keepalive: a peer that vanished without a word (blackholed, frozen) errors the
        // connection out within about half a minute instead of the kernel's 15 minutes.
        let tcp = info
            .tcp_settings()
            .clone()
            .set_keepalive(TcpKeepalive::new().with_time(Duration::from_secs(10)));
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        let tcp = tcp.set_user_timeout(Duration::from_secs(30));
        let client = Client::open(info.set_tcp_settings(tcp))?;
        let config = ConnectionManagerConfig::new()
            // Our own timeout bounds each call; the manager's bounds each (re)connection.
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self {
            conn: Arc::new(Connection {
                client,
                config,
                address: Box::clone(&address),
                current: Mutex::new(Current {
                    generation: 0,
                    manager,
                    replacing: false,
                }),
            }),
            timeout: DEFAULT_TIMEOUT,
            retry_every: DEFAULT_RETRY_EVERY,
            address,
        })
    }

    /// Bounds every call (default [`DEFAULT_TIMEOUT`], 50 ms): past it the store decides by
    /// its [`Fallback`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// After a failed call, how long a store decides by its fallback at once before it lets
    /// one call try Redis again (default [`DEFAULT_RETRY_EVERY`], 500 ms). Requests never wait
    /// on a Redis known to be failing.
    #[must_use]
    pub fn retry_every(mut self, every: Duration) -> Self {
        self.retry_every = every;
        self
    }

    /// The server's address (`host:port/db`, no credentials).
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The connection for one call, and its generation (for [`after_failure`]).
    ///
    /// [`after_failure`]: Self::after_failure
    pub(crate) fn connection(&self) -> (u64, ConnectionManager) {
        let current = self.conn.lock();
        (current.generation, current.manager.clone())
    }

    /// A call on the connection of `generation`, sent under `attempt`, failed with `error`:
    /// opens a fresh connection in the background when this one cannot recover by itself
    /// (the server cannot take writes as it is, or the retry probe found it silent), and
    /// installs it once it is connected. One opening at a time, and once per connection: the
    /// calls that failed on it together replace it once.
    pub(crate) fn after_failure(&self, generation: u64, attempt: Attempt, error: &CallError) {
        let stuck = match error {
            CallError::Redis(e) => cannot_take_writes(e),
            CallError::TimedOut(_) => attempt.is_probe(),
        };
        if !stuck {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut current = self.conn.lock();
            if current.generation != generation || current.replacing {
                return;
            }
            current.replacing = true;
        }
        // Eagerly, off the request path: redis-rs drives a lazy manager's first connection
        // only while a caller waits on it, so a connection needing longer than a call's
        // timeout would never be set up by calls that give up and replace it again.
        let conn = Arc::clone(&self.conn);
        let error = error.to_string();
        runtime.spawn(async move {
            let fresh = tokio::time::timeout(
                REPLACE_TIMEOUT,
                ConnectionManager::new_with_config(conn.client.clone(), conn.config.clone()),
            )
            .await;
            let mut current = conn.lock();
            current.replacing = false;
            match fresh {
                Ok(Ok(fresh)) => {
                    current.generation += 1;
                    current.manager = fresh;
                    drop(current);
                    // Debug: at most once per retry while the store is degraded, whose switch
                    // is the warning.
                    tracing::debug!(
                        target: "middleware_std::redis",
                        redis = &*conn.address,
                        %error,
                        "redis connection replaced"
                    );
                }
                Ok(Err(e)) => {
                    drop(current);
                    tracing::debug!(
                        target: "middleware_std::redis",
                        redis = &*conn.address,
                        error = %e,
                        "redis connection not replaced: the fresh one failed"
                    );
                }
                Err(_) => {
                    drop(current);
                    tracing::debug!(
                        target: "middleware_std::redis",
                        redis = &*conn.address,
                        "redis connection not replaced: the fresh one timed out"
                    );
                }
            }
        });
    }
}

/// Whether the server answered that it cannot take writes as it is: `READONLY` (a replica),
/// `MASTERDOWN`, `LOADING`. Also when the code is inside the text of another error: before
/// Redis 7, a write refused inside a script answers `ERR Error running script (call to
/// f_…): … -READONLY You can't write against a read only replica.`, which redis-rs
/// classifies as a plain `ERR`.
fn cannot_take_writes(error: &RedisError) -> bool {
    const CODES: [&str; 3] = ["READONLY", "MASTERDOWN", "LOADING"];
    if matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading
        )
    ) {
        return true;
    }
    // A code counts as a whole upper-case word of the text (`-READONLY`), not inside another.
    error
        .detail()
        .into_iter()
        .chain(error.code())
        .flat_map(|text| text.split(|c: char| !c.is_ascii_uppercase()))
        .any(|word| CODES.contains(&word))
}

/// The client and its current connection manager, replaced when it cannot recover alone.
struct Connection {
    client: Client,
    config: ConnectionManagerConfig,
    address: Box<str>,
    current: Mutex<Current>,
}

struct Current {
    /// Bumped by each replacement.
    generation: u64,
    manager: ConnectionManager,
    /// Whether a replacement is being opened (at most one at a time).
    replacing: bool,
}

impl Connection {
    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Redis))
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .field("retry_every", &self.retry_every)
            .finish_non_exhaustive()
    }
}

/// What a store decides while Redis is slow or down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fallback {
    /// Decide in process, with the same policy (each instance then counts alone: the fleet
    /// admits up to N times the limit, each instance at most the limit). The default.
    #[default]
    Local,
    /// Let every request through (the rate limit allows, the breaker admits).
    FailOpen,
    /// Refuse every request (the rate limit answers `503` with `Retry-After`, see
    /// [`Decision::unavailable`](crate::rate_limit::Decision::unavailable); the breaker answers
    /// open).
    FailClosed,
}

/// Whether Redis answered last time, and when to try it again; logs the switch to the
/// fallback and the recovery once each per episode (a compare-exchange on the epoch), never
/// per request.
///
/// Each call carries the [`Attempt`] it was sent under. Only a call sent while healthy can
/// switch to the fallback, and only the retry probe that [`should_try`](Self::should_try)
/// granted during this degraded episode can switch back: a call sent before the switch that
/// answers late, or a read-only call that works while writes fail, changes nothing. So a
/// brownout or a half-working Redis (OOM, read-only replica) cannot make the store flap.
#[derive(Debug)]
pub(crate) struct Health {
    /// Even: healthy; odd: degraded. Bumped by each switch.
    epoch: AtomicU64,
    /// While degraded: when one call may try Redis again (nanoseconds since `origin`).
    next_try: AtomicU64,
    /// Decisions made by the fallback since the switch.
    by_fallback: AtomicU64,
    origin: tokio::time::Instant,
    what: &'static str,
}

/// What a call was sent under: the health epoch, and whether it is the retry probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attempt {
    epoch: u64,
    probe: bool,
}

impl Attempt {
    /// Whether this is the retry probe of a degraded store.
    pub(crate) const fn is_probe(self) -> bool {
        self.probe
    }
}

impl Health {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            next_try: AtomicU64::new(0),
            by_fallback: AtomicU64::new(0),
            origin: tokio::time::Instant::now(),
            what,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The attempt of a call sent now that is not a retry probe (a background call, a
    /// permit's outcome).
    pub(crate) fn current(&self) -> Attempt {
        Attempt {
            epoch: self.epoch.load(Ordering::Acquire),
            probe: false,
        }
    }

    /// Whether this call should go to Redis: always when healthy; while degraded, one call
    /// every `retry_every` (the one that wins the compare-exchange), the retry probe.
    pub(crate) fn should_try(&self, retry_every: Duration) -> Option<Attempt> {
        let epoch = self.epoch.load(Ordering::Acquire);
        if epoch % 2 == 0 {
            return Some(Attempt {
                epoch,
                probe: false,
            });
        }
        let now = self.now();
        let next = self.next_try.load(Ordering::Acquire);
        let won = now >= next
            && self
                .next_try
                .compare_exchange(
                    next,
                    now.saturating_add(nanos(retry_every)),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
        won.then_some(Attempt { epoch, probe: true })
    }

    /// Counts one decision made by the fallback.
    pub(crate) fn count_fallback(&self) {
        self.by_fallback.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the store decides by its fallback now.
    pub(crate) fn is_degraded(&self) -> bool {
        self.epoch.load(Ordering::Acquire) % 2 == 1
    }

    /// A call sent under `attempt` failed: a call sent while healthy (in this healthy
    /// episode) switches to the fallback, logged by the one caller that switches. Answers
    /// whether this call switched.
    pub(crate) fn failed(
        &self,
        attempt: Attempt,
        address: &str,
        retry_every: Duration,
        error: &dyn fmt::Display,
    ) -> bool {
        if attempt.epoch % 2 == 1 || self.epoch.load(Ordering::Acquire) != attempt.epoch {
            // Already degraded (the probe failed: it tries again after `retry_every`), or a
            // stale call from an earlier episode.
            return false;
        }
        self.next_try.store(
            self.now().saturating_add(nanos(retry_every)),
            Ordering::Release,
        );
        self.by_fallback.store(0, Ordering::Relaxed);
        let switched = self.advance(attempt.epoch);
        if switched {
            tracing::warn!(
                target: "middleware_std::redis",
                store = self.what,
                redis = address,
                %error,
                "redis unavailable: deciding by the fallback"
            );
        }
        switched
    }

    /// Moves from episode `epoch` to the next (a switch either way), once: whoever moves it
    /// logs the switch.
    fn advance(&self, epoch: u64) -> bool {
        self.epoch
            .compare_exchange(epoch, epoch + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// A call sent under `attempt` succeeded: the retry probe of this degraded episode
    /// switches back to shared state (logged once, with the number of decisions the fallback
    /// made meanwhile); any other call changes nothing.
    pub(crate) fn succeeded(&self, attempt: Attempt, address: &str) {
        if !attempt.probe {
            return;
        }
        if self.advance(attempt.epoch) {
            let by_fallback = self.by_fallback.swap(0, Ordering::Relaxed);
            tracing::info!(
                target: "middleware_std::redis",
                store = self.what,
                redis = address,
                by_fallback,
                "redis recovered: deciding by shared state again"
            );
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A Redis call in flight. redis-rs's calls are `async fn`s, whose futures cannot be named:
/// boxed here, once per call, behind the stores' named futures.
pub(crate) type Call<T> = Pin<Box<dyn Future<Output = RedisResult<T>> + Send>>;

/// Why a call gave no answer: the error, or the timeout.
#[derive(Debug)]
pub(crate) enum CallError {
    Redis(RedisError),
    TimedOut(Duration),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "{e}"),
            Self::TimedOut(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

/// Runs `call` within `timeout` (for background calls that no request waits on).
pub(crate) async fn bounded<T>(call: Call<T>, timeout: Duration) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(CallError::Redis(e)),
        Err(_) => Err(CallError::TimedOut(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const ERROR: CallError = CallError::TimedOut(Duration::from_millis(1));

    /// The error redis-rs makes of a server's error line (`-CODE detail`).
    fn server_error(line: &str) -> RedisError {
        redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
            .and_then(redis::Value::extract_error)
            .expect_err("an error line")
    }

    #[test]
    fn an_error_that_cannot_take_writes_is_recognized_also_inside_a_script_error() {
        for line in [
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "LOADING Redis is loading the dataset in memory",
            // Redis < 7: a write refused inside a script, wrapped in the script's error.
            "ERR Error running script (call to f_8a1b2c3d4e5f60718293a4b5c6d7e8f901234567): \
             @user_script:12: @user_script: 12: -READONLY You can't write against a read only \
             replica.",
            "ERR Error running script (call to f_0123): @user_script:3: -MASTERDOWN Link with \
             MASTER is down",
            "ERR Error running script (call to f_0123): @user_script:3: -LOADING Redis is \
             loading the dataset in memory",
        ] {
            assert!(cannot_take_writes(&server_error(line)), "{line}");
        }
        for line in [
            "ERR Error running script (call to f_0123): @user_script:3: user_script:3: Bad \
             data format in input.",
            "OOM command not allowed when used memory > 'maxmemory'.",
            "NOSCRIPT No matching script. Please use EVAL.",
            "ERR wrong number of arguments for 'evalsha' command",
            "ERR unknown command 'readonly_stuff'",
        ] {
            assert!(!cannot_take_writes(&server_error(line)), "{line}");
        }
    }

    #[test]
    fn concurrent_failures_and_successes_switch_once_each() {
        let health = Arc::new(Health::new("test"));
        let sent = health.current();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let health = Arc::clone(&health);
                std::thread::spawn(move || {
                    let mut switched = 0;
                    for _ in 0..1000 {
                        switched += u32::from(health.failed(
                            sent,
                            "redis",
                            Duration::from_secs(60),
                            &ERROR,
                        ));
                        health.count_fallback();
                    }
                    switched
                })
            })
            .collect();
        let switched: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(switched, 1);
        assert!(health.is_degraded());
        // While degraded and before `retry_every`, no call tries Redis.
        assert!(health.should_try(Duration::from_secs(60)).is_none());
    }

    #[test]
    fn a_degraded_store_lets_one_caller_try_redis_per_interval() {
        let health = Health::new("test");
        health.failed(health.current(), "redis", Duration::ZERO, &ERROR);
        // `retry_every` of zero: due at once, but only one of the racing callers wins it.
        let tries: Vec<_> = (0..100)
            .filter_map(|_| health.should_try(Duration::from_secs(60)))
            .collect();
        assert_eq!(tries.len(), 1);
        assert!(tries[0].is_probe());
        health.succeeded(tries[0], "redis");
        assert!(!health.is_degraded());
        assert!(health.should_try(Duration::from_secs(60)).is_some());
    }

    #[test]
    fn only_the_retry_probe_recovers_and_stale_calls_change_nothing() {
        let health = Health::new("test");
        let sent = health.current();
        let other = health.current();
        health.failed(other, "redis", Duration::ZERO, &ERROR);
        // A call sent before the switch answers late: still degraded.
        health.succeeded(sent, "redis");
        assert!(health.is_degraded());
        // A call sent while degraded that is not the probe: still degraded.
        health.succeeded(health.current(), "redis");
        assert!(health.is_degraded());
        // The probe fails: still degraded, and it does not switch again.
        let probe = health.should_try(Duration::ZERO).unwrap();
        assert!(!health.failed(probe, "redis", Duration::ZERO, &ERROR));
        assert!(health.is_degraded());
        // The next probe succeeds: recovered; a stale failure from before does not switch.
        let probe = health.should_try(Duration::ZERO).unwrap();
        health.succeeded(probe, "redis");
        assert!(!health.is_degraded());
        assert!(!health.failed(sent, "redis", Duration::ZERO, &ERROR));
        assert!(!health.is_degraded());
        // A stale probe of the old episode does not switch anything either.
        health.succeeded(probe, "redis");
        assert!(!health.is_degraded());
    }
}
