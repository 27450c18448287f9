use std::ops::ControlFlow;

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::{Hook, Layer, ResponseBody};

#[derive(Clone, Layer)]
#[middleware(hook, crate = "middleware_everything")]
struct Tenant {
    header: &'static str,
}

impl Hook for Tenant {
    type State = ();

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        let _ = (req, self.header);
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

fn main() {}
