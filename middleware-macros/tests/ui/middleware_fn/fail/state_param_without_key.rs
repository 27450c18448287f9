use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

struct Config;

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N, config: &Config) -> Outcome<N> {
    let _ = config;
    next.run(req).await
}

fn main() {}
