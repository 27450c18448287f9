//! Shared test fixtures. Each module may add helpers here only in its own clearly marked
//! section; prefer fixtures at the bottom of the module's own `mod tests`.
