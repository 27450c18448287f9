//! The state behind a context handle: one scope (its own deadline and cancellation, and its
//! parent scope) and the request every scope of it belongs to (creation time, waiters, request
//! id, marks, reports).
//!
//! A root scope holds the request's state inline, so a request that never makes a child costs
//! one allocation, as before scopes existed. A child or detached scope points at the root for
//! the request's state and, for a child, at its parent for cancellation. Nothing points
//! downwards: a scope *pulls* its parent's cancellation and deadline when asked, so a parent
//! keeps no list of children, cancelling one wakes the request's waiters once (they look again
//! and go back to sleep if their scope is untouched), and dropping a parent with any number of
//! live children frees nothing and walks nothing.

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence},
    },
    task::Waker,
    time::{Duration, Instant},
};

use http::HeaderName;

use super::{CancelCause, Expiry, Mark, RequestId};

pub(super) const NO_DEADLINE: u64 = u64::MAX;
pub(super) const NOT_CANCELLED: u8 = 0;

/// What every scope of one request shares.
pub(super) struct RequestState {
    pub(super) created: Instant,
    /// The wakers of every scope's waiters: a cancellation anywhere in the request wakes them
    /// all, and each looks at its own scope again.
    pub(super) waiters: Mutex<Vec<Option<Waker>>>,
    /// Set (never cleared) by the first waiter, so that tightening a deadline or cancelling a
    /// context nobody waits on takes no lock.
    pub(super) has_waiters: AtomicBool,
    pub(super) request_id: OnceLock<RequestId>,
    pub(super) marks: Mutex<Vec<Mark>>,
    /// The first deadline that expired, as the enforcing layer reported it.
    pub(super) expiry: OnceLock<Expiry>,
    /// Header names a layer read credentials from; empty (no allocation) for most requests.
    pub(super) sensitive_headers: Mutex<Vec<HeaderName>>,
    /// Set by a layer that renders per-layer times (a `Server-Timing` layer).
    pub(super) layer_times: AtomicBool,
}

/// Where a scope finds its request's state.
enum Home {
    /// This is the request's root scope.
    Root(RequestState),
    /// A child or detached scope: the request's root scope.
    In(Arc<Shared>),
}

/// One scope of a request.
pub(super) struct Shared {
    /// This scope's own deadline, in nanoseconds after the request was created; `NO_DEADLINE`
    /// when unset. Only ever lowered. The deadline in force is the earliest along the parents.
    deadline: AtomicU64,
    /// `NOT_CANCELLED` or a `CancelCause::to_u8`. Written once: by a cancel of this scope, or
    /// when this scope first sees a parent's cancellation or its deadline pass.
    cause: AtomicU8,
    /// The scope whose cancellation and deadline flow down to this one (`None` for the root and
    /// for detached scopes).
    parent: Option<Arc<Self>>,
    home: Home,
}

impl Shared {
    /// A request's root scope.
    pub(super) fn root() -> Self {
        Self {
            deadline: AtomicU64::new(NO_DEADLINE),
            cause: AtomicU8::new(NOT_CANCELLED),
            parent: None,
            home: Home::Root(RequestState {
                created: now(),
                waiters: Mutex::new(Vec::new()),
                has_waiters: AtomicBool::new(false),
                request_id: OnceLock::new(),
                marks: Mutex::new(Vec::new()),
                expiry: OnceLock::new(),
                sensitive_headers: Mutex::new(Vec::new()),
                layer_times: AtomicBool::new(false),
            }),
        }
    }

    /// A scope of the same request as `scope`: a child of it, or with `detached`, one that
    /// shares only the request's state (id, marks, reports) and none of its cancellation.
    pub(super) fn scope_of(scope: &Arc<Self>, detached: bool) -> Self {
        Self {
            deadline: AtomicU64::new(NO_DEADLINE),
            cause: AtomicU8::new(NOT_CANCELLED),
            parent: (!detached).then(|| Arc::clone(scope)),
            home: Home::In(Arc::clone(Self::root_of(scope))),
        }
    }

    /// The root scope of `scope`'s request.
    #[inline]
    pub(super) fn root_of(scope: &Arc<Self>) -> &Arc<Self> {
        match &scope.home {
            Home::Root(_) => scope,
            Home::In(root) => root,
        }
    }

