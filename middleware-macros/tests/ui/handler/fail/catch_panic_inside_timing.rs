use middleware_macros::handler;

#[handler(timing, catch_panic)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
