//! Order and duplication checks between the std layers of one request.
//!
//! The layers that must run once per request, or in a given order, leave a mark on the way
//! in: a private zero-sized value in the request's extensions, which the layers inside read.
//!
//! - An inner `LogLayer` under another one writes no second
//!   access record, and an inner `ServerTimingLayer` under
//!   another writes no second `Server-Timing` header (a per-handler layer under a global
//!   `StackLayer`): the outer one does the work, the inner one
//!   passes the request through and warns once per process.
//! - A `SetRequestIdLayer` inside a log or
//!   panic-recovery layer that started without the request's context (the order of
//!   `Router::layer` calls is the reverse of `ServiceBuilder`'s) warns once per process with
//!   the fix.
//!
//! One mark at most sits in the extensions: its type is the set of layers seen so far, so the
//! checks cost no allocation (a zero-sized value is boxed without one, and the extension map
//! keeps its size), only a few lookups in the request's extension map. A request that carries
//! no extension at all when a layer sees it (no context made outside, no router, no
//! connection info) is not marked: making its extension map would cost two allocations.

use std::sync::atomic::{AtomicBool, Ordering};

use http::Extensions;

// Each layer uses its own marks and helpers: a build with only some of the layers leaves the
// others' unused (as in `layer_time`).

/// A `LogLayer` is outside.
#[allow(dead_code)]
pub(crate) const LOG: u8 = 1;
/// A `ServerTimingLayer` is outside.
#[allow(dead_code)]
pub(crate) const TIMING: u8 = 2;
/// A `CatchPanicLayer` that started without a context
/// is outside.
#[allow(dead_code)]
pub(crate) const PANIC_WITHOUT_CONTEXT: u8 = 4;

/// The mark: the set of layers seen so far, as a type (zero-sized, so inserting it allocates
/// nothing).
#[derive(Clone, Copy)]
struct Seen<const BITS: u8>;

/// Calls `$m!(N)` for every non-empty set of the three marks, the common ones first (log;
/// log and timing; timing).
macro_rules! each_set {
    ($m:ident) => {
        $m!(1);
        $m!(3);
        $m!(2);
        $m!(4);
        $m!(5);
        $m!(6);
        $m!(7);
    };
}

/// The marks the layers outside left in `extensions`.
#[allow(dead_code)]
pub(crate) fn seen(extensions: &Extensions) -> u8 {
    if extensions.is_empty() {
        return 0;
    }
    macro_rules! probe {
        ($n:literal) => {
            if extensions.get::<Seen<$n>>().is_some() {
                return $n;
            }
        };
    }
    each_set!(probe);
    0
}

/// Adds `marks` to the marks in `extensions`; returns the marks that were there before.
///
/// A request without any extension (no context, no router, no connection info) is not marked:
/// its extension map does not exist yet, and making it would cost two allocations.
#[allow(dead_code)]
pub(crate) fn enter(extensions: &mut Extensions, marks: u8) -> u8 {
    let before = seen(extensions);
    let after = before | marks;
    if after != before && !extensions.is_empty() {
        set(extensions, before, after);
    }
    before
}

/// Replaces the mark `before` with `after` (one mark in the map at most).
fn set(extensions: &mut Extensions, before: u8, after: u8) {
    macro_rules! remove {
        ($n:literal) => {
            if before == $n {
                extensions.remove::<Seen<$n>>();
            }
        };
    }
    macro_rules! insert {
        ($n:literal) => {
            if after == $n {
                extensions.insert(Seen::<$n>);
            }
        };
    }
    each_set!(remove);
    each_set!(insert);
}

/// Runs `warn` the first time `flag` is found unset: once per process.
#[allow(dead_code)]
pub(crate) fn once(flag: &AtomicBool, warn: impl FnOnce()) {
    if !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::Relaxed) {
        warn();
    }
}

/// The short name of a type for a description: its path without modules and parameters
/// (`my_app::Audit<T>` is `Audit`).
#[allow(dead_code)] // see `LOG`
pub(crate) fn short_name<T: ?Sized>() -> &'static str {
    let name = std::any::type_name::<T>();
    let end = name.find('<').unwrap_or(name.len());
    name[..end].rsplit("::").next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_accumulate_in_one_extension() {
        let mut ext = Extensions::new();
        assert_eq!(seen(&ext), 0);
        assert_eq!(enter(&mut ext, LOG), 0);
        assert!(
            ext.is_empty(),
            "an empty extension map is not made for a mark"
        );
        ext.insert(7_u32);
        assert_eq!(enter(&mut ext, LOG), 0);
        assert_eq!(enter(&mut ext, TIMING), LOG);
        assert_eq!(enter(&mut ext, LOG), LOG | TIMING);
        assert_eq!(enter(&mut ext, PANIC_WITHOUT_CONTEXT), LOG | TIMING);
        assert_eq!(seen(&ext), 7);
        assert_eq!(ext.len(), 2);
    }

    #[test]
    fn every_set_of_marks_reads_back() {
        for marks in 1..8 {
            let mut ext = Extensions::new();
            ext.insert(7_u32);
            for bit in [LOG, TIMING, PANIC_WITHOUT_CONTEXT] {
                if marks & bit != 0 {
                    enter(&mut ext, bit);
                }
            }
            assert_eq!(seen(&ext), marks);
            assert_eq!(ext.len(), 2, "one mark, next to the other extension");
        }
    }

    #[test]
    fn once_runs_the_warning_once() {
        let flag = AtomicBool::new(false);
        let mut runs = 0;
        for _ in 0..3 {
            once(&flag, || runs += 1);
        }
        assert_eq!(runs, 1);
    }
}
