use bytes::Bytes;
use http::{Request, Response};
use middleware_core::middleware_fn;

#[middleware_fn(before)]
fn tenant<B>(req: &mut Request<B>) -> Option<Response<Bytes>> {
    let _ = req;
    None
}

fn main() {}
