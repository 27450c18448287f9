//! The expansion names nothing the user can shadow: every std and core name it could reach
//! for is taken by a local item here, and so are `core`, `std` and `http`.
#![deny(warnings)]
#![allow(dead_code, non_camel_case_types, unused_macros)]

/// The user's module: the hostile names are in its scope, where the macros expand.
mod app {
    use ::middleware_core::{Layer, Next, Outcome, ResponseBody};

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
    struct Future;
    struct Pin;
    struct Send;
    struct Sync;
    struct Sized;
    struct Copy;
    struct Default;
    struct Debug;
    struct Formatter;
    struct fmt;
    struct ControlFlow;
    struct Bytes;
    struct Middleware;
    struct Hook;
    struct MiddlewareService;
    struct HookService;
    struct S;
    struct Inner;
    struct N;
    struct B;
    struct inner;
    struct state;
    struct f;
    trait Clone {}
    macro_rules! unreachable {
        () => {
            compile_error!("the user's `unreachable!` was called")
        };
    }
    macro_rules! stringify {
        ($($t:tt)*) => {
            compile_error!("the user's `stringify!` was called")
        };
    }
    macro_rules! concat {
        ($($t:tt)*) => {
            compile_error!("the user's `concat!` was called")
        };
    }

    #[derive(::core::clone::Clone, Layer)]
    struct Stamp {
        name: &'static str,
        #[middleware(secret)]
        key: ::std::string::String,
        #[middleware(default)]
        retries: u8,
        #[middleware(default = 3)]
        limit: u32,
    }

    impl ::middleware_core::Middleware for Stamp {
        async fn handle<M: Next>(&self, req: ::http::Request<M::ReqBody>, next: M) -> Outcome<M> {
            let _ = (self.name, &self.key, self.retries, self.limit);
            next.run(req).await
        }
    }

    #[derive(::core::clone::Clone, Layer)]
    #[middleware(hook)]
    struct Tenant(u8);

    impl ::middleware_core::Hook for Tenant {
        type State = ();

        fn before<T>(
            &self,
            _: &mut ::http::Request<T>,
        ) -> ::core::ops::ControlFlow<::http::Response<::bytes::Bytes>> {
            ::core::ops::ControlFlow::Continue(())
        }

        fn after<T>(&self, (): (), _: &mut ::http::Response<ResponseBody<T>>) {}
    }

    pub fn run() {
        let stamp = Stamp::new("x", ::std::string::String::new())
            .retries(1)
            .limit(2);
        let _: StampService<()> = ::tower::Layer::layer(&stamp, ());
        let _: TenantService<()> = ::tower::Layer::layer(&Tenant(1), ());
        let _ = ::std::format!("{stamp:?}");
    }
}

fn main() {
    app::run();
}
