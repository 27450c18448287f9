use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn]
fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let _ = (req, next);
    unimplemented!()
}

fn main() {}
