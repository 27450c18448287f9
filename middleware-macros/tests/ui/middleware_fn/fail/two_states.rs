use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn(state = u64)]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N, a: &u64, b: &u64) -> Outcome<N> {
    let _ = (a, b);
    next.run(req).await
}

fn main() {}
