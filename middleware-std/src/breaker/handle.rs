//! [`CircuitBreaker`], the shared handle and its two-step form.

use std::{borrow::Cow, fmt, sync::Arc};

use super::{
    BreakerConfig, BreakerOpenError, BreakerState, BreakerStore, CallOutcome, MemoryStore, Permit,
    Transition,
};

/// Observes state changes: called once per change, by the call that made it.
///
/// Implemented for `()` (nothing more than the log event) and for closures
/// `Fn(&str, Transition)` (the circuit's key, `""` when not keyed, and the change).
pub trait OnStateChange: Send + Sync + 'static {
    /// Circuit `key` changed state.
    fn on_state_change(&self, key: &str, transition: Transition);
}

impl OnStateChange for () {
    fn on_state_change(&self, _: &str, _: Transition) {}
}

impl<F> OnStateChange for F
where
    F: Fn(&str, Transition) + Send + Sync + 'static,
{
    fn on_state_change(&self, key: &str, transition: Transition) {
        self(key, transition);
    }
}

/// A circuit breaker: the state shared by every clone, the [`BreakerLayer`](super::BreakerLayer)
/// built on it, and the two-step form for calls that are not tower services:
/// [`ask`](Self::ask), make the call, then [`report`](Ticket::report) its outcome.
///
/// ```
/// use std::time::Duration;
/// use middleware_std::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
///
/// let breaker = CircuitBreaker::new(BreakerConfig::new().consecutive_failures(2));
/// for _ in 0..2 {
///     let ticket = breaker.ask("db").expect("closed");
///     // ... the call failed:
///     ticket.report(false);
/// }
/// assert_eq!(breaker.state("db"), BreakerState::Open);
/// assert!(breaker.ask("db").is_err(), "refused while open");
/// assert!(breaker.ask("cache").is_ok(), "circuits are per key");
/// ```
pub struct CircuitBreaker<St = MemoryStore, C = ()> {
    store: Arc<St>,
    on_change: Arc<C>,
}

impl CircuitBreaker {
    /// A breaker with an in-process [`MemoryStore`] following `config`.
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        Self::with_store(MemoryStore::new(config))
    }
}

impl<St: BreakerStore> CircuitBreaker<St> {
    /// A breaker keeping its state in `store`.
    #[must_use]
    pub fn with_store(store: St) -> Self {
        Self {
            store: Arc::new(store),
            on_change: Arc::new(()),
        }
    }
}

impl<St: BreakerStore, C: OnStateChange> CircuitBreaker<St, C> {
    /// This handle, also calling `on_change` once per state change of the shared circuits.
    ///
    /// The callback belongs to the handle and to the clones made from it afterwards (and to
    /// the layers built on them): set it before handing the breaker out. Clones made before
    /// keep sharing the state, with their own callback.
    #[must_use]
    pub fn on_state_change<C2: OnStateChange>(self, on_change: C2) -> CircuitBreaker<St, C2> {
        CircuitBreaker {
            store: self.store,
            on_change: Arc::new(on_change),
        }
    }

    /// Asks to make one call to circuit `key` (`""` for a breaker that is not keyed).
    ///
    /// # Errors
    ///
    /// [`BreakerOpenError`] when the circuit is open, or half-open with all its probes out.
    pub fn ask(&self, key: &str) -> Result<Ticket<St, C>, BreakerOpenError> {
        let acquired = self.store.acquire(key, now());
        if let Some(transition) = acquired.transition {
            self.changed(key, transition);
        }
        match acquired.permit {
            Some(permit) => Ok(Ticket {
                breaker: self.clone(),
                // The unkeyed circuit's `""` needs no copy.
                key: if key.is_empty() {
                    Cow::Borrowed("")
                } else {
                    Cow::Owned(key.to_owned())
                },
                permit: Some(permit),
            }),
            None => Err(BreakerOpenError::new()),
        }
    }

    /// The state of circuit `key`.
    #[must_use]
    pub fn state(&self, key: &str) -> BreakerState {
        self.store.state(key, now())
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &St {
        &self.store
    }

    fn release(&self, key: &str, permit: Permit, outcome: CallOutcome) {
        if let Some(transition) = self.store.release(key, permit, outcome, now()) {
            self.changed(key, transition);
        }
    }

    fn changed(&self, key: &str, transition: Transition) {
        tracing::warn!(
            target: "middleware_std::breaker",
            breaker_key = key,
            breaker_from = transition.from.as_str(),
            breaker_state = transition.to.as_str(),
            "circuit breaker state changed"
        );
        self.on_change.on_state_change(key, transition);
    }
}

impl<St, C> Clone for CircuitBreaker<St, C> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            on_change: Arc::clone(&self.on_change),
        }
    }
}

impl<St: fmt::Debug, C> fmt::Debug for CircuitBreaker<St, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(CircuitBreaker))
            .field("store", &self.store)
            .field("on_change", &std::any::type_name::<C>())
            .finish()
    }
}

/// Leave to make one call, from [`CircuitBreaker::ask`]: report its outcome with
/// [`report`](Self::report). Dropped without a report, the call counts for nothing (a probe's
/// slot is freed).
#[must_use = "report the call's outcome, or it counts for nothing"]
pub struct Ticket<St: BreakerStore = MemoryStore, C: OnStateChange = ()> {
    breaker: CircuitBreaker<St, C>,
    key: Cow<'static, str>,
    permit: Option<Permit>,
}

impl<St: BreakerStore, C: OnStateChange> Ticket<St, C> {
    /// Whether this call is a probe of a half-open circuit.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.permit.is_some_and(Permit::is_probe)
    }

    /// Reports the call's outcome: `true` for a success.
    pub fn report(mut self, success: bool) {
        if let Some(permit) = self.permit.take() {
            let outcome = if success {
                CallOutcome::Success
            } else {
                CallOutcome::Failure
            };
            self.breaker.release(&self.key, permit, outcome);
        }
    }
}

impl<St: BreakerStore, C: OnStateChange> Drop for Ticket<St, C> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker
                .release(&self.key, permit, CallOutcome::Abandoned);
        }
    }
}

impl<St: BreakerStore, C: OnStateChange> fmt::Debug for Ticket<St, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Ticket))
            .field("key", &self.key)
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

/// The breaker's clock: tokio's, so that tests with a paused clock see cool-downs pass.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
