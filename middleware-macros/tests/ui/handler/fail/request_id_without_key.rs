use middleware_macros::handler;
use middleware_std::RequestId;

#[handler]
async fn hello(id: RequestId) -> String {
    format!("request {id}")
}

fn main() {}
