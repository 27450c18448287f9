use axum::extract::State;
use middleware_macros::handler;

#[derive(Clone)]
struct Db;

struct Orders;

impl Orders {
    #[handler(associated)]
    async fn list(State(db): State<Db>) -> &'static str {
        let _ = db;
        "list"
    }
}

fn main() {}
