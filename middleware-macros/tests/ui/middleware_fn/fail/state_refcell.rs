use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

use std::cell::RefCell;

#[middleware_fn(state = RefCell<u32>)]
async fn count<N: Next>(req: Request<N::ReqBody>, next: N, seen: &RefCell<u32>) -> Outcome<N> {
    *seen.borrow_mut() += 1;
    next.run(req).await
}

fn main() {}
