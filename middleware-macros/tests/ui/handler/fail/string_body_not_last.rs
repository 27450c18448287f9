use axum::http::HeaderMap;
use middleware_macros::handler;

#[handler]
async fn hello(body: String, headers: HeaderMap) -> String {
    format!("{body} {}", headers.len())
}

fn main() {}
