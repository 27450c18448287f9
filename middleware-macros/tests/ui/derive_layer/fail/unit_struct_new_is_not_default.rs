use middleware_core::{Layer, Middleware, Next, Outcome};

#[derive(Clone, Layer)]
#[middleware(new = false)]
struct Stamp;

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        next.run(req).await
    }
}

fn main() {
    // `new = false`: the unit struct keeps no generated constructor.
    let _ = Stamp::new();
}
