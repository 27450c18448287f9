//! What a `#[handler]` allocates per request, counted by the kit's harness (per thread). The
//! handler's future is boxed once per request; it must hold the request once, not twice.
#![cfg(feature = "macros")]
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame};
use middleware_core::testing::measure_per_request;
use middleware_std::{RequestId, handler};

/// An empty request body that is large inline, so that a copy of the request in the handler's
/// future shows in the bytes it allocates.
struct Large([u8; 4096]);

impl Body for Large {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.0[0] == 0
    }
}

/// Reads from the request's parts (borrowed while the handler runs) and answers without a
/// layer.
#[handler]
async fn reads(id: Option<RequestId>) -> &'static str {
    if id.is_some() {
        "with an id"
    } else {
        "without an id"
    }
}

#[test]
fn a_handler_future_holds_the_request_once() {
    let per_request = measure_per_request(reads.service(), || Request::new(Large([0; 4096])));
    let large = u64::try_from(size_of::<Large>()).unwrap();
    // The boxed future holds the body once (the request's parts and the body, split before the
    // future is made), and nothing else here is large.
    assert!(
        per_request.bytes_total >= large && per_request.bytes_total < 2 * large,
        "{per_request:?}"
    );
}
