use middleware_macros::handler;

#[handler(request_id, log, allow(request_id_inside_log))]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
