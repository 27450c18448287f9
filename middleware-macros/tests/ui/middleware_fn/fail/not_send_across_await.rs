use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

use std::rc::Rc;

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let counter = Rc::new(1);
    let res = next.run(req).await;
    let _ = counter;
    res
}

fn main() {}
