use middleware_core::{Layer, Middleware, Next, Outcome};

#[derive(Clone, Layer)]
#[middleware(hok, secret)]
struct Stamp {
    #[middleware(default = 1, default = 2)]
    limit: u64,
    #[middleware(redact)]
    key: String,
}

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        next.run(req).await
    }
}

fn main() {}
