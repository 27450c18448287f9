//! Server-Timing.
