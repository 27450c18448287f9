//! Proc macros for `middleware-core`. Use them through `middleware-core` (feature `macros`) or
//! `middleware-std`, which re-export them.
