use middleware_macros::handler;

#[handler(catch_panic, request_id)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
