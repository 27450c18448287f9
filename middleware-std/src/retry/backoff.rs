//! Jittered exponential backoff and `Retry-After`.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    time::{Duration, SystemTime},
};

use http::{HeaderMap, header::RETRY_AFTER};

/// Jittered exponential backoff: before retry `n` (1 for the first retry) the layer waits a
/// random time between half and all of `min(max, base × 2^(n-1))` ("equal jitter"), so that
/// callers that failed together do not retry together.
///
/// The randomness comes from std's per-thread hash keys: unpredictable enough to spread
/// retries, not meant for anything secret.
///
/// ```
/// use std::time::Duration;
/// use middleware_std::retry::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// let third = backoff.delay(3); // within [200 ms, 400 ms]
/// assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
/// assert!(backoff.delay(60) <= Duration::from_secs(1), "capped");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `base` and doubles up to `max` (`max` below `base` counts as `base`).
    #[must_use]
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
        }
    }

    /// The wait before retry `retry` (1 for the first retry).
    #[must_use]
    pub fn delay(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(63);
        let ceiling = self
            .base
            .checked_mul(1u32.checked_shl(shift).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        let half = ceiling / 2;
        let spread = u64::try_from(ceiling.saturating_sub(half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            random() % spread.saturating_add(1)
        };
        half + Duration::from_nanos(jitter)
    }
}

impl Default for Backoff {
    /// 50 ms doubling up to 2 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(50), Duration::from_secs(2))
    }
}

/// A random `u64` from std's per-thread, per-call hash keys.
fn random() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// The wait a response's `Retry-After` asks for (RFC 9110 section 10.2.3): delay-seconds or an
/// HTTP-date (a date in the past asks for no wait). `None` when the header is absent, repeated
/// or malformed (a sign, a fraction, blanks inside, any other text): the backoff applies then.
/// Seconds beyond what a `Duration` holds saturate (the caller's caps apply).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let mut values = headers.get_all(RETRY_AFTER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_retry_after(value.as_bytes(), now)
}

/// See [`retry_after`].
pub(crate) fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    if value.iter().all(u8::is_ascii_digit) {
        let secs = value.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        return Some(secs.map_or(Duration::MAX, Duration::from_secs));
    }
    let text = std::str::from_utf8(value).ok()?;
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}
