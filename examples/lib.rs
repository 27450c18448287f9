//! Runnable examples: see `examples/` in this folder.
