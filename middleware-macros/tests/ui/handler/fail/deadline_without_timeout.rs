use std::time::Instant;

use middleware_macros::handler;

#[handler(log)]
async fn hello(deadline: Instant) -> String {
    format!("{:?}", deadline.elapsed())
}

fn main() {}
