//! Request ids.
