use std::{convert::Infallible, ops::ControlFlow, sync::Arc};

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::{Next, Outcome, middleware_fn};
use tower::{ServiceBuilder, service_fn};

#[middleware_fn]
async fn stamp<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

#[middleware_fn(state = Arc<str>)]
async fn named<N: Next>(req: Request<N::ReqBody>, next: N, name: &Arc<str>) -> Outcome<N> {
    let _ = name;
    next.run(req).await
}

#[middleware_fn(before)]
fn tenant<B>(req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
    let _ = req;
    ControlFlow::Continue(())
}

fn main() {
    // Each value is a layer, as a derived struct is: no `MiddlewareLayer::new(..)` needed.
    let _svc = ServiceBuilder::new()
        .layer(stamp())
        .layer(named(Arc::from("edge")))
        .layer(tenant())
        .service(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
}
