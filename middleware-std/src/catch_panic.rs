//! Panic recovery.
