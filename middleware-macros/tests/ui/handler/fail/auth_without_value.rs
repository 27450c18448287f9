use middleware_macros::handler;

#[handler(auth)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
