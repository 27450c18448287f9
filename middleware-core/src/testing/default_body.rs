//! The `Default` check of the kit: whether the layered response body type stays `Default`
//! (the probe's is), which needs the concrete type, so it runs through
//! [`check_conformance!`](crate::check_conformance).

use std::{marker::PhantomData, pin::pin, task::Poll};

use http::Request;
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::{BodyProbe, Conformance, body::poll_now};

/// The type of the response body `L` makes around [`BodyProbe`]; used by
/// [`check_conformance!`](crate::check_conformance).
type BodyOf<L> = <<<L as Layer<BodyProbe>>::Service as Service<Request<String>>>::Response as __private::HasBody>::Body;

impl<L> Conformance<L> {
    /// Checks the layered body type's `Default`: `default` is `None` when it has none.
    ///
    /// Not public API: called by [`check_conformance!`](crate::check_conformance).
    #[doc(hidden)]
    pub fn __check_default_body<B: Body>(&self, default: Option<B>) {
        let Some(body) = default else {
            panic!(
                "`Default` is not passed through: the probe's body is `Default` but the layered \
                 response body type `{}` is not (implement `Default` for the body wrapper)",
                std::any::type_name::<B>()
            );
        };
        let mut body = pin!(body);
        match poll_now(body.as_mut()) {
            Poll::Ready(None) => {}
            Poll::Ready(Some(_)) => {
                panic!("`Default` is not passed through: the default body is not empty")
            }
            Poll::Pending => panic!("`Default` is not passed through: the default body never ends"),
        }
    }

    /// A marker of the layered body type for [`check_conformance!`](crate::check_conformance).
    ///
    /// Not public API.
    #[doc(hidden)]
    pub fn __body_tag(&self) -> __private::Tag<BodyOf<L>>
    where
        L: Layer<BodyProbe>,
        <L as Layer<BodyProbe>>::Service: Service<Request<String>>,
        <<L as Layer<BodyProbe>>::Service as Service<Request<String>>>::Response:
            __private::HasBody,
    {
        __private::Tag(PhantomData)
    }
}

/// Runs every check of the kit on a [`Conformance`]: the service checks
/// ([`Conformance::run`]), the body checks ([`Conformance::run_bodies`]), and whether the
/// layered response body is `Default` (the probe's is). Evaluates to a future.
///
/// Call it with a concrete layer type: the `Default` check is resolved where the macro is
/// written, so inside a function generic over the layer it always reports a missing `Default`.
///
/// # Panics
///
/// The future panics when the layer breaks a rule, naming the rule.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use middleware_core::{HookLayer, check_conformance, testing::Conformance};
///
/// check_conformance!(Conformance::new(HookLayer::new(()))).await;
/// # }
/// ```
#[macro_export]
macro_rules! check_conformance {
    ($conformance:expr $(,)?) => {{
        #[allow(unused_imports)]
        use $crate::testing::__private::{ViaDefault as _, ViaNothing as _};
        let conformance = $conformance;
        let default_body = (&&conformance.__body_tag()).__default_body();
        conformance.__run_everything(default_body)
    }};
}

/// Not public API: the `Default` detection behind [`check_conformance!`](crate::check_conformance)
/// (method resolution prefers the `Default` impl when the concrete type has one).
#[doc(hidden)]
pub mod __private {
    use std::marker::PhantomData;

    /// Not public API.
    #[derive(Debug)]
    pub struct Tag<B>(pub(super) PhantomData<fn() -> B>);

    /// Not public API.
    pub trait HasBody {
        /// Not public API.
        type Body;
    }

    impl<B> HasBody for http::Response<B> {
        type Body = B;
    }

    /// Not public API.
    pub trait ViaDefault<B> {
        /// Not public API.
        fn __default_body(&self) -> Option<B>;
    }

    impl<B: Default> ViaDefault<B> for &Tag<B> {
        fn __default_body(&self) -> Option<B> {
            Some(B::default())
        }
    }

    /// Not public API.
    pub trait ViaNothing<B> {
        /// Not public API.
        fn __default_body(&self) -> Option<B>;
    }

    impl<B> ViaNothing<B> for Tag<B> {
        fn __default_body(&self) -> Option<B> {
            None
        }
    }
}
