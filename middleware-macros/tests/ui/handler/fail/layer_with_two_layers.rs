use middleware_macros::handler;
use tower::limit::ConcurrencyLimitLayer;

#[handler(layer(ConcurrencyLimitLayer::new(8), ConcurrencyLimitLayer::new(4)))]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
