//! `Authorization` parsing: the input, split on NUL into up to three header values, goes to a
//! bearer and a Basic `AuthLayer`; each must answer 200 exactly for its one valid credential
//! and otherwise the same byte-identical 401 (see `check` in the shared checker).
#![no_main]

#[allow(dead_code)]
#[path = "../../src/bin/reliability/hostile.rs"]
mod hostile;

use std::cell::RefCell;

thread_local! {
    static CHECKER: RefCell<hostile::AuthChecker> = RefCell::new(hostile::AuthChecker::new());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    CHECKER.with(|checker| checker.borrow_mut().check(&hostile::split_values(data)));
});
