use http::Request;
use middleware_core::{Middleware, MiddlewareLayer, Next, Outcome, middleware_fn};

#[middleware_fn]
fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let _ = (req, next);
    unimplemented!()
}

// Only the missing `async` is reported: the middleware value still exists.
fn main() {
    let _ = MiddlewareLayer::new(stamp().then(stamp()));
    let _ = format!("{:?}", stamp());
}
