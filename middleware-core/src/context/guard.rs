//! The drop guard that cancels a request whose future was dropped early.

use std::sync::Arc;

#[allow(unused_imports)] // intra-doc links
use super::Context;
use super::{CancelCause, shared::Shared};

/// Cancels a request with [`CancelCause::Dropped`] if dropped before [`DropGuard::disarm`].
///
/// A response future holds one while the request is in flight: when the future is dropped early
/// (the client went away, an outer timeout fired), the context's cancellation fires so spawned
/// work can stop. The first cause wins, so a timeout that cancelled with
/// [`CancelCause::Deadline`] before dropping the future keeps its cause.
///
/// Guards watch the response *future*: once the response head is out, a client that goes away
/// while the body streams is seen by body wrappers (the logging layer's), not by this guard.
///
/// All handles of a request share one cancellation: a clone put into a sub-request that passes
/// an adapter is guarded there too, so dropping that sub-request cancels the whole request.
/// Hand sub-requests a fresh [`Context`] (copying what they need) when that is not wanted.
#[derive(Debug)]
pub struct DropGuard(pub(super) Option<Arc<Shared>>);

impl DropGuard {
    /// A guard that guards nothing: for a request without a context.
    ///
    /// ```
    /// use middleware_core::{Context, DropGuard, RequestExt};
    ///
    /// let req = http::Request::new(());
    /// let guard = req.try_context().map_or_else(DropGuard::none, Context::drop_guard);
    /// drop(guard); // nothing to cancel
    /// ```
    #[must_use]
    pub const fn none() -> Self {
        Self(None)
    }

    /// Disarms the guard: the request completed.
    #[inline]
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for DropGuard {
    #[inline]
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.cancel(CancelCause::Dropped);
        }
    }
}
