use middleware_macros::handler;

#[handler(log, request_id, allow(request_id_inside_logs))]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
