use middleware_macros::handler;
use middleware_std::{auth::Principal, timeout::TimeoutLayer};

#[handler(auth = TimeoutLayer::new(std::time::Duration::from_secs(1)))]
async fn hello(who: Principal) -> String {
    format!("hello {}", who.id())
}

fn main() {}
