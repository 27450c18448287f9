use middleware_macros::handler;

#[handler(layer())]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
