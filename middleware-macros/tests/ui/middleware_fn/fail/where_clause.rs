use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N>(req: Request<N::ReqBody>, next: N) -> Outcome<N>
where
    N: Next,
{
    next.run(req).await
}

fn main() {}
