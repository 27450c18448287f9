//! Cross-crate and end-to-end tests live in `tests/`; this library only doc-tests the
//! workspace README, so its examples cannot rot.
#![doc = include_str!("../README.md")]
