//! [`RequestBodyLimit`].

use std::{
    sync::{Arc, atomic::AtomicBool},
    task::{Context as TaskContext, Poll},
};

use http::{HeaderMap, Request, Response, Version, header};
use http_body::Body;
use middleware_core::{BoxError, RequestExt, ResponseBody};
use tower_service::Service;

use super::{
    body::LimitedBody,
    future::{ResponseFuture, too_large},
    layer::RequestBodyLimitLayer,
};

/// Limits the size of the request bodies `S` sees. See [`RequestBodyLimitLayer`] and the
/// [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct RequestBodyLimit<S> {
    inner: S,
    limit: u64,
}

impl<S> RequestBodyLimit<S> {
    /// Wraps `inner`, letting at most `limit` bytes of request body through.
    pub const fn new(inner: S, limit: u64) -> Self {
        Self { inner, limit }
    }

    /// The layer form, same as [`RequestBodyLimitLayer::new`].
    pub const fn layer(limit: u64) -> RequestBodyLimitLayer {
        RequestBodyLimitLayer::new(limit)
    }

    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestBodyLimit<S>
where
    S: Service<Request<LimitedBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let close = closes_connection(req.version());
        if declared_length_exceeds(req.headers(), self.limit) {
            // Answered before the body is read: with `Expect: 100-continue`, hyper never sends
            // the `100`, and the unread body is not drained (the connection closes).
            return ResponseFuture::rejected(too_large(req.context(), close));
        }
        // A body that brings more bytes than it declared is cut at what it declared.
        let limit = declared_length(req.headers()).map_or(self.limit, |len| len.min(self.limit));
        // An empty body (a `GET`) cannot pass any limit: no flag, no allocation.
        let signal = (!req.body().is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let cx = req.try_context().cloned();
        let req = req.map(|body| LimitedBody::with_signal(body, limit, signal.clone()));
        // Called right here: the service that reported ready is the one called.
        ResponseFuture::new(self.inner.call(req), signal, cx, close)
    }
}

/// `Connection: close` is an HTTP/1 header (HTTP/2 forbids it and resets the stream instead).
fn closes_connection(version: Version) -> bool {
    version <= Version::HTTP_11
}

/// The declared length, when there is exactly one well-formed `Content-Length`.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let digits = value.to_str().ok()?.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether any `Content-Length` value declares more than `limit` bytes. A value of digits too
/// long for a `u64` declares more than any limit; any other malformed value is left to the
/// streaming limit (the server's HTTP parser rejects it first on a real connection).
pub(crate) fn declared_length_exceeds(headers: &HeaderMap, limit: u64) -> bool {
    headers.get_all(header::CONTENT_LENGTH).iter().any(|value| {
        let bytes = value.as_bytes();
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() || !trimmed.iter().all(u8::is_ascii_digit) {
            return false;
        }
        // Digits only: parsing fails only on overflow.
        std::str::from_utf8(trimmed)
            .ok()
            .and_then(|digits| digits.parse::<u64>().ok())
            .is_none_or(|declared| declared > limit)
    })
}

// ----- stack introspection -----

impl<S: middleware_core::Describe> middleware_core::Describe for RequestBodyLimit<S> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        RequestBodyLimitLayer::new(self.limit).describe(description);
        self.inner.describe(description);
    }
}
