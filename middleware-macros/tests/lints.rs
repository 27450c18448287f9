//! Every macro form expanded under the strictest lint set a user may have: the expansions add
//! no warning of their own. Clippy's lints apply when clippy runs (CI runs it with
//! `--all-targets`); rustc's apply to every build.
#![deny(warnings, clippy::all, clippy::pedantic, unused_qualifications)]

use std::{ops::ControlFlow, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use middleware_core::{
    Context, Hook, Layer, Middleware, Next, Observe, Outcome, ResponseBody, middleware_fn,
};

/// A re-exporter, as `middleware_std` is: `crate = "..."` points the expansion at it.
mod reexport {
    pub(crate) use middleware_core::*;
}

/// Around, every field key, public.
#[derive(Clone, Layer)]
#[middleware(around)]
pub struct Full {
    name: &'static str,
    #[middleware(secret)]
    token: String,
    #[middleware(default = Duration::from_secs(1))]
    budget: Duration,
    #[middleware(default)]
    retries: u8,
}

impl Middleware for Full {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let _ = (self.name, &self.token, self.budget, self.retries);
        next.run(req).await
    }
}

/// Private, so `dead_code` would see unused generated items.
#[derive(Clone, Layer)]
struct Private {
    #[middleware(default = 3)]
    limit: u32,
}

impl Middleware for Private {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let _ = self.limit;
        next.run(req).await
    }
}

/// Every field has a default, so `new()` takes nothing.
#[derive(Clone, Layer)]
pub struct AllDefaults {
    #[middleware(default)]
    a: u8,
}

impl Middleware for AllDefaults {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let _ = self.a;
        next.run(req).await
    }
}

/// Eight required fields: `new` takes eight arguments.
#[derive(Clone, Layer)]
#[allow(clippy::struct_excessive_bools)]
pub struct Wide {
    a: bool,
    b: bool,
    c: bool,
    d: bool,
    e: bool,
    f: bool,
    g: bool,
    h: bool,
}

impl Middleware for Wide {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let _ = [
            self.a, self.b, self.c, self.d, self.e, self.f, self.g, self.h,
        ];
        next.run(req).await
    }
}

/// Hook mode, tuple struct, generic, through the re-exporter.
#[derive(Clone, Layer)]
#[middleware(hook, crate = "reexport", service = Tagged)]
pub struct Tag<T: Clone + Send + Sync + 'static, const N: usize>(T);

impl<T: Clone + Send + Sync + 'static, const N: usize> Hook for Tag<T, N> {
    type State = ();

    fn before<B>(&self, _: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        let _ = &self.0;
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

/// Unit struct.
#[derive(Clone, Layer)]
#[middleware(hook)]
pub struct Nothing;

impl Hook for Nothing {
    type State = ();

    fn before<B>(&self, _: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

/// Observe mode, named fields with a default, generic, through the re-exporter.
#[derive(Clone, Layer)]
#[middleware(observe, crate = "reexport")]
pub struct Watch<T: Clone + Send + Sync + 'static> {
    tag: T,
    #[middleware(default)]
    count: u8,
}

impl<T: Clone + Send + Sync + 'static> Observe for Watch<T> {
    type State = u8;

    fn before<B>(&self, _: &mut Request<B>) -> u8 {
        let _ = &self.tag;
        self.count
    }

    fn after<B>(&self, count: u8, _: &mut Response<B>) {
        let _ = count;
    }
}

/// Around fn, public.
#[middleware_fn]
pub async fn around<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N> {
    next.run(req).await
}

/// Around fn with the context and state, private.
#[middleware_fn(state = Duration)]
async fn with_everything<N: Next>(
    req: Request<N::ReqBody>,
    next: N,
    cx: &Context,
    budget: &Duration,
) -> Outcome<N> {
    cx.set_timeout(*budget);
    next.run(req).await
}

/// Around fn with an owned context, through the re-exporter.
#[middleware_fn(crate = "reexport")]
pub async fn owned_context<N: Next>(req: Request<N::ReqBody>, next: N, cx: Context) -> Outcome<N> {
    let res = next.run(req).await;
    drop(cx);
    res
}

/// Before only.
#[middleware_fn(before)]
pub fn before_only<B>(req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
    if req.headers().is_empty() {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(Response::new(Bytes::new()))
    }
}

/// Before and after, with `Copy` state taken by value.
#[middleware_fn(before, state = StatusCode, after = after_status)]
fn before_after<B>(_: &mut Request<B>, status: StatusCode) -> ControlFlow<Response<Bytes>, u16> {
    ControlFlow::Continue(status.as_u16())
}

fn after_status<B>(code: u16, res: &mut Response<ResponseBody<B>>, status: StatusCode) {
    if code == status.as_u16() {
        *res.status_mut() = status;
    }
}

/// A handler's re-exporter: `middleware_std` under another name.
mod std_reexport {
    pub(crate) use middleware_std::__private;
}

/// Handler with every layer key and every kind of parameter, public.
#[middleware_macros::handler(
    request_id,
    log,
    catch_panic,
    timing,
    timeout = "1m30s",
    auth = middleware_std::auth::AuthLayer::bearer("t", middleware_std::auth::Principal::new("p")),
    layer(tower::limit::ConcurrencyLimitLayer::new(8)),
    allow(),
)]
pub async fn handler_everything(
    who: middleware_std::auth::Principal,
    id: middleware_std::RequestId,
    deadline: std::time::Instant,
    cx: &Context,
    parts: http::request::Parts,
    headers: http::HeaderMap,
) -> Result<String, middleware_std::Error> {
    let _ = (deadline, cx.elapsed(), parts.uri, headers.len());
    Ok(format!("{} {id}", who.id()))
}

/// Handler with state, the whole request and outer values, private, through a re-exporter.
#[middleware_macros::handler(state = Duration, crate = "std_reexport")]
async fn handler_with_state(
    req: Request<String>,
    budget: Duration,
    #[from_outer] who: middleware_std::auth::Principal,
    id: Option<middleware_std::RequestId>,
) -> StatusCode {
    let _ = (req, budget, who, id);
    StatusCode::OK
}

#[test]
fn every_form_expands_without_warnings() {
    let _ = handler_everything.service::<String>();
    let _ = handler_with_state(Duration::ZERO).service();
    // Used only through their types: the point is that they compiled under the deny list.
    let _ = Full::new("n", String::new())
        .budget(Duration::ZERO)
        .retries(1);
    let _ = AllDefaults::new();
    let _ = Wide::new(true, true, true, true, true, true, true, true);
    let _ = (Tag::<u8, 1>(1), Nothing);
    let _ = (
        around(),
        owned_context(),
        before_only(),
        before_after(StatusCode::OK),
    );
    let _ = with_everything(Duration::ZERO);
    let _: Option<FullService<()>> = None;
    let _: Option<Tagged<(), u8, 1>> = None;
}
