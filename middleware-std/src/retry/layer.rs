//! [`RetryLayer`].

use std::{fmt, time::Duration};

use tower_layer::Layer;

use super::{Backoff, DefaultRetryPolicy, RetryBudget, service::Retry};

/// Retries failed outbound calls within the caller's deadline and a shared budget.
///
/// See the [module docs](super) for an example.
#[must_use]
pub struct RetryLayer<P = DefaultRetryPolicy> {
    pub(crate) policy: P,
    pub(crate) config: Config,
}

/// The settings every service of a layer shares (the budget by reference).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) budget: RetryBudget,
    pub(crate) max_retry_after: Duration,
}

impl RetryLayer {
    /// The [`DefaultRetryPolicy`], 3 attempts, the default [`Backoff`] and [`RetryBudget`], and
    /// `Retry-After` waits up to 30 s.
    pub fn new() -> Self {
        Self {
            policy: DefaultRetryPolicy,
            config: Config {
                max_attempts: 3,
                backoff: Backoff::default(),
                budget: RetryBudget::default(),
                max_retry_after: Duration::from_secs(30),
            },
        }
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> RetryLayer<P> {
    /// Decides what is retried with `policy` instead: a [`RetryPolicy`](super::RetryPolicy) or a
    /// closure `Fn(&Request<B>, Result<&Response<RB>, &E>) -> bool`.
    pub fn policy<Q>(self, policy: Q) -> RetryLayer<Q> {
        RetryLayer {
            policy,
            config: self.config,
        }
    }

    /// At most `attempts` attempts per request, the first included (`0` counts as `1`).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts.max(1);
        self
    }

    /// Waits `backoff` between attempts.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// Draws retries from `budget` (shared with every clone of it) instead of the layer's own.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.config.budget = budget;
        self
    }

    /// The longest `Retry-After` honoured when the caller has no deadline (with one, the
    /// deadline caps it): a response that asks for a longer wait is returned, not retried.
    pub const fn max_retry_after(mut self, max: Duration) -> Self {
        self.config.max_retry_after = max;
        self
    }

    /// The budget this layer draws on (a handle to the shared one).
    #[must_use]
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.config.budget
    }
}

impl<P: Clone> Clone for RetryLayer<P> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            config: self.config.clone(),
        }
    }
}

impl<P> fmt::Debug for RetryLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(RetryLayer))
            .field("policy", &std::any::type_name::<P>())
            .field("max_attempts", &self.config.max_attempts)
            .field("backoff", &self.config.backoff)
            .field("budget", &self.config.budget)
            .field("max_retry_after", &self.config.max_retry_after)
            .finish()
    }
}

impl<S, P: Clone> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_layer(inner, self.clone())
    }
}

// ----- stack introspection -----

impl Config {
    /// The entry of a retry layer or service (`P` its policy).
    pub(crate) fn describe<P>(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("RetryLayer")
            .setting("policy", crate::compose::short_name::<P>())
            .setting("max_attempts", self.max_attempts)
            .setting("backoff", format_args!("{:?}", self.backoff))
            .setting(
                "max_retry_after",
                format_args!("{:?}", self.max_retry_after),
            );
    }
}

impl<P> middleware_core::Describe for RetryLayer<P> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.config.describe::<P>(description);
    }
}
