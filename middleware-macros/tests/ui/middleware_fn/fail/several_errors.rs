use http::Request;
use middleware_core::{Context, Next, middleware_fn};

#[middleware_fn(befor, state = Config)]
async fn stamp<'a, N: Next>(next: N, req: Request<N::ReqBody>, cx: &mut Context) {
    let _ = (req, next, cx);
}

fn main() {}