    /// The request's state, shared by all its scopes.
    #[inline]
    pub(super) fn request(&self) -> &RequestState {
        match &self.home {
            Home::Root(state) => state,
            Home::In(root) => root.request(),
        }
    }

    /// The scopes whose cancellation reaches this one: itself, its parent, and so on up.
    #[inline]
    fn lineage(&self) -> impl Iterator<Item = &Self> {
        std::iter::successors(Some(self), |scope| scope.parent.as_deref())
    }

    /// The deadline in force, in nanoseconds after the request was created: the earliest of
    /// this scope's and its parents'.
    #[inline]
    pub(super) fn deadline_nanos(&self) -> u64 {
        self.lineage()
            .map(|scope| scope.deadline.load(Ordering::Acquire))
            .min()
            .unwrap_or(NO_DEADLINE)
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.deadline_nanos() {
            NO_DEADLINE => None,
            nanos => Some(self.request().created + Duration::from_nanos(nanos)),
        }
    }

    /// Lowers this scope's own deadline to `nanos`; returns the deadline now in force.
    pub(super) fn tighten(&self, nanos: u64) -> u64 {
        let previous = self.deadline.fetch_min(nanos, Ordering::AcqRel);
        if nanos < previous {
            // Waiters re-arm their timers for the new, earlier deadline.
            self.wake_all();
        }
        self.deadline_nanos()
    }

    #[inline]
    pub(super) fn own_cause(&self) -> Option<CancelCause> {
        CancelCause::from_u8(self.cause.load(Ordering::Acquire))
    }

    /// Why this scope is cancelled: its own cause, else the nearest parent's (a child cancelled
    /// by its parent reports the parent's cause), else `Deadline` once the deadline in force
    /// passed. What it finds is recorded as this scope's cause, so it never changes afterwards.
    pub(super) fn cause(&self) -> Option<CancelCause> {
        if let Some(cause) = self.own_cause() {
            return Some(cause);
        }
        let cause = if let Some(inherited) = self.lineage().skip(1).find_map(Self::own_cause) {
            inherited
        } else {
            let deadline = self.deadline()?;
            if now() < deadline {
                return None;
            }
            CancelCause::Deadline
        };
        self.record(cause);
        self.own_cause()
    }

    /// The cause recorded so far by this scope or a parent, without reading the clock.
    #[inline]
    pub(super) fn observed_cause(&self) -> Option<CancelCause> {
        self.lineage().find_map(Self::own_cause)
    }

    /// Cancels this scope (not its parents) unless it already is; returns whether this call
    /// did.
    pub(super) fn cancel(&self, cause: CancelCause) -> bool {
        if self.cause().is_some() {
            return false;
        }
        self.record(cause)
    }

    fn record(&self, cause: CancelCause) -> bool {
        let won = self
            .cause
            .compare_exchange(
                NOT_CANCELLED,
                cause.to_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if won {
            self.wake_all();
        }
        won
    }

    pub(super) fn wake_all(&self) {
        let request = self.request();
        // Pairs with the fence in `Cancelled::poll`: either that waiter sees the new cause or
        // deadline when it looks again after registering, or this sees its flag.
        fence(Ordering::SeqCst);
        if !request.has_waiters.load(Ordering::Relaxed) {
            return;
        }
        // Wake outside the lock: a waker may poll inline and look at the context again.
        let wakers: Vec<Waker> = lock(&request.waiters).iter().flatten().cloned().collect();
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Drop for Shared {
    /// Frees a chain of parents that only this scope kept alive in a loop, not by recursion, so
    /// that a deep chain of scopes cannot overflow the stack.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(parent) = next {
            next = Arc::into_inner(parent).and_then(|mut parent| parent.parent.take());
        }
    }
}

/// Locks a mutex, recovering the data when another thread panicked while holding it: every
/// critical section here leaves the data consistent, so poisoning carries no information.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current time, through tokio's clock when the `tokio` feature is on (so paused test clocks
/// are honoured; outside a runtime this is `Instant::now()`).
#[cfg(feature = "tokio")]
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The current time.
#[cfg(not(feature = "tokio"))]
pub(crate) fn now() -> Instant {
    Instant::now()
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Shared)).finish_non_exhaustive()
    }
}
