use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

use std::rc::Rc;

#[middleware_fn(state = Rc<u8>)]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N, state: &Rc<u8>) -> Outcome<N> {
    let _ = state;
    next.run(req).await
}

fn main() {}
