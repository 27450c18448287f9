use std::ops::ControlFlow;

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::middleware_fn;

#[middleware_fn(before)]
extern "C" fn tenant<B>(req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
    let _ = req;
    ControlFlow::Continue(())
}

fn main() {}
