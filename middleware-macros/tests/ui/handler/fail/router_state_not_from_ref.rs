use axum::{Router, extract::State, routing::get};
use middleware_macros::handler;

#[derive(Clone)]
struct AppState;

#[derive(Clone)]
struct Db;

#[handler]
async fn list(State(db): State<Db>) -> &'static str {
    let _ = db;
    "list"
}

fn main() {
    let _: Router<AppState> = Router::new().route("/", get(list));
}
