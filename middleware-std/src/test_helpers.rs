//! Shared test fixtures: the requests the allocation tests of several modules send through
//! `middleware_core::testing::allocations_per_request`. A module's own fixtures stay at the
//! bottom of its `mod tests`.

use http::Request;
use middleware_core::RequestExt;

/// An extension, so that a request's extension map is already allocated (as after a router or
/// a connection-info layer) and only what the layers add is counted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnInfo;

/// A request with an empty body, no extension and no context.
pub(crate) fn plain() -> Request<String> {
    Request::new(String::new())
}

/// A request whose extension map is already allocated ([`ConnInfo`]).
pub(crate) fn with_extensions() -> Request<String> {
    let mut req = plain();
    req.extensions_mut().insert(ConnInfo);
    req
}

/// A request whose context an outer layer already created.
pub(crate) fn with_context() -> Request<String> {
    let mut req = plain();
    let _ = req.context();
    req
}

/// A body that yields one frame, then an error, then a clean end: an inner body that cannot
/// repeat its error, which a wrapper must not pass on as a clean end.
#[cfg(any(feature = "body-limit", feature = "limit"))]
pub(crate) struct ErrorsOnce(
    std::collections::VecDeque<Option<Result<bytes::Bytes, &'static str>>>,
);

#[cfg(any(feature = "body-limit", feature = "limit"))]
impl ErrorsOnce {
    pub(crate) fn new() -> Self {
        Self(std::collections::VecDeque::from([
            Some(Ok(bytes::Bytes::from_static(b"ab"))),
            Some(Err("reset")),
            None,
        ]))
    }
}

#[cfg(any(feature = "body-limit", feature = "limit"))]
impl http_body::Body for ErrorsOnce {
    type Data = bytes::Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, &'static str>>> {
        std::task::Poll::Ready(
            self.0
                .pop_front()
                .flatten()
                .map(|r| r.map(http_body::Frame::data)),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}
