use middleware_core::{Layer, Middleware, Next, Outcome};

#[derive(Clone, Layer)]
#[middleware(new = "no")]
struct Stamp {
    header: &'static str,
}

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        let _ = self.header;
        next.run(req).await
    }
}

fn main() {}
