use middleware_macros::handler;

#[handler]
async fn maybe() -> Option<String> {
    None
}

fn main() {}
