use http::request::Parts;
use middleware_macros::handler;

#[handler]
async fn create(parts: Parts, body: String) -> String {
    format!("{}: {body}", parts.uri)
}

fn main() {}
