use middleware_core::{Layer, Observe};

/// An observer: the layer's service answers with the inner service's response type.
#[derive(Clone, Layer)]
#[middleware(observe)]
struct Count;

impl Observe for Count {
    type State = ();

    fn before<B>(&self, _: &mut http::Request<B>) {}

    fn after<B>(&self, (): (), _: &mut http::Response<B>) {}
}

fn same_response<S>(_: S)
where
    S: tower::Service<http::Request<String>, Response = http::Response<String>>,
{
}

fn main() {
    let inner = tower::service_fn(|_: http::Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let svc: CountService<_> = tower::Layer::layer(&Count::new(), inner);
    same_response(svc);
}
