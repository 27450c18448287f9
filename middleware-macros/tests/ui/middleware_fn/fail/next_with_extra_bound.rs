use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next + Clone>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.clone().run(req).await
}

fn main() {}
