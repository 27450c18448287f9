use axum::extract::Request;
use middleware_macros::handler;

#[handler]
async fn hello(req: Request, body: String) -> String {
    format!("{} {body}", req.uri())
}

fn main() {}
