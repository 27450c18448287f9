use std::marker::PhantomData;

use middleware_core::axum::Provides;

/// Whether a layer of type `L` provides `T` (`I`: where in its values). Not public API.
#[derive(Debug)]
pub struct Probe<T, L, I>(
    PhantomData<fn() -> T>,
    PhantomData<fn() -> L>,
    PhantomData<fn() -> I>,
);

/// Not public API.
#[must_use]
pub const fn probe<T, L, I>(_: &L) -> Probe<T, L, I> {
    Probe(PhantomData, PhantomData, PhantomData)
}

/// The layer provides the value. Not public API.
#[derive(Debug)]
pub struct Yes;

/// The layer does not provide the value. Not public API.
#[derive(Debug)]
pub struct No;

/// The index of a value that a layer does not provide. Not public API.
#[derive(Debug)]
pub struct Nowhere;

/// Checks that a layer provides `T`: `answers` is `(Yes | No, (.., ()))`, one per layer.
/// Not public API.
pub const fn check<T, S: AnyYes<T>>(_: &S) {}

/// The traits the generated code brings into scope. Not public API.
pub mod traits {
    use super::{Contains, No, Nowhere, Probe, Provides, Yes};

    /// A layer whose declared values hold `T`. Not public API.
    pub trait __MiddlewareProvidesKind {
        /// Not public API.
        fn provided(&self) -> Yes {
            Yes
        }
    }

    impl<T, L, I> __MiddlewareProvidesKind for &Probe<T, L, I>
    where
        L: Provides,
        L::Values: Contains<T, I>,
    {
    }

    /// Any other layer. Not public API.
    pub trait __MiddlewareProvidesNothing {
        /// Not public API.
        fn provided(&self) -> No {
            No
        }
    }

    impl<T, L> __MiddlewareProvidesNothing for Probe<T, L, Nowhere> {}
}

/// At position `N` of a tuple. Not public API.
#[derive(Debug)]
pub struct At<const N: usize>;

/// A layer of the handler provides `T`. Not public API.
#[diagnostic::on_unimplemented(
    message = "no layer of this `#[handler]` provides the context value `{T}`",
    label = "no layer provides `{T}`",
    note = "a layer declares what it puts in the context with `middleware_std::axum::Provides` (or `#[middleware(provides(..))]` when it derives `Layer`); if an outer layer provides it, mark the parameter `#[from_outer]` (a `500` when absent) or take `Option<Ctx<{T}>>`"
)]
pub trait AnyYes<T> {}

impl<T, R> AnyYes<T> for (Yes, R) {}
impl<T, R: AnyYes<T>> AnyYes<T> for (No, R) {}

/// A tuple holds `T`, at `I`. Not public API.
pub trait Contains<T, I> {}

macro_rules! contains {
    ([$($before:ident)*] [$($after:ident)*] $n:literal) => {
        impl<__T, $($before,)* $($after,)*> Contains<__T, At<$n>> for ($($before,)* __T, $($after,)*) {}
    };
}

