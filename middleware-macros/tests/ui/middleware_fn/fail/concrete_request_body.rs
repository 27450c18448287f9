use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next>(req: Request<String>, next: N) -> Outcome<N> {
    let _ = (req, next);
    unimplemented!()
}

fn main() {}
