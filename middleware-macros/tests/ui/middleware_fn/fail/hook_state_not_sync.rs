use std::ops::ControlFlow;

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::middleware_fn;

use std::cell::Cell;

#[middleware_fn(before, state = Cell<u32>)]
fn count<B>(req: &mut Request<B>, seen: &Cell<u32>) -> ControlFlow<Response<Bytes>> {
    let _ = req;
    seen.set(seen.get() + 1);
    ControlFlow::Continue(())
}

fn main() {}
