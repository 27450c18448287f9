use middleware_macros::handler;

#[handler(timeout = "soon")]
async fn hello() -> &'static str {
    "hello"
}

fn main() {
    // The handler value and its service still exist: no second error here.
    let _service = hello.service::<String>();
}
