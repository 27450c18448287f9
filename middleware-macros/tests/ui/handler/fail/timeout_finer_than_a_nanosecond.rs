use middleware_macros::handler;

#[handler(timeout = "0.0001us")]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
