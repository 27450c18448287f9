use http::Request;
use middleware_core::{Context, Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N, a: &Context, b: Context) -> Outcome<N> {
    let _ = (a, b);
    next.run(req).await
}

fn main() {}
