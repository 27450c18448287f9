use std::ops::ControlFlow;

use http::{Request, Response};
use middleware_core::middleware_fn;

#[middleware_fn(before)]
fn tenant<B>(req: &mut Request<B>) -> ControlFlow<Response<String>> {
    let _ = req;
    ControlFlow::Continue(())
}

fn main() {}
