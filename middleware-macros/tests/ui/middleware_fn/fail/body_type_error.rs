use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let status: u16 = "200";
    let _ = status;
    next.run(req).await
}

fn main() {}
