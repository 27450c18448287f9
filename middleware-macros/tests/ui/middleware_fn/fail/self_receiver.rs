use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

struct Stamp;

impl Stamp {
    #[middleware_fn]
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        next.run(req).await
    }
}

fn main() {}
