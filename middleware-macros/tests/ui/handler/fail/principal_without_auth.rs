use middleware_macros::handler;
use middleware_std::auth::Principal;

#[handler(log)]
async fn hello(who: Principal) -> String {
    format!("hello {}", who.id())
}

fn main() {}
