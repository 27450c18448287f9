//! Timing marks: named durations shared by the whole request.

use std::{borrow::Cow, time::Duration};

#[allow(unused_imports)] // intra-doc links
use super::Context;

/// A named duration recorded on a [`Context`] by a layer or a handler (for `Server-Timing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub(super) name: Cow<'static, str>,
    pub(super) duration: Duration,
}

impl Mark {
    /// The mark's name as it was recorded (escaping is the job of whoever renders it).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The recorded duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.duration
    }
}
