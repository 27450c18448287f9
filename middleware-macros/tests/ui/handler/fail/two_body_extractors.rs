use axum::Json;
use middleware_macros::handler;

#[handler]
async fn create(text: String, Json(body): Json<String>) -> String {
    format!("{text}: {body}")
}

fn main() {}
