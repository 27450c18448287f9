//! `allow(<rule>)` keeps an order the rules would refuse: here `StackLayer`'s, with timing
//! outside panic recovery.
#![deny(warnings)]

use middleware_macros::handler;

#[handler(
    request_id,
    log,
    timing,
    catch_panic,
    timeout = "1s",
    allow(catch_panic_inside_timing)
)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {
    let _ = hello.service::<()>();
}
