//! [`ConcurrencyLimitLayer`] and the state its services share.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use tokio::sync::Semaphore;
use tower_layer::Layer;

use super::service::ConcurrencyLimit;

/// At most `max` requests inside the wrapped service at once; the rest wait in a bounded queue
/// or are answered at once. See the [module docs](super) for an example.
///
/// Every service this layer makes, and every clone of those, shares one limit: the layer holds
/// it (so an axum router that layers each route separately still has one limit). Two layers made
/// with two calls to [`new`](Self::new) are two limits.
#[derive(Clone)]
#[must_use]
pub struct ConcurrencyLimitLayer {
    pub(crate) shared: Arc<Shared>,
}

/// The settings and state shared by a layer, its services and their futures.
pub(crate) struct Shared {
    pub(crate) semaphore: Arc<Semaphore>,
    pub(crate) max: usize,
    pub(crate) backlog: usize,
    pub(crate) queue_timeout: Duration,
    pub(crate) overflow_status: StatusCode,
    pub(crate) retry_after: Duration,
    /// Requests waiting in the queue now.
    pub(crate) waiting: AtomicUsize,
}

impl ConcurrencyLimitLayer {
    /// At most `max` requests inside at once, with load shedding: request `max + 1` is answered
    /// `503 Service Unavailable` with `Retry-After` at once (no queue). Add a queue with
    /// [`queue`](Self::queue).
    ///
    /// # Panics
    ///
    /// When `max` is `0` (no request could ever get in) or over tokio's
    /// `Semaphore::MAX_PERMITS`.
    pub fn new(max: usize) -> Self {
        assert!(max > 0, "a concurrency limit of 0 admits no request");
        assert!(
            max <= Semaphore::MAX_PERMITS,
            "a concurrency limit must be at most Semaphore::MAX_PERMITS"
        );
        Self {
            shared: Arc::new(Shared {
                semaphore: Arc::new(Semaphore::new(max)),
                max,
                backlog: 0,
                queue_timeout: Duration::ZERO,
                overflow_status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after: Duration::from_secs(1),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Lets up to `backlog` requests wait for a place, each for at most `timeout` (or until its
    /// context's deadline, if earlier); a waiter that runs out of time gets `503` with
    /// `Retry-After`. Waiters get in in arrival order. With `backlog` waiters already queued, a
    /// request is answered at once with the [overflow status](Self::with_overflow_status).
    pub fn queue(self, backlog: usize, timeout: Duration) -> Self {
        self.update(|s| {
            s.backlog = backlog;
            s.queue_timeout = timeout;
        })
    }

    /// The status of a request turned away because the queue is full (or because there is no
    /// queue): `503 Service Unavailable` by default; `429 Too Many Requests` is the other usual
    /// choice (chi's `Throttle`). A waiter that ran out of time always gets `503`.
    pub fn with_overflow_status(self, status: StatusCode) -> Self {
        self.update(|s| s.overflow_status = status)
    }

    /// The `Retry-After` of every rejection, in whole seconds (rounded up): `1` by default.
    pub fn retry_after(self, after: Duration) -> Self {
        self.update(|s| s.retry_after = after)
    }

    /// The limit.
    #[must_use]
    pub fn max(&self) -> usize {
        self.shared.max
    }

    /// Requests inside the limit now: admitted and not yet finished (their response body not
    /// yet ended or dropped).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }

    /// Requests waiting in the queue now.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.shared.waiting()
    }

    /// Builders run before the layer is shared; after a clone, a builder makes a new limit.
    fn update(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            f(shared);
            return self;
        }
        let mut shared = Shared {
            semaphore: Arc::new(Semaphore::new(self.shared.max)),
            max: self.shared.max,
            backlog: self.shared.backlog,
            queue_timeout: self.shared.queue_timeout,
            overflow_status: self.shared.overflow_status,
            retry_after: self.shared.retry_after,
            waiting: AtomicUsize::new(0),
        };
        f(&mut shared);
        self.shared = Arc::new(shared);
        self
    }
}

impl Shared {
    pub(crate) fn in_flight(&self) -> usize {
        let available = self.semaphore.available_permits();
        debug_assert!(available <= self.max, "a place was given back twice");
        self.max.saturating_sub(available)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ConcurrencyLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ConcurrencyLimitLayer))
            .field("max", &self.shared.max)
            .field("backlog", &self.shared.backlog)
            .field("queue_timeout", &self.shared.queue_timeout)
            .field("overflow_status", &self.shared.overflow_status)
            .field("retry_after", &self.shared.retry_after)
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit::from_shared(inner, Arc::clone(&self.shared))
    }
}

// ----- stack introspection -----

impl Shared {
    /// The entry of a concurrency-limit layer or service.
    pub(crate) fn describe(&self, description: &mut middleware_core::describe::Description) {
        let entry = description.layer("ConcurrencyLimitLayer");
        entry.setting("max", self.max);
        if self.backlog > 0 {
            entry
                .setting("backlog", self.backlog)
                .setting("queue_timeout", format_args!("{:?}", self.queue_timeout));
        }
        entry
            .setting("overflow_status", self.overflow_status.as_u16())
            .setting("retry_after", format_args!("{:?}", self.retry_after));
    }
}

impl middleware_core::Describe for ConcurrencyLimitLayer {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.shared.describe(description);
    }
}
