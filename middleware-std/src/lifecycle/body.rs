//! The response body wrapper that notes the end of the body.

use std::fmt;

use http_body::Body;
use pin_project_lite::pin_project;

use crate::body_state::watched::{Watched, Watcher, watched_body};

use super::{Call, OnTimings, Timings};

pin_project! {
    /// A response body that passes every frame through unchanged and finishes its call's
    /// [`Timings`] at its end, on an error, or when dropped.
    ///
    /// See the [module docs](super) for an example.
    pub struct TimedBody<B, H = ()>
    where
        H: OnTimings,
    {
        #[pin]
        body: Watched<B, Pending<H>>,
    }
}

/// A call whose body has not ended yet: finished as failed when dropped first (unless its
/// declared length had streamed).
pub(crate) struct Pending<H: OnTimings> {
    call: Option<(Call<H>, Timings)>,
    sent: bool,
}

impl<H: OnTimings> Pending<H> {
    fn finish(mut self, completed: bool) {
        if let Some((call, timings)) = self.call.take() {
            call.finish(timings, completed);
        }
    }
}

impl<H: OnTimings> Drop for Pending<H> {
    fn drop(&mut self) {
        if let Some((call, timings)) = self.call.take() {
            call.finish(timings, self.sent);
        }
    }
}

impl<B: Body, H: OnTimings> Watcher<B> for Pending<H> {
    fn sent(&mut self) {
        self.sent = true;
    }

    fn end(self, end: Result<(), &B::Error>) {
        self.finish(end.is_ok());
    }
}

impl<B, H: OnTimings> TimedBody<B, H> {
    pub(crate) fn new(inner: B, pending: Option<(Call<H>, Timings)>) -> Self {
        Self {
            body: Watched::new(
                inner,
                pending.map(|call| Pending {
                    call: Some(call),
                    sent: false,
                }),
            ),
        }
    }
}

impl<B: Default, H: OnTimings> Default for TimedBody<B, H> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B, H: OnTimings> fmt::Debug for TimedBody<B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(TimedBody))
            .field("timing", &self.body.watcher().is_some())
            .finish_non_exhaustive()
    }
}

watched_body!(impl[B, H: OnTimings] TimedBody<B, H>, Pending<H>);
