use middleware_macros::handler;

#[handler]
struct Hello;

fn main() {}
