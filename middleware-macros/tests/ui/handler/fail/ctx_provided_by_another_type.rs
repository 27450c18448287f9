use middleware_macros::handler;
use middleware_std::auth::{AuthLayer, Principal};
use middleware_std::axum::Ctx;

#[derive(Clone)]
struct Tenant;

#[handler(auth = AuthLayer::bearer("t0ken", Principal::new("ada")))]
async fn hello(Ctx(tenant): Ctx<Tenant>) -> &'static str {
    let _ = tenant;
    "hello"
}

fn main() {}
