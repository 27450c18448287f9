use middleware_core::{Layer, Middleware, Next, Outcome};

#[derive(Clone, Layer)]
#[middleware(new = false)]
struct Stamp(u8);

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        next.run(req).await
    }
}

fn main() {}
