use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn(state = u64)]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N, limit: &mut u64) -> Outcome<N> {
    *limit += 1;
    next.run(req).await
}

fn main() {}
