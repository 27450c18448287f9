use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn(after = stamp_after)]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

fn stamp_after() {}

fn main() {}
