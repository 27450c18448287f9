use middleware_core::{Layer, Middleware, Next, Outcome};

#[derive(Clone, Layer)]
#[middleware(servce = StampSvc)]
struct Stamp {
    name: &'static str,
    #[middleware(default = 3)]
    limit: u32,
}

impl Middleware for Stamp {
    async fn handle<N: Next>(&self, req: http::Request<N::ReqBody>, next: N) -> Outcome<N> {
        let _ = (self.name, self.limit);
        next.run(req).await
    }
}

// Only the misspelled key is reported: the generated items still exist.
fn main() {
    let stamp = Stamp::new("x").limit(4);
    let _: StampService<()> = tower::Layer::layer(&stamp, ());
    let _ = format!("{stamp:?}");
}
