use middleware_macros::handler;

#[handler]
fn hello() -> &'static str {
    "hello"
}

fn main() {}
