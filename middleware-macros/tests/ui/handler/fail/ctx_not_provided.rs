use middleware_macros::handler;
use middleware_std::axum::Ctx;

#[derive(Clone)]
struct Tenant;

#[handler(request_id)]
async fn hello(Ctx(tenant): Ctx<Tenant>) -> &'static str {
    let _ = tenant;
    "hello"
}

fn main() {}
