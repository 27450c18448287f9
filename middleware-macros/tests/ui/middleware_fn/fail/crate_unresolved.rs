use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn(crate = "middleware_everything")]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

fn main() {}
