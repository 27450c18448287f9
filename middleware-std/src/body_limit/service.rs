//! [`RequestBodyLimit`].

use std::{
    sync::{Arc, atomic::AtomicBool},
    task::{Context as TaskContext, Poll},
    time::Instant,
};

use http::{HeaderMap, Request, Response, Version, header};
use http_body::Body;
use middleware_core::{BoxError, RequestExt, ResponseBody};
use tower_service::Service;

use crate::layer_time;

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
        // The clock is read only when per-layer times were asked for.
        let started = layer_time::wanted(req.try_context()).then(Instant::now);
        let close = closes_connection(req.version());
        let declared = ContentLength::of(req.headers(), self.limit);
        if declared.exceeds {
            // Answered before the body is read: with `Expect: 100-continue`, hyper never sends
            // the `100`, and the unread body is not drained (the connection closes).
            return ResponseFuture::rejected(too_large(req.context(), close));
        }
        // A body that brings more bytes than it declared is cut at what it declared.
        let limit = declared
            .length
            .map_or(self.limit, |len| len.min(self.limit));
        // An empty body (a `GET`) cannot pass any limit: no flag, no allocation, and no
        // context kept for a `413` that cannot come.
        let (signal, cx) = if req.body().is_end_stream() {
            (None, None)
        } else {
            let signal = Arc::new(AtomicBool::new(false));
            (Some(signal), req.try_context().cloned())
        };
        if let Some(started) = started {
            layer_time::record(req.try_context(), "mw.body_limit", started.elapsed());
        }
        let req = req.map(|body| LimitedBody::with_signal(body, limit, signal.clone()));
        // Called right here: the service that reported ready is the one called.
        ResponseFuture::new(self.inner.call(req), signal, cx, close)
    }
}

/// `Connection: close` is an HTTP/1 header (HTTP/2 forbids it and resets the stream instead).
fn closes_connection(version: Version) -> bool {
    version <= Version::HTTP_11
}

/// What a request's `Content-Length` fields declare, read in one pass over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContentLength {
    /// Whether any value declares more than the limit. A value of digits too long for a `u64`
    /// declares more than any limit; any other malformed value is left to the streaming limit
    /// (the server's HTTP parser rejects it first on a real connection).
    pub(crate) exceeds: bool,
    /// The declared length, when there is exactly one well-formed value.
    pub(crate) length: Option<u64>,
}

impl ContentLength {
    pub(crate) fn of(headers: &HeaderMap, limit: u64) -> Self {
        let mut values = 0_usize;
        let mut exceeds = false;
        let mut length = None;
        for value in headers.get_all(header::CONTENT_LENGTH) {
            values += 1;
            let digits = value.as_bytes().trim_ascii();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                continue;
            }
            // Digits only: parsing fails only on overflow.
            let declared = std::str::from_utf8(digits)
                .ok()
                .and_then(|digits| digits.parse::<u64>().ok());
            exceeds |= declared.is_none_or(|declared| declared > limit);
            if values == 1 {
                length = declared;
            }
        }
        Self {
            exceeds,
            length: if values == 1 { length } else { None },
        }
    }
}

// ----- stack introspection -----

impl<S: middleware_core::Describe> middleware_core::Describe for RequestBodyLimit<S> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        RequestBodyLimitLayer::new(self.limit).describe(description);
        self.inner.describe(description);
    }
}
