use http::Request;
use middleware_core::{Next, Outcome, middleware_fn};

// A borrow of the request held across an await: the request body need not be `Sync`, so the
// future is not `Send`. The error is on the return type, whole, and its suggestion is valid.
#[middleware_fn]
async fn held<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    let headers = &req;
    std::future::ready(()).await;
    let _ = headers.headers();
    next.run(req).await
}

fn main() {}
