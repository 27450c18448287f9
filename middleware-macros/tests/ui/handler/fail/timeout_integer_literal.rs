use middleware_macros::handler;

#[handler(timeout = 5)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
