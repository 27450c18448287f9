//! [`CatchPanicLayer`].

use tower_layer::Layer;

use super::{
    panic::{DefaultResponseForPanic, ResponseForPanic},
    service::CatchPanic,
};

/// Turns panics in the inner service into `500` responses (or, once the head is sent, into a
/// body error). See the [module docs](super) for an example.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct CatchPanicLayer<R = DefaultResponseForPanic> {
    responder: R,
}

impl CatchPanicLayer {
    /// Answers a panic with [`DefaultResponseForPanic`]: a `500` with problem details carrying
    /// the request id, never the payload.
    pub const fn new() -> Self {
        Self {
            responder: DefaultResponseForPanic,
        }
    }
}

impl<R: ResponseForPanic> CatchPanicLayer<R> {
    /// Answers a panic with `responder` (a [`ResponseForPanic`] or a closure
    /// `Fn(&Panic, &Context) -> Response<Bytes>`).
    pub const fn custom(responder: R) -> Self {
        Self { responder }
    }
}

impl<S, R: Clone> Layer<S> for CatchPanicLayer<R> {
    type Service = CatchPanic<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic::from_parts(inner, self.responder.clone())
    }
}

// ----- stack introspection -----

impl<R> middleware_core::Describe for CatchPanicLayer<R> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("CatchPanicLayer")
            .setting("responder", crate::compose::short_name::<R>());
    }
}
