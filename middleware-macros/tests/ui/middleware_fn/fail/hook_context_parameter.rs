use std::ops::ControlFlow;

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::{Context, middleware_fn};

#[middleware_fn(before)]
fn tenant<B>(req: &mut Request<B>, cx: &Context) -> ControlFlow<Response<Bytes>> {
    let _ = (req, cx);
    ControlFlow::Continue(())
}

fn main() {}
