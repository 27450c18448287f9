use middleware_macros::handler;

struct Api;

impl Api {
    #[handler]
    async fn hello(&self) -> &'static str {
        "hello"
    }
}

fn main() {}
