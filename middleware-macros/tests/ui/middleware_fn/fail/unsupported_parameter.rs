use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N, retries: u32) -> Outcome<N> {
    let _ = retries;
    next.run(req).await
}

fn main() {}
