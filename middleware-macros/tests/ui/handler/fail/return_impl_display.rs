use middleware_macros::handler;

#[handler]
async fn shown() -> impl std::fmt::Display {
    42
}

fn main() {}
