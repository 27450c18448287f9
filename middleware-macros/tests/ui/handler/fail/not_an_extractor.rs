use middleware_macros::handler;

struct Config;

#[handler]
async fn hello(config: Config) -> &'static str {
    let _ = config;
    "hello"
}

fn main() {}
