use middleware_macros::handler;

#[handler(timeout = "1s", log, timeout = "2s")]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
