use middleware_macros::handler;

#[handler(timeout = "1.s")]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
