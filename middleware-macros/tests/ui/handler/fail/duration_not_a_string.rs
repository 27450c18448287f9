use middleware_macros::handler;

#[handler(timeout = 250)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
