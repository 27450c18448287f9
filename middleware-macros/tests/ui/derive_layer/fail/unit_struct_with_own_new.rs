use middleware_core::{Layer, Middleware, Next, Outcome};

#[derive(Clone, Layer)]
struct Stamp;

// `derive(Layer)` gives a unit struct `new()`; keep yours with `#[middleware(new = false)]`.
impl Stamp {
    #[allow(dead_code)]
    fn new() -> Self {
        Self
    }
}

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        next.run(req).await
    }
}

fn main() {}
