use middleware_macros::handler;
use middleware_std::axum::Ctx;

#[derive(Clone)]
struct Tenant;

#[handler]
async fn hello(#[from_outer] tenant: Option<Ctx<Tenant>>) -> &'static str {
    let _ = tenant;
    "hello"
}

fn main() {}
