use middleware_macros::handler;

#[handler]
async fn read() -> Result<String, std::io::Error> {
    std::fs::read_to_string("/etc/hostname")
}

fn main() {}
