use http::Request;
use middleware_core::{Next, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> http::Response<String> {
    let _ = (req, next);
    unimplemented!()
}

fn main() {}
