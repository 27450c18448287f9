//! [`Precision`]: how finely `Server-Timing` durations are reported.

use std::time::Duration;

/// How finely the `Server-Timing` (and `x-response-time`) durations are reported.
///
/// Every reported duration is rounded *down* to a multiple of the granularity; the text keeps
/// its format (milliseconds with three decimals), so `12.345` ms becomes `12.000` with
/// [`Precision::Millis`] and `10.000` with [`Precision::TenMillis`].
///
/// Coarse values make a timing side channel slower to exploit, not impossible: an attacker who
/// repeats a request many times can still see a difference that straddles a step. For
/// responses whose timing must not leak (authentication rejections), do not send the header
/// at all (see [`TimingFilter`](super::TimingFilter) and [`NotForRejected`](super::NotForRejected)).
/// The [`OnBodyEnd`](super::OnBodyEnd) hook always gets the exact durations: it stays on the
/// server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Precision {
    /// Microseconds, as measured (the default).
    #[default]
    Exact,
    /// Whole milliseconds.
    Millis,
    /// Multiples of 10 ms.
    TenMillis,
}

impl Precision {
    /// `duration` rounded down to this precision.
    ///
    /// ```
    /// use std::time::Duration;
    /// use middleware_std::timing::Precision;
    ///
    /// let d = Duration::from_micros(12_345);
    /// assert_eq!(Precision::Exact.round(d), d);
    /// assert_eq!(Precision::Millis.round(d), Duration::from_millis(12));
    /// assert_eq!(Precision::TenMillis.round(d), Duration::from_millis(10));
    /// ```
    #[must_use]
    pub const fn round(self, duration: Duration) -> Duration {
        let step: u32 = match self {
            Self::Exact => return duration,
            Self::Millis => 1_000_000,
            Self::TenMillis => 10_000_000,
        };
        // The whole seconds are multiples of both steps; only the sub-second part is cut.
        let nanos = duration.subsec_nanos();
        Duration::new(duration.as_secs(), nanos - nanos % step)
    }
}
