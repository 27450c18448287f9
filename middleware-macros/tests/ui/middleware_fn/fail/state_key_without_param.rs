use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

struct Config;

#[middleware_fn(state = Config)]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

fn main() {}
