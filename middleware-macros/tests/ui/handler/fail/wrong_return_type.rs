use middleware_macros::handler;

#[handler]
async fn hello() -> u32 {
    7
}

fn main() {}
