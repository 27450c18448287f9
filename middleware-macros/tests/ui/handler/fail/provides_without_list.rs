use middleware_std::Layer;

#[derive(Clone, Layer)]
#[middleware(hook, provides)]
struct TenantLayer;

fn main() {}
