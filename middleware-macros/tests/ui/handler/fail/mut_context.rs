use middleware_macros::handler;
use middleware_std::Context;

#[handler]
async fn hello(cx: &mut Context) -> &'static str {
    let _ = cx;
    "hello"
}

fn main() {}
