use middleware_macros::handler;

#[handler(retries = 3)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
