//! The expansion names nothing the user can shadow: every std and core name it could reach
//! for is taken by a local item here, and so are `core`, `std` and `http`.
#![deny(warnings)]
#![allow(dead_code, non_camel_case_types, unused_macros)]

/// The user's module: the hostile names are in its scope, where the macros expand.
mod app {
    use ::middleware_core::{Next, Outcome, middleware_fn};

    mod core {}
    mod std {}
    mod http {}
    mod middleware_core {}
    struct Result;
    struct Box;
    struct Option;
    struct Some;
    struct None;
    struct Ok;
    struct Err;
    struct Service;
    struct Request;
    struct Response;
    struct Context;
    struct RequestExt;
    struct Future;
    struct Pin;
    struct Send;
    struct Copy;
    struct Default;
    struct Formatter;
    struct fmt;
    struct ControlFlow;
    struct Bytes;
    struct Middleware;
    struct Hook;
    struct ResponseBody;
    struct N;
    struct handle;
    struct before;
    struct after;
    struct inner;
    struct f;
    struct B;
    trait Clone {}
    macro_rules! unreachable {
        () => {
            compile_error!("the user's `unreachable!` was called")
        };
    }

    #[middleware_fn]
    async fn around<M: Next>(
        req: ::http::Request<M::ReqBody>,
        next: M,
        cx: &::middleware_core::Context,
    ) -> Outcome<M> {
        let _ = cx.is_cancelled();
        next.run(req).await
    }

    #[middleware_fn(state = u32)]
    async fn with_state<M: Next>(
        req: ::http::Request<M::ReqBody>,
        next: M,
        cx: ::middleware_core::Context,
        limit: &u32,
    ) -> Outcome<M> {
        let _ = (cx, limit);
        next.run(req).await
    }

    #[middleware_fn(before, state = u8, after = after_fn)]
    fn hook<T>(
        _: &mut ::http::Request<T>,
        _: &u8,
    ) -> ::core::ops::ControlFlow<::http::Response<::bytes::Bytes>, u16> {
        ::core::ops::ControlFlow::Continue(1)
    }

    fn after_fn<T>(_: u16, _: &mut ::http::Response<::middleware_core::ResponseBody<T>>, _: &u8) {}

    pub fn run() {
        let _ = ::middleware_core::MiddlewareLayer::new(around());
        let _ = ::middleware_core::MiddlewareLayer::new(with_state(1));
        let _ = ::middleware_core::HookLayer::new(hook(2));
    }
}

fn main() {
    app::run();
}
