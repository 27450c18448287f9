use http::Request;
use middleware_macros::handler;

#[handler]
async fn hello(req: Request<String>, #[body] body: String) -> String {
    format!("{} {body}", req.uri())
}

fn main() {}
