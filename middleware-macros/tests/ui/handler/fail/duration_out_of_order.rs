use middleware_macros::handler;

#[handler(timeout = "30s1m")]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
