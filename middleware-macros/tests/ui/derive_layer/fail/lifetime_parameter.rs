use middleware_core::Layer;

#[derive(Clone, Layer)]
struct Stamp<'a> {
    name: &'a str,
}

fn main() {}
