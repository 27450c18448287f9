use std::fmt;

use tower_layer::Layer;

use super::ServerTiming;

/// Per-layer settings, copied into every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) per_layer: bool,
    pub(crate) response_time: bool,
    /// `u32`, not `usize`: the config rides in every response future (saturated on input; no
    /// header carries four billion marks).
    pub(crate) max_marks: u32,
}

/// How many context marks a `Server-Timing` header carries by default.
const DEFAULT_MAX_MARKS: u32 = 32;

/// Adds a `Server-Timing` header with the request's timings. See the [module docs](super).
#[derive(Clone)]
#[must_use]
pub struct ServerTimingLayer<H = ()> {
    pub(crate) config: Config,
    pub(crate) on_body_end: H,
}

impl ServerTimingLayer {
    /// `Server-Timing` with `total` and the context's marks; no per-layer times, no
    /// `x-response-time`, no end-of-body callback.
    pub const fn new() -> Self {
        Self {
            config: Config {
                per_layer: false,
                response_time: false,
                max_marks: DEFAULT_MAX_MARKS,
            },
            on_body_end: (),
        }
    }
}

impl Default for ServerTimingLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<H> ServerTimingLayer<H> {
    /// Asks the std layers inside this one to record the time they spend in their own code, as
    /// `mw.<layer>` marks (off by default; costs one allocation for the context value, plus
    /// the marks).
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

    /// Calls `hook` when each response body ends, with the full duration (see [`OnBodyEnd`]).
    ///
    /// [`OnBodyEnd`]: super::OnBodyEnd
    pub fn on_body_end<H2>(self, hook: H2) -> ServerTimingLayer<H2> {
        ServerTimingLayer {
            config: self.config,
            on_body_end: hook,
        }
    }
}

impl<S, H: Clone> Layer<S> for ServerTimingLayer<H> {
    type Service = ServerTiming<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTiming {
            inner,
            config: self.config,
            on_body_end: self.on_body_end.clone(),
        }
    }
}

impl<H> fmt::Debug for ServerTimingLayer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ServerTimingLayer))
            .field("per_layer", &self.config.per_layer)
            .field("response_time", &self.config.response_time)
            .field("max_marks", &self.config.max_marks)
            .field("on_body_end", &std::any::type_name::<H>())
            .finish()
    }
}
