use middleware_macros::handler;

struct Db;

#[handler]
async fn hello(db: &Db) -> &'static str {
    let _ = db;
    "hello"
}

fn main() {}
