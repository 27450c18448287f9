use middleware_macros::handler;

#[handler(timeout = "5 seconds")]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
