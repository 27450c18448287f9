use std::ops::ControlFlow;

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::middleware_fn;
use tower::Layer;

use std::sync::atomic::{AtomicUsize, Ordering};

#[middleware_fn(before, state = AtomicUsize)]
fn count<B>(req: &mut Request<B>, seen: &AtomicUsize) -> ControlFlow<Response<Bytes>> {
    let _ = req;
    seen.fetch_add(1, Ordering::Relaxed);
    ControlFlow::Continue(())
}

fn main() {
    // Each service gets a copy of a layer's value: this state cannot be copied (wrap it in
    // `HookLayer::new(..)`, which shares one value, or make the state an `Arc`).
    let _ = count(AtomicUsize::new(0)).layer(());
}
