use middleware_macros::handler;
use middleware_std::auth::Principal;

#[handler(timeout = "5x", log, request_id, lgo)]
async fn hello(who: Principal) -> String {
    format!("hello {}", who.id())
}

fn main() {}
