//! Access logging with `tracing`.
