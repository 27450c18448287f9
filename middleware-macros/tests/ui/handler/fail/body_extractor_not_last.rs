use axum::{Json, extract::Path};
use middleware_macros::handler;

#[handler]
async fn create(Json(body): Json<String>, Path(id): Path<u32>) -> String {
    format!("{id}: {body}")
}

fn main() {}
