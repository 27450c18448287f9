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
