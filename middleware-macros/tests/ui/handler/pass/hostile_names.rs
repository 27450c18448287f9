//! The expansion names nothing the user can shadow: every std and core name it could reach
//! for is taken by a local item here, and so are `core`, `std`, `http` and the crates.
#![deny(warnings)]
#![allow(dead_code, non_camel_case_types, unused_macros)]

/// The user's module: the hostile names are in its scope, where the macro expands.
mod app {
    use ::middleware_macros::handler;
    use ::middleware_std::auth::{AuthLayer, Principal};

    mod core {}
    mod std {}
    mod http {}
    mod middleware_core {}
    mod middleware_std {}
    mod axum {}
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
    struct Future;
    struct Pin;
    struct Send;
    struct Sync;
    struct Copy;
    struct Duration;
    struct Infallible;
    struct Bytes;
    struct Body;
    struct Layer;
    struct TimeoutLayer;
    struct LogLayer;
    struct HandlerFn;
    struct S;
    struct service;
    trait Clone {}
    trait Into {}
    macro_rules! unreachable {
        () => {
            compile_error!("the user's `unreachable!` was called")
        };
    }

    #[handler(
        request_id,
        log,
        catch_panic,
        timing,
        timeout = "1m30s",
        auth = AuthLayer::bearer("t", Principal::new("p")),
    )]
    pub(crate) async fn everything(
        who: Principal,
        id: ::middleware_std::RequestId,
        deadline: ::std::time::Instant,
        cx: &::middleware_std::Context,
        parts: ::http::request::Parts,
    ) -> ::std::string::String {
        let _ = (deadline, cx.elapsed(), parts.uri);
        ::std::format!("{} {id}", who.id())
    }

    #[handler(state = u32)]
    pub(crate) async fn with_state(
        state: &u32,
        who: ::std::option::Option<Principal>,
        #[body] body: ::std::string::String,
    ) -> ::http::StatusCode {
        let _ = (state, who, body);
        ::http::StatusCode::OK
    }
}

fn main() {
    let _ = app::everything.service::<()>();
    let _ = app::with_state(1).service();
    let _ = ::axum::routing::get::<_, _, ()>(app::everything);
}
