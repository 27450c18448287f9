use middleware_macros::handler;

struct Orders;

impl Orders {
    #[handler(associated, state = u32)]
    async fn count(count: &u32) -> String {
        count.to_string()
    }
}

fn main() {}