contains!([] [] 0);
contains!([] [A1] 0);
contains!([A0] [] 1);
contains!([] [A1 A2] 0);
contains!([A0] [A2] 1);
contains!([A0 A1] [] 2);
contains!([] [A1 A2 A3] 0);
contains!([A0] [A2 A3] 1);
contains!([A0 A1] [A3] 2);
contains!([A0 A1 A2] [] 3);
contains!([] [A1 A2 A3 A4] 0);
contains!([A0] [A2 A3 A4] 1);
contains!([A0 A1] [A3 A4] 2);
contains!([A0 A1 A2] [A4] 3);
contains!([A0 A1 A2 A3] [] 4);
contains!([] [A1 A2 A3 A4 A5] 0);
contains!([A0] [A2 A3 A4 A5] 1);
contains!([A0 A1] [A3 A4 A5] 2);
contains!([A0 A1 A2] [A4 A5] 3);
contains!([A0 A1 A2 A3] [A5] 4);
contains!([A0 A1 A2 A3 A4] [] 5);
contains!([] [A1 A2 A3 A4 A5 A6] 0);
contains!([A0] [A2 A3 A4 A5 A6] 1);
contains!([A0 A1] [A3 A4 A5 A6] 2);
contains!([A0 A1 A2] [A4 A5 A6] 3);
contains!([A0 A1 A2 A3] [A5 A6] 4);
contains!([A0 A1 A2 A3 A4] [A6] 5);
contains!([A0 A1 A2 A3 A4 A5] [] 6);
contains!([] [A1 A2 A3 A4 A5 A6 A7] 0);
contains!([A0] [A2 A3 A4 A5 A6 A7] 1);
contains!([A0 A1] [A3 A4 A5 A6 A7] 2);
contains!([A0 A1 A2] [A4 A5 A6 A7] 3);
contains!([A0 A1 A2 A3] [A5 A6 A7] 4);
contains!([A0 A1 A2 A3 A4] [A6 A7] 5);
contains!([A0 A1 A2 A3 A4 A5] [A7] 6);
contains!([A0 A1 A2 A3 A4 A5 A6] [] 7);
contains!([] [A1 A2 A3 A4 A5 A6 A7 A8] 0);
contains!([A0] [A2 A3 A4 A5 A6 A7 A8] 1);
contains!([A0 A1] [A3 A4 A5 A6 A7 A8] 2);
contains!([A0 A1 A2] [A4 A5 A6 A7 A8] 3);
contains!([A0 A1 A2 A3] [A5 A6 A7 A8] 4);
contains!([A0 A1 A2 A3 A4] [A6 A7 A8] 5);
contains!([A0 A1 A2 A3 A4 A5] [A7 A8] 6);
contains!([A0 A1 A2 A3 A4 A5 A6] [A8] 7);
contains!([A0 A1 A2 A3 A4 A5 A6 A7] [] 8);
contains!([] [A1 A2 A3 A4 A5 A6 A7 A8 A9] 0);
contains!([A0] [A2 A3 A4 A5 A6 A7 A8 A9] 1);
contains!([A0 A1] [A3 A4 A5 A6 A7 A8 A9] 2);
contains!([A0 A1 A2] [A4 A5 A6 A7 A8 A9] 3);
contains!([A0 A1 A2 A3] [A5 A6 A7 A8 A9] 4);
contains!([A0 A1 A2 A3 A4] [A6 A7 A8 A9] 5);
contains!([A0 A1 A2 A3 A4 A5] [A7 A8 A9] 6);
contains!([A0 A1 A2 A3 A4 A5 A6] [A8 A9] 7);
contains!([A0 A1 A2 A3 A4 A5 A6 A7] [A9] 8);
contains!([A0 A1 A2 A3 A4 A5 A6 A7 A8] [] 9);
contains!([] [A1 A2 A3 A4 A5 A6 A7 A8 A9 A10] 0);
contains!([A0] [A2 A3 A4 A5 A6 A7 A8 A9 A10] 1);
contains!([A0 A1] [A3 A4 A5 A6 A7 A8 A9 A10] 2);
contains!([A0 A1 A2] [A4 A5 A6 A7 A8 A9 A10] 3);
contains!([A0 A1 A2 A3] [A5 A6 A7 A8 A9 A10] 4);
contains!([A0 A1 A2 A3 A4] [A6 A7 A8 A9 A10] 5);
contains!([A0 A1 A2 A3 A4 A5] [A7 A8 A9 A10] 6);
contains!([A0 A1 A2 A3 A4 A5 A6] [A8 A9 A10] 7);
contains!([A0 A1 A2 A3 A4 A5 A6 A7] [A9 A10] 8);
contains!([A0 A1 A2 A3 A4 A5 A6 A7 A8] [A10] 9);
contains!([A0 A1 A2 A3 A4 A5 A6 A7 A8 A9] [] 10);
contains!([] [A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11] 0);
contains!([A0] [A2 A3 A4 A5 A6 A7 A8 A9 A10 A11] 1);
contains!([A0 A1] [A3 A4 A5 A6 A7 A8 A9 A10 A11] 2);
contains!([A0 A1 A2] [A4 A5 A6 A7 A8 A9 A10 A11] 3);
contains!([A0 A1 A2 A3] [A5 A6 A7 A8 A9 A10 A11] 4);
contains!([A0 A1 A2 A3 A4] [A6 A7 A8 A9 A10 A11] 5);
contains!([A0 A1 A2 A3 A4 A5] [A7 A8 A9 A10 A11] 6);
contains!([A0 A1 A2 A3 A4 A5 A6] [A8 A9 A10 A11] 7);
contains!([A0 A1 A2 A3 A4 A5 A6 A7] [A9 A10 A11] 8);
contains!([A0 A1 A2 A3 A4 A5 A6 A7 A8] [A10 A11] 9);
contains!([A0 A1 A2 A3 A4 A5 A6 A7 A8 A9] [A11] 10);
contains!([A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 A10] [] 11);
