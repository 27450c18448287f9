use middleware_macros::handler;

#[handler(timout = "5s")]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
