use http::Request;
use middleware_core::{Context, Next, Outcome, middleware_fn};

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N, cx: &mut Context) -> Outcome<N> {
    cx.insert(1_u8);
    next.run(req).await
}

fn main() {}
