use std::fmt;

use tower_layer::Layer;

use super::{DefaultTimingFilter, Precision, ServerTiming, TimingFilter};

/// Per-layer settings, copied into every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) per_layer: bool,
    pub(crate) response_time: bool,
    /// `u32`, not `usize`: the config rides in every response future (saturated on input; no
    /// header carries four billion marks).
    pub(crate) max_marks: u32,
    pub(crate) precision: Precision,
}

/// How many context marks a `Server-Timing` header carries by default.
const DEFAULT_MAX_MARKS: u32 = 32;

/// Adds a `Server-Timing` header with the request's timings. See the [module docs](super).
#[derive(Clone)]
#[must_use]
pub struct ServerTimingLayer<H = (), F = DefaultTimingFilter> {
    pub(crate) config: Config,
    pub(crate) on_body_end: H,
    pub(crate) filter: F,
}

impl ServerTimingLayer {
    /// `Server-Timing` with `total` and the context's marks on every response, at
    /// [`Precision::Exact`]; no per-layer times, no `x-response-time`, no end-of-body callback.
    /// For production, see the [module docs](super#in-production).
    pub const fn new() -> Self {
        Self {
            config: Config {
                per_layer: false,
                response_time: false,
                max_marks: DEFAULT_MAX_MARKS,
                precision: Precision::Exact,
            },
            on_body_end: (),
            filter: DefaultTimingFilter,
        }
    }
}

impl Default for ServerTimingLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<H, F> ServerTimingLayer<H, F> {
    /// Asks the std layers inside this one to record the time they spend in their own code, as
    /// `mw.<layer>` marks (off by default; costs one allocation for the context value, plus
    /// the marks). The logging layer records `mw.logging` and panic recovery
    /// `mw.catch_panic`; each mark is recorded when that layer's response head passes, so a
    /// layer outside this one, or work done while the body streams, is not in the header.
    /// The marks are rounded like every duration ([`precision`](Self::precision)) and, like
    /// the header itself, left out where the [`filter`](Self::filter) says so.
    pub const fn per_layer_times(mut self, enabled: bool) -> Self {
        self.config.per_layer = enabled;
        self
    }

    /// Also sends `x-response-time: <ms>ms`, the time to the response headers (off by default).
    pub const fn response_time_header(mut self, enabled: bool) -> Self {
        self.config.response_time = enabled;
        self
    }

    /// Reports at most `max` context marks (32 by default), in recording order, so a handler
    /// that marks in a loop cannot grow the header without bound.
    #[allow(clippy::cast_possible_truncation)] // checked: `try_from` is not const
    pub const fn max_marks(mut self, max: usize) -> Self {
        self.config.max_marks = if max > u32::MAX as usize {
            u32::MAX
        } else {
            max as u32
        };
        self
    }

    /// Rounds every reported duration down to `precision` ([`Precision::Exact`] by default).
    /// The [`OnBodyEnd`] hook still gets exact durations.
    ///
    /// [`OnBodyEnd`]: super::OnBodyEnd
    pub const fn precision(mut self, precision: Precision) -> Self {
        self.config.precision = precision;
        self
    }

    /// Calls `hook` when each response body ends, with the full duration (see [`OnBodyEnd`]).
    ///
    /// [`OnBodyEnd`]: super::OnBodyEnd
    pub fn on_body_end<H2>(self, hook: H2) -> ServerTimingLayer<H2, F> {
        ServerTimingLayer {
            config: self.config,
            on_body_end: hook,
            filter: self.filter,
        }
    }

    /// Writes the timing headers only on the responses `filter` allows: a [`TimingFilter`]
    /// such as [`NotForRejected`](super::NotForRejected), or a closure
    /// `Fn(StatusCode, &HeaderMap) -> bool + Clone`.
    pub fn filter<F2: TimingFilter>(self, filter: F2) -> ServerTimingLayer<H, F2> {
        ServerTimingLayer {
            config: self.config,
            on_body_end: self.on_body_end,
            filter,
        }
    }

    /// Writes no timing header at all (the same as `filter(false)`); the per-layer marks and
    /// the [`OnBodyEnd`] hook keep working, for the server's own metrics.
    ///
    /// [`OnBodyEnd`]: super::OnBodyEnd
    pub fn off(self) -> ServerTimingLayer<H, bool> {
        self.filter(false)
    }
}

impl<S, H: Clone, F: Clone> Layer<S> for ServerTimingLayer<H, F> {
    type Service = ServerTiming<S, H, F>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTiming {
            inner,
            config: self.config,
            on_body_end: self.on_body_end.clone(),
            filter: self.filter.clone(),
        }
    }
}

impl<H, F> fmt::Debug for ServerTimingLayer<H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(stringify!(ServerTimingLayer));
        self.config
            .debug_fields(&mut d, &self.on_body_end, &self.filter);
        d.finish()
    }
}

impl Config {
    /// The settings in the `Debug` of a timing layer or service, with its hook and its filter
    /// (by type name).
    pub(crate) fn debug_fields<H, F>(
        self,
        d: &mut fmt::DebugStruct<'_, '_>,
        on_body_end: &H,
        filter: &F,
    ) {
        d.field("per_layer", &self.per_layer)
            .field("response_time", &self.response_time)
            .field("max_marks", &self.max_marks)
            .field("precision", &self.precision)
            .field("on_body_end", &std::any::type_name_of_val(on_body_end))
            .field("filter", &std::any::type_name_of_val(filter));
    }
}

// ----- stack introspection -----

impl Config {
    /// The entry of a timing layer or service (`H` its hook, `F` its filter).
    pub(crate) fn describe<H, F>(self, description: &mut middleware_core::describe::Description) {
        description
            .layer("ServerTimingLayer")
            .setting("per_layer_times", self.per_layer)
            .setting("response_time_header", self.response_time)
            .setting("max_marks", self.max_marks)
            .setting("precision", format_args!("{:?}", self.precision))
            .setting("on_body_end", crate::compose::short_name::<H>())
            .setting("filter", crate::compose::short_name::<F>());
    }
}

impl<H, F> middleware_core::Describe for ServerTimingLayer<H, F> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.config.describe::<H, F>(description);
    }
}
