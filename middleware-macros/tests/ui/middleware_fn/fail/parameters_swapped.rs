use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next>(next: N, req: Request<N::ReqBody>) -> Outcome<N> {
    next.run(req).await
}

fn main() {}
