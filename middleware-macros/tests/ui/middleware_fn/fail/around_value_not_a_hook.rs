use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};
use middleware_core::HookLayer;

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

fn main() {
    // An async fn is an around middleware: `MiddlewareLayer::new(stamp())` or `.layer(stamp())`.
    let _ = HookLayer::new(stamp());
}
