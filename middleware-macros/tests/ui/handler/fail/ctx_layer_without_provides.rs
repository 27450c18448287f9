use middleware_macros::handler;
use middleware_std::axum::Ctx;
use tower::layer::util::Identity;

#[derive(Clone)]
struct Tenant;

#[handler(layer(Identity::new()))]
async fn hello(Ctx(tenant): Ctx<Tenant>) -> &'static str {
    let _ = tenant;
    "hello"
}

fn main() {}
