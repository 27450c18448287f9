use middleware_core::{Layer, Middleware, Next, Outcome};

#[derive(Clone, Layer)]
struct Stamp;

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        next.run(req).await
    }
}

/// A unit struct with its own constructor opts out of the generated one.
#[derive(Clone, Layer)]
#[middleware(new = false)]
struct Own;

impl Own {
    const fn new() -> Self {
        Self
    }
}

impl Middleware for Own {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        next.run(req).await
    }
}

// Every derived layer is built the same way, in a `const` too.
const STAMP: Stamp = Stamp::new();

fn main() {
    let _ = (STAMP, Own::new());
}
