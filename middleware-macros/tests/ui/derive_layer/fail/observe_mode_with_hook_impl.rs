use std::ops::ControlFlow;

use middleware_core::{Hook, Layer, ResponseBody};

#[derive(Clone, Layer)]
#[middleware(observe)]
struct Stamp;

impl Hook for Stamp {
    type State = ();

    fn before<B>(&self, _: &mut http::Request<B>) -> ControlFlow<http::Response<bytes::Bytes>> {
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut http::Response<ResponseBody<B>>) {}
}

fn main() {}
