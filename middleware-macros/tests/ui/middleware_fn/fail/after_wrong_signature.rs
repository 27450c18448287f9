use std::ops::ControlFlow;

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::ResponseBody;
use middleware_core::middleware_fn;

#[middleware_fn(before, after = tenant_after)]
fn tenant<B>(req: &mut Request<B>) -> ControlFlow<Response<Bytes>, u32> {
    let _ = req;
    ControlFlow::Continue(1)
}

fn tenant_after<B>(state: String, res: &mut Response<ResponseBody<B>>) {
    let _ = (state, res);
}

fn main() {}
