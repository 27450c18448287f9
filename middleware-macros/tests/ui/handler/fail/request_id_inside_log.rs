use middleware_macros::handler;

#[handler(log, request_id)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
