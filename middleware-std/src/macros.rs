//! Internal macros shared by the std layers.

/// `get_ref`, `get_mut` and `into_inner` for a service whose wrapped service is `inner`.
// Unused when no layer feature is on (e.g. `--features macros` alone).
#[allow(unused_macros)]
macro_rules! define_inner_service_accessors {
    () => {
        /// Gets a reference to the inner service.
        pub const fn get_ref(&self) -> &S {
            &self.inner
        }

        /// Gets a mutable reference to the inner service.
        pub const fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes `self`, returning the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
