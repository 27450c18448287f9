//! Why a request was cancelled, and the future that waits for it.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{Ordering, fence},
    },
    task::{Context as TaskContext, Poll},
    time::Instant,
};

#[allow(unused_imports)] // intra-doc links
use super::Context;
use super::shared::{Shared, lock};

/// Why a [`Context`] was cancelled. The first cause recorded wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelCause {
    /// The deadline passed.
    Deadline,
    /// The request future was dropped before it completed: the client went away, or an outer
    /// layer gave up on the request.
    Dropped,
    /// A layer or handler called [`Context::cancel`].
    Explicit,
    /// The handler (or a layer inside panic recovery) panicked; the request ended with the
    /// recovery's answer (a `500`, or a truncated body once the head went out).
    Panicked,
}

impl CancelCause {
    /// A short lowercase name, stable for logs and metrics: `deadline`, `dropped`, `explicit`,
    /// `panicked`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Dropped => "dropped",
            Self::Explicit => "explicit",
            Self::Panicked => "panicked",
        }
    }

    pub(super) const fn to_u8(self) -> u8 {
        match self {
            Self::Deadline => 1,
            Self::Dropped => 2,
            Self::Explicit => 3,
            Self::Panicked => 4,
        }
    }

    pub(super) const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Deadline),
            2 => Some(Self::Dropped),
            3 => Some(Self::Explicit),
            4 => Some(Self::Panicked),
            _ => None,
        }
    }
}

impl fmt::Display for CancelCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`Context::cancelled`]; completes with the [`CancelCause`].
    ///
    /// It can be awaited, raced in `select!`, or polled by hand from another future.
    #[must_use = "futures do nothing unless polled"]
    pub struct Cancelled<'a> {
        shared: &'a Arc<Shared>,
        slot: Option<usize>,
        #[pin]
        timer: DeadlineTimer,
    }

    impl<'a> PinnedDrop for Cancelled<'a> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(slot) = this.slot.take() {
                if let Some(waker) = lock(&this.shared.request().waiters).get_mut(slot) {
                    *waker = None;
                }
            }
        }
    }
}

impl<'a> Cancelled<'a> {
    pub(super) fn new(shared: &'a Arc<Shared>) -> Self {
        Self {
            shared,
            slot: None,
            timer: DeadlineTimer::new(),
        }
    }
}

impl fmt::Debug for Cancelled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Cancelled))
            .field("cause", &self.shared.cause())
            .finish_non_exhaustive()
    }
}

impl Future for Cancelled<'_> {
    type Output = CancelCause;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(cause) = this.shared.cause() {
            return Poll::Ready(cause);
        }
        {
            let mut waiters = lock(&this.shared.request().waiters);
            if let Some(slot) = *this.slot {
                match &mut waiters[slot] {
                    Some(waker) => waker.clone_from(cx.waker()),
                    empty @ None => *empty = Some(cx.waker().clone()),
                }
            } else {
                let slot = if let Some(free) = waiters.iter().position(Option::is_none) {
                    waiters[free] = Some(cx.waker().clone());
                    free
                } else {
                    waiters.push(Some(cx.waker().clone()));
                    waiters.len() - 1
                };
                *this.slot = Some(slot);
            }
        }
        this.shared
            .request()
            .has_waiters
            .store(true, Ordering::Relaxed);
        // Pairs with the fence in `wake_all` (see there).
        fence(Ordering::SeqCst);
        // A cancel between the first look and the registration must not be missed.
        if let Some(cause) = this.shared.cause() {
            return Poll::Ready(cause);
        }
        if let Some(deadline) = this.shared.deadline() {
            if this.timer.poll_until(deadline, cx).is_ready() {
                this.shared.cancel(CancelCause::Deadline);
                if let Some(cause) = this.shared.cause() {
                    return Poll::Ready(cause);
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(feature = "tokio")]
pin_project_lite::pin_project! {
    pub(super) struct DeadlineTimer {
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

#[cfg(feature = "tokio")]
impl DeadlineTimer {
    pub(super) fn new() -> Self {
        Self { sleep: None }
    }

    /// Polls a tokio timer for `deadline`, re-arming it when the deadline moved. Outside a tokio
    /// runtime there is no timer: the deadline is then seen only when someone looks.
    fn poll_until(self: Pin<&mut Self>, deadline: Instant, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut this = self.project();
        let deadline = tokio::time::Instant::from_std(deadline);
        if this.sleep.is_none() {
            if tokio::runtime::Handle::try_current().is_err() {
                return Poll::Pending;
            }
            this.sleep.set(Some(tokio::time::sleep_until(deadline)));
        }
        let mut sleep = this.sleep.as_pin_mut().expect("armed above");
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.poll(cx)
    }
}

#[cfg(not(feature = "tokio"))]
pub(super) struct DeadlineTimer;

#[cfg(not(feature = "tokio"))]
impl DeadlineTimer {
    pub(super) fn new() -> Self {
        Self
    }

    #[allow(clippy::unused_self, clippy::needless_pass_by_ref_mut)]
    fn poll_until(self: Pin<&mut Self>, _: Instant, _: &mut TaskContext<'_>) -> Poll<()> {
        Poll::Pending
    }
}
