//! [`RequestBodyLimitLayer`].

use tower_layer::Layer;

use super::service::RequestBodyLimit;

/// Limits the size of request bodies: `413 Payload Too Large` for a declared length over the
/// limit, a [`LimitedBody`](super::LimitedBody) that is cut at the limit for the rest. See the
/// [module docs](super) for an example.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct RequestBodyLimitLayer {
    pub(crate) limit: u64,
}

impl RequestBodyLimitLayer {
    /// At most `limit` bytes of request body.
    pub const fn new(limit: u64) -> Self {
        Self { limit }
    }

    /// The limit, in bytes.
    #[must_use]
    pub const fn limit(&self) -> u64 {
        self.limit
    }
}

impl<S> Layer<S> for RequestBodyLimitLayer {
    type Service = RequestBodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestBodyLimit::new(inner, self.limit)
    }
}

// ----- stack introspection -----

impl middleware_core::Describe for RequestBodyLimitLayer {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("RequestBodyLimitLayer")
            .setting("limit", self.limit);
    }
}
