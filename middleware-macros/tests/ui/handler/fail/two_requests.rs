use http::{Request, request::Parts};
use middleware_macros::handler;

#[handler]
async fn hello(req: Request<String>, parts: Parts) -> String {
    format!("{} {}", req.uri(), parts.uri)
}

fn main() {}
