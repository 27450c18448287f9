use http::HeaderMap;
use middleware_macros::handler;

#[handler]
async fn hello(#[from_outer] headers: HeaderMap) -> String {
    format!("{}", headers.len())
}

fn main() {}
