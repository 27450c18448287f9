use middleware_core::Layer;

#[derive(Layer)]
enum Stamp {
    A,
}

fn main() {}
