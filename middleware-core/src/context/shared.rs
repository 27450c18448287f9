//! The state every handle of one request shares: deadline, cancellation, waiters, request id,
//! marks and reports.

use std::{
    fmt,
    sync::{
        Mutex, MutexGuard, OnceLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence},
    },
    task::Waker,
    time::{Duration, Instant},
};

use http::HeaderName;

use super::{CancelCause, Expiry, Mark, RequestId};

pub(super) const NO_DEADLINE: u64 = u64::MAX;
pub(super) const NOT_CANCELLED: u8 = 0;

pub(super) struct Shared {
    pub(super) created: Instant,
    /// Nanoseconds after `created`; `NO_DEADLINE` when unset. Only ever lowered.
    pub(super) deadline: AtomicU64,
    /// `NOT_CANCELLED` or a `CancelCause::to_u8`. Written once.
    pub(super) cause: AtomicU8,
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
}

impl Shared {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Acquire) {
            NO_DEADLINE => None,
            nanos => Some(self.created + Duration::from_nanos(nanos)),
        }
    }

    pub(super) fn cause(&self) -> Option<CancelCause> {
        if let Some(cause) = CancelCause::from_u8(self.cause.load(Ordering::Acquire)) {
            return Some(cause);
        }
        let deadline = self.deadline()?;
        if now() >= deadline {
            self.cancel(CancelCause::Deadline);
            return CancelCause::from_u8(self.cause.load(Ordering::Acquire));
        }
        None
    }

    pub(super) fn cancel(&self, cause: CancelCause) -> bool {
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
        // Pairs with the fence in `Cancelled::poll`: either that waiter sees the new cause or
        // deadline when it looks again after registering, or this sees its flag.
        fence(Ordering::SeqCst);
        if !self.has_waiters.load(Ordering::Relaxed) {
            return;
        }
        // Wake outside the lock: a waker may poll inline and look at the context again.
        let wakers: Vec<Waker> = lock(&self.waiters).iter().flatten().cloned().collect();
        for waker in wakers {
            waker.wake();
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
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}
