use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>) -> Outcome<N> {
    let _ = req;
    unimplemented!()
}

fn main() {}
