use axum::Json;
use http::Request;
use middleware_macros::handler;

#[handler]
async fn create(req: Request<String>, Json(body): Json<String>) -> String {
    format!("{}: {body}", req.uri())
}

fn main() {}
