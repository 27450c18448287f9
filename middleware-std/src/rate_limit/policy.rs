//! What a rate limit enforces and answers: the [`Policy`] (a quota per window) and a store's
//! [`Decision`].

use std::{num::NonZeroU32, time::Duration};

use governor::Quota;
use http::HeaderValue;

/// A quota: `quota` requests per `window`, replenished continuously (GCRA: one request's worth
/// every `window / quota`), with bursts of up to `quota`. Named in the `RateLimit-Policy` and
/// `RateLimit` headers (`"default"` unless [`named`](Self::named)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    name: Box<str>,
    quota: NonZeroU32,
    window: Duration,
    pub(super) gcra: Quota,
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
    unavailable: bool,
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
            unavailable: false,
            remaining,
            reset,
        }
    }

    /// The request is over the quota; the next one may pass after `retry_after`.
    #[must_use]
    pub const fn limited(retry_after: Duration) -> Self {
        Self {
            allowed: false,
            unavailable: false,
            remaining: 0,
            reset: retry_after,
        }
    }

    /// The store cannot decide (its backend is down and it fails closed): the request is
    /// refused with `503 Service Unavailable` and `Retry-After`, not a `429` (the client is not
    /// over any quota).
    #[must_use]
    pub const fn unavailable(retry_after: Duration) -> Self {
        Self {
            allowed: false,
            unavailable: true,
            remaining: 0,
            reset: retry_after,
        }
    }

    /// The store could not check the quota and lets the request through (its backend is down
    /// and it fails open): allowed, with no `RateLimit` headers on the response, since there
    /// is no quota to report ([`is_unavailable`](Self::is_unavailable) is `true`).
    ///
    /// ```
    /// use middleware_std::rate_limit::Decision;
    ///
    /// let decision = Decision::unchecked();
    /// assert!(decision.is_allowed() && decision.is_unavailable());
    /// ```
    #[must_use]
    pub const fn unchecked() -> Self {
        Self {
            allowed: true,
            unavailable: true,
            remaining: 0,
            reset: Duration::ZERO,
        }
    }

    /// Whether the store could not decide ([`Decision::unavailable`], or
    /// [`Decision::unchecked`] when it let the request through anyway).
    #[must_use]
    pub const fn is_unavailable(&self) -> bool {
        self.unavailable
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
