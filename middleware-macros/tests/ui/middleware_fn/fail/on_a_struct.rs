use middleware_core::middleware_fn;

#[middleware_fn]
struct Stamp;

fn main() {}
