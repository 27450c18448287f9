use std::rc::Rc;

use middleware_macros::handler;

async fn audit() {}

#[handler]
async fn hello() -> String {
    let visits = Rc::new(1);
    audit().await;
    format!("hello {visits}")
}

fn main() {}
