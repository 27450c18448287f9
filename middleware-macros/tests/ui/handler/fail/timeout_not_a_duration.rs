use middleware_macros::handler;

const BUDGET_MS: u64 = 250;

#[handler(timeout = BUDGET_MS)]
async fn hello() -> &'static str {
    "hello"
}

fn main() {}
