use http::Request;
use middleware_core::{Outcome, middleware_fn};

#[middleware_fn]
async fn stamp(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

fn main() {}
