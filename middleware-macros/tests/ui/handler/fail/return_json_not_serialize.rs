use axum::Json;
use middleware_macros::handler;

struct User;

#[handler]
async fn user() -> Json<User> {
    Json(User)
}

fn main() {}
