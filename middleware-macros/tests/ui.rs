//! Compile-fail and compile-pass fixtures for every macro, with reviewed `.stderr` snapshots.
//!
//! Regenerate with `TRYBUILD=overwrite cargo test -p middleware-macros --test ui` and review the
//! diff. rustc's wording and layout change between releases, so the snapshots are pinned to
//! one toolchain: the installed stable, 1.95.
#![allow(missing_docs)]

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "stderr snapshots are pinned to rustc 1.95, the installed stable"
)]
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/*/pass/*.rs");
    cases.compile_fail("tests/ui/*/fail/*.rs");
}
