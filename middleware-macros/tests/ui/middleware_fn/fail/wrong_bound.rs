use http::Request;
use middleware_core::{Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Clone>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

fn main() {}
