use middleware_core::Layer;

#[derive(Layer)]
union Stamp {
    a: u32,
}

fn main() {}
