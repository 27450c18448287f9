//! `crate = "..."` points the expansion at a re-exporter (as `middleware_std` is), for users
//! who do not depend on `middleware-core` by name.
#![deny(warnings)]

mod batteries {
    pub use middleware_core::*;
}

use batteries::{Layer, Middleware, Next, Outcome, middleware_fn};

#[derive(Clone, Layer)]
#[middleware(crate = "batteries")]
struct Stamp;

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        next.run(req).await
    }
}

#[middleware_fn(crate = "crate::batteries")]
async fn stamp<N: Next>(req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

fn main() {
    let _ = tower::ServiceBuilder::new()
        .layer(Stamp)
        .layer(batteries::MiddlewareLayer::new(stamp()))
        .service(tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }));
}
