use middleware_core::Layer;

#[derive(Clone, Layer)]
struct Stamp;

fn main() {}
