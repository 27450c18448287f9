use middleware_macros::handler;

#[handler]
async fn hello<T: Default>() -> &'static str {
    "hello"
}

fn main() {}
