use middleware_macros::handler;

struct User;

#[handler]
async fn hello() -> User {
    User
}

fn main() {}
