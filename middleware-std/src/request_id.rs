//! Request ids: accept a safe incoming `x-request-id` or generate a time-sortable one, put it
//! into the request's [`Context`](crate::Context), the request header and the response header.
//!
//! [`SetRequestIdLayer`] (service [`SetRequestId`]; the id *value* is core's
//! [`RequestId`], hence the `Set` prefix) does, for every request:
//!
//! 1. If the request's context already has an id (an outer layer set one), that id is kept.
//! 2. Otherwise it looks at the request header (`x-request-id`, configurable with
//!    [`SetRequestIdLayer::with_header`]), unless told never to trust the client's id
//!    ([`SetRequestIdLayer::trust_incoming`]`(false)`: every such request gets a fresh id, and
//!    the client's header is replaced). Exactly one value of 1 to 128 characters from
//!    `A-Z a-z 0-9 - _ . : / + = @` is accepted as it is ([`is_valid_request_id`]). Anything
//!    else — empty, too long, spaces, CR/LF, quotes, `;`, `,`, `%`, control characters,
//!    non-ASCII, or the header repeated — is replaced by a fresh id. The rejected raw value is
//!    never logged, stored or echoed: this layer logs nothing at all, and the header the
//!    inner service sees is overwritten.
//! 3. A fresh id is a UUID v7 ([`DefaultMakeRequestId`]): 48 bits of Unix milliseconds, then
//!    randomness, lowercase hyphenated, so ids sort by creation time as plain strings, to the
//!    millisecond (within a millisecond, `uuid`'s counter orders most but not all ids: the
//!    reliability suite saw 13 of 10 million out of order across 16 threads; ids are always
//!    unique). A custom generator is any
//!    [`MakeRequestId`] or closure `Fn() -> RequestId + Clone`.
//! 4. The id is set on the context ([`Context::set_request_id`](crate::Context::set_request_id);
//!    the context is created if the request has none) and on the request header. The response
//!    gets it as a typed extension ([`RequestId`], as tower-http's layer sets its own; turn it
//!    off with [`SetRequestIdLayer::response_extension`]`(false)` to save its allocations: the
//!    boxed id, and the response's extension map when it had none), and in the response header unless the inner service set that
//!    header itself: its id is kept, as tower-http keeps it (a proxied upstream's id), unless
//!    [`SetRequestIdLayer::overwrite_response_header`]`(true)`. The extension is always this
//!    request's id.
//!
//! With per-layer times asked for (the timing layer's `per_layer_times`), the layer reports
//! the time of its own work (the id, the headers) as the context mark `mw.request_id`.
//!
//! Put it **outermost**: then every response carries the id, including those made by layers
//! inside it (a timeout's `503`, a caught panic's `500`, an auth `401`), and those layers find
//! the id in the context for their problem-details bodies and logs.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use middleware_std::{RequestExt, request_id::SetRequestIdLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(SetRequestIdLayer::new())
//!     .service(service_fn(|req: Request<String>| async move {
//!         let id = req.try_context().and_then(|cx| cx.request_id()).unwrap();
//!         Ok::<_, Infallible>(Response::new(format!("handled {id}")))
//!     }));
//!
//! // A safe incoming id is kept...
//! let req = Request::builder().header("x-request-id", "trace-42").body(String::new()).unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-request-id"], "trace-42");
//! assert_eq!(res.body(), "handled trace-42");
//!
//! // ...a hostile one is replaced by a fresh UUID v7.
//! let req = Request::builder().header("x-request-id", "a b\"c").body(String::new()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! let id = res.headers()["x-request-id"].to_str().unwrap();
//! assert_eq!(id.len(), 36);
//! assert_eq!(&id[14..15], "7"); // the UUID version
//! # }
//! ```
//!
//! # Order
//!
//! Put this layer outside the log and panic-recovery layers. Inside them (the order of
//! `Router::layer` calls is the reverse of `ServiceBuilder`'s), when they started without a
//! context, it warns once per process with the fix: a panic answered there carries no id, and
//! the log span has none until the response.
//!
//! # Differences from tower-http
//!
//! - tower-http's `SetRequestIdLayer` keeps *any* incoming header value (spaces, quotes,
//!   kilobytes of it) and hands it to logs and responses; here only a short, safe charset is
//!   accepted.
//! - tower-http generates nothing by default (`MakeRequestUuid` is a random v4, not sortable);
//!   here the default is a time-sortable UUID v7.
//! - tower-http splits setting and propagating into two layers and stores the id in the
//!   request extensions; here one layer sets the id on the shared [`Context`](crate::Context),
//!   where every layer and the error renderer find it, on both headers, and in the response
//!   extensions.
//! - tower-http always trusts the client's id; here [`SetRequestIdLayer::trust_incoming`]
//!   turns that off.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::atomic::AtomicBool,
    task::{Context as TaskContext, Poll, ready},
    time::Instant,
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use middleware_core::{RequestExt, RequestId};
use tower_layer::Layer;
use tower_service::Service;

use crate::{compose, layer_time};

/// The default header: `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id accepted.
pub const MAX_LEN: usize = 128;

/// Whether `value` is an acceptable incoming request id: 1 to [`MAX_LEN`] bytes, each one of
/// `A-Z a-z 0-9 - _ . : / + = @`.
#[must_use]
pub fn is_valid_request_id(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len())
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

/// Makes a fresh request id.
///
/// Implemented for [`DefaultMakeRequestId`] (UUID v7) and closures `Fn() -> RequestId + Clone`.
pub trait MakeRequestId: Clone {
    /// A fresh id.
    fn make_request_id(&self) -> RequestId;
}

impl<F> MakeRequestId for F
where
    F: Fn() -> RequestId + Clone,
{
    fn make_request_id(&self) -> RequestId {
        self()
    }
}

/// The default generator: a UUID v7, lowercase and hyphenated (36 characters), sortable by
/// creation time.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultMakeRequestId;

impl MakeRequestId for DefaultMakeRequestId {
    fn make_request_id(&self) -> RequestId {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        // One allocation that holds the text and its reference count: the id is cloned into
        // the request and response headers, and those clones then allocate nothing.
        let value = HeaderValue::from_maybe_shared(Bytes::from_owner(buf))
            .expect("a uuid is a valid header value");
        RequestId::new(value).expect("a uuid is visible ascii")
    }
}

/// Sets a request id on the context and both headers. See the [module docs](self) for the
/// rules and an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct SetRequestIdLayer<M = DefaultMakeRequestId> {
    header: HeaderName,
    make: M,
    options: Options,
}

/// The switches of [`SetRequestIdLayer`], copied into every service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Options {
    trust_incoming: bool,
    overwrite_response_header: bool,
    response_extension: bool,
}

impl Options {
    const DEFAULT: Self = Self {
        trust_incoming: true,
        overwrite_response_header: false,
        response_extension: true,
    };
}

impl SetRequestIdLayer {
    /// Uses `x-request-id` and UUID v7 ids.
    pub const fn new() -> Self {
        Self {
            header: X_REQUEST_ID,
            make: DefaultMakeRequestId,
            options: Options::DEFAULT,
        }
    }
}

impl Default for SetRequestIdLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: MakeRequestId> SetRequestIdLayer<M> {
    /// Uses `x-request-id` and ids from `make`.
    pub const fn custom(make: M) -> Self {
        Self {
            header: X_REQUEST_ID,
            make,
            options: Options::DEFAULT,
        }
    }
}

impl<M> SetRequestIdLayer<M> {
    /// Reads and writes the header `name` instead of `x-request-id`.
    pub fn with_header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Replaces the id generator.
    pub fn with_generator<M2: MakeRequestId>(self, make: M2) -> SetRequestIdLayer<M2> {
        SetRequestIdLayer {
            header: self.header,
            make,
            options: self.options,
        }
    }

    /// Whether a safe incoming id in the request header is used (`true`, the default). With
    /// `false` the client's id is never trusted: a request gets a fresh id unless its context
    /// already has one (set by an outer layer), and the client's header is replaced.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use middleware_std::request_id::SetRequestIdLayer;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let svc = SetRequestIdLayer::new()
    ///     .trust_incoming(false)
    ///     .layer(service_fn(|_: Request<String>| async {
    ///         Ok::<_, Infallible>(Response::new(String::new()))
    ///     }));
    /// let req = Request::builder().header("x-request-id", "trace-42").body(String::new()).unwrap();
    /// let res = svc.oneshot(req).await.unwrap();
    /// assert_ne!(res.headers()["x-request-id"], "trace-42");
    /// # }
    /// ```
    pub const fn trust_incoming(mut self, trust: bool) -> Self {
        self.options.trust_incoming = trust;
        self
    }

    /// Whether the id replaces one the inner service set in the response header (`false`, the
    /// default: the inner service's id is kept, as tower-http keeps it).
    pub const fn overwrite_response_header(mut self, overwrite: bool) -> Self {
        self.options.overwrite_response_header = overwrite;
        self
    }

    /// Whether the response carries the id as a typed [`RequestId`] extension (`true`, the
    /// default). It costs the boxed id, and, on a response whose extension map is still empty,
    /// the map (two more allocations).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use middleware_std::{RequestId, request_id::SetRequestIdLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ok = service_fn(|_: Request<String>| async {
    ///     Ok::<_, Infallible>(Response::new(String::new()))
    /// });
    /// let req = || Request::builder().header("x-request-id", "trace-42").body(String::new()).unwrap();
    ///
    /// let res = SetRequestIdLayer::new().layer(ok).oneshot(req()).await.unwrap();
    /// assert_eq!(res.extensions().get::<RequestId>().unwrap().as_str(), "trace-42");
    ///
    /// let quiet = SetRequestIdLayer::new().response_extension(false).layer(ok);
    /// let res = quiet.oneshot(req()).await.unwrap();
    /// assert!(res.extensions().get::<RequestId>().is_none());
    /// # }
    /// ```
    pub const fn response_extension(mut self, enabled: bool) -> Self {
        self.options.response_extension = enabled;
        self
    }
}

impl<S, M: Clone> Layer<S> for SetRequestIdLayer<M> {
    type Service = SetRequestId<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId {
            inner,
            header: self.header.clone(),
            make: self.make.clone(),
            options: self.options,
        }
    }
}

/// The service of [`SetRequestIdLayer`]. See the [module docs](self) for an example.
#[derive(Clone)]
pub struct SetRequestId<S, M = DefaultMakeRequestId> {
    inner: S,
    header: HeaderName,
    make: M,
    options: Options,
}

impl<S> SetRequestId<S> {
    /// Wraps `inner` with `x-request-id` and UUID v7 ids.
    pub const fn new(inner: S) -> Self {
        Self {
            inner,
            header: X_REQUEST_ID,
            make: DefaultMakeRequestId,
            options: Options::DEFAULT,
        }
    }

    /// The layer form, same as [`SetRequestIdLayer::new`].
    pub const fn layer() -> SetRequestIdLayer {
        SetRequestIdLayer::new()
    }
}

impl<S, M> SetRequestId<S, M> {
    define_inner_service_accessors!();

    /// The id for `req`: the context's, a safe incoming one, or a fresh one.
    fn request_id<B>(&self, req: &mut Request<B>) -> RequestId
    where
        M: MakeRequestId,
    {
        if let Some(id) = req.try_context().and_then(|cx| cx.request_id()) {
            return id.clone();
        }
        let incoming = if self.options.trust_incoming {
            let mut values = req.headers().get_all(&self.header).iter();
            match (values.next(), values.next()) {
                (Some(value), None) if is_valid_request_id(value.as_bytes()) => {
                    RequestId::new(value.clone()).ok()
                }
                _ => None,
            }
        } else {
            None
        };
        let id = incoming.unwrap_or_else(|| self.make.make_request_id());
        match req.context().set_request_id(id.clone()) {
            Ok(()) => id,
            // Set meanwhile through a clone of the context: the first one wins.
            Err(_) => req
                .try_context()
                .and_then(|cx| cx.request_id())
                .cloned()
                .unwrap_or(id),
        }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for SetRequestId<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(SetRequestId))
            .field("inner", &self.inner)
            .field("header", &self.header)
            .field("make", &std::any::type_name::<M>())
            .field("trust_incoming", &self.options.trust_incoming)
            .field(
                "overwrite_response_header",
                &self.options.overwrite_response_header,
            )
            .field("response_extension", &self.options.response_extension)
            .finish()
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for SetRequestId<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    M: MakeRequestId,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // A clock only when a timing layer outside asks for this layer's own time.
        let started = layer_time::wanted(req.try_context()).then(Instant::now);
        if req.try_context().is_none() {
            warn_if_after(compose::seen(req.extensions()));
        }
        let id = self.request_id(&mut req);
        // Replaces a rejected (or repeated) incoming value: the inner service sees the id only.
        req.headers_mut()
            .insert(&self.header, id.header_value().clone());
        if let Some(started) = started {
            layer_time::record(req.try_context(), "mw.request_id", started.elapsed());
        }
        ResponseFuture {
            inner: self.inner.call(req),
            id: Some(id),
            header: self.header.clone(),
            options: self.options,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SetRequestId`]: sets the id on the response header.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: Option<RequestId>,
        header: HeaderName,
        options: Options,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        let id = this.id.take().expect("future polled after completion");
        if this.options.overwrite_response_header || !res.headers().contains_key(&*this.header) {
            res.headers_mut()
                .insert(this.header.clone(), id.header_value().clone());
        }
        if this.options.response_extension {
            res.extensions_mut().insert(id);
        }
        Poll::Ready(Ok(res))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Warns, once per process, when a log or panic-recovery layer outside started without the
/// request's context (`outer`: the marks they left), so without the id this layer is about to
/// set: the order of `Router::layer` calls, the reverse of `ServiceBuilder`'s.
fn warn_if_after(outer: u8) {
    // One flag per case, so that each mistake is named once.
    static AFTER_LOG: AtomicBool = AtomicBool::new(false);
    static AFTER_PANIC: AtomicBool = AtomicBool::new(false);
    static AFTER_BOTH: AtomicBool = AtomicBool::new(false);
    let (outer, flag) = match (
        outer & compose::LOG != 0,
        outer & compose::PANIC_WITHOUT_CONTEXT != 0,
    ) {
        (false, false) => return,
        (true, false) => ("`LogLayer`", &AFTER_LOG),
        (false, true) => ("`CatchPanicLayer`", &AFTER_PANIC),
        (true, true) => ("`LogLayer` and `CatchPanicLayer`", &AFTER_BOTH),
    };
    compose::once(flag, || {
        tracing::warn!(
            outer,
            "`SetRequestIdLayer` runs inside {outer}, which started before the request had an \
             id: a panic answered there carries no id, the log span has none until the response \
             (the access record reads it from the response extension); put `SetRequestIdLayer` outside \
             them (with `Router::layer` the last call is the outermost: call \
             `.layer(SetRequestIdLayer::new())` after `.layer(LogLayer::new())`; with \
             `ServiceBuilder`, first), or use `StackLayer`"
        );
    });
}

// ----- stack introspection -----

/// The entry of a request-id layer or service.
fn describe_entry<M>(
    header: &HeaderName,
    options: Options,
    description: &mut middleware_core::describe::Description,
) {
    description
        .layer("SetRequestIdLayer")
        .setting("header", header)
        .setting("make", compose::short_name::<M>())
        .setting("trust_incoming", options.trust_incoming)
        .setting(
            "overwrite_response_header",
            options.overwrite_response_header,
        )
        .setting("response_extension", options.response_extension);
}

impl<M> middleware_core::Describe for SetRequestIdLayer<M> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        describe_entry::<M>(&self.header, self.options, description);
    }
}

impl<S: middleware_core::Describe, M> middleware_core::Describe for SetRequestId<S, M> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        describe_entry::<M>(&self.header, self.options, description);
        self.inner.describe(description);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashSet,
        convert::Infallible,
        pin::pin,
        sync::{Arc, Mutex},
        task::Waker,
    };

    use middleware_core::{
        Context,
        testing::{Bare, Conformance, allocations_per_request},
    };
    use proptest::prelude::*;
    use tower::{ServiceExt, service_fn};

    use super::*;

    #[tokio::test]
    async fn a_fresh_uuid_v7_is_set_on_context_and_both_headers() {
        let (svc, seen) = recording();
        let res = svc.oneshot(Request::new(String::new())).await.unwrap();
        let id = res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(id, uuid.hyphenated().to_string(), "lowercase, hyphenated");
        let (in_context, in_header) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(in_context.as_deref(), Some(id.as_str()));
        assert_eq!(in_header.as_deref(), Some(id.as_str()));
    }

    #[tokio::test]
    async fn safe_incoming_ids_are_kept() {
        let longest = "a".repeat(MAX_LEN);
        for good in [
            "abc",
            "0",
            "trace-42_x.y:z/w+v=u@t",
            "ABCxyz019",
            "01890a5d-ac96-774b-bcce-b302099a8057",
            longest.as_str(),
        ] {
            let (svc, seen) = recording();
            let req = Request::builder()
                .header(X_REQUEST_ID, good)
                .body(String::new())
                .unwrap();
            let res = svc.oneshot(req).await.unwrap();
            assert_eq!(res.headers()[X_REQUEST_ID], good);
            let (in_context, in_header) = seen.lock().unwrap().pop().unwrap();
            assert_eq!(in_context.as_deref(), Some(good));
            assert_eq!(in_header.as_deref(), Some(good));
        }
    }

    #[tokio::test]
    async fn hostile_incoming_ids_are_replaced_and_never_echoed() {
        let too_long = "a".repeat(MAX_LEN + 1);
        let table: Vec<&[u8]> = vec![
            b"",
            too_long.as_bytes(),
            b" ",
            b"a b",
            b"a\tb",
            b"\"quoted\"",
            b"'single'",
            b"<script>alert(1)</script>",
            b"a;b",
            b"a,b",
            b"a%0d%0ab",
            b"a\\b",
            b"{json}",
            b"\xc3\xa9t\xc3\xa9", // non-ASCII (UTF-8)
            b"\xff\xfe",
            b"\x80",
        ];
        for bad in table {
            let value = HeaderValue::from_bytes(bad).unwrap();
            assert_rejected(&[value]).await;
        }
        // `HeaderValue` itself refuses the other control characters; the validator too.
        for bad in [
            &b"a\r\nb"[..],
            b"a\nb",
            b"a\0b",
            b"a\x7fb",
            b"\x1b[31m",
            b"\x01",
        ] {
            assert!(HeaderValue::from_bytes(bad).is_err());
            assert!(!is_valid_request_id(bad));
        }
        // A repeated header is ambiguous, even with safe values.
        assert_rejected(&[
            HeaderValue::from_static("first"),
            HeaderValue::from_static("second"),
        ])
        .await;
    }

    #[tokio::test]
    async fn an_id_already_in_the_context_wins() {
        let (svc, seen) = recording();
        let mut req = Request::builder()
            .header(X_REQUEST_ID, "from-header")
            .body(String::new())
            .unwrap();
        req.context()
            .set_request_id(RequestId::try_from("from-outer").unwrap())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()[X_REQUEST_ID], "from-outer");
        let (in_context, in_header) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(in_context.as_deref(), Some("from-outer"));
        assert_eq!(in_header.as_deref(), Some("from-outer"));
    }

    #[tokio::test]
    async fn the_header_and_the_generator_are_configurable() {
        let svc = SetRequestIdLayer::custom(|| RequestId::try_from("fixed").unwrap())
            .with_header(HeaderName::from_static("x-correlation-id"))
            .layer(ok());
        let res = svc
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(res.headers()["x-correlation-id"], "fixed");
        assert!(res.headers().get(X_REQUEST_ID).is_none());
        let req = Request::builder()
            .header("x-correlation-id", "mine")
            .body(String::new())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-correlation-id"], "mine");

        let layer = SetRequestIdLayer::new().with_generator(|| RequestId::try_from("gen").unwrap());
        let res = layer
            .layer(ok())
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(res.headers()[X_REQUEST_ID], "gen");
    }

    #[tokio::test]
    async fn the_response_carries_the_id_as_a_typed_extension() {
        let (svc, _seen) = recording();
        let res = svc.oneshot(Request::new(String::new())).await.unwrap();
        let id = res.extensions().get::<RequestId>().expect("a typed id");
        assert_eq!(id.header_value(), &res.headers()[X_REQUEST_ID]);

        let req = Request::builder()
            .header(X_REQUEST_ID, "trace-7")
            .body(String::new())
            .unwrap();
        let res = SetRequestIdLayer::new()
            .layer(ok())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(
            res.extensions().get::<RequestId>().unwrap().as_str(),
            "trace-7"
        );

        let res = SetRequestIdLayer::new()
            .response_extension(false)
            .layer(ok())
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert!(res.extensions().get::<RequestId>().is_none());
        assert!(res.headers().contains_key(X_REQUEST_ID));
    }

    #[tokio::test]
    async fn an_id_the_inner_service_set_on_the_response_is_kept() {
        let req = || {
            Request::builder()
                .header(X_REQUEST_ID, "from-client")
                .body(String::new())
                .unwrap()
        };
        let res = SetRequestIdLayer::new()
            .layer(answers_with_id("from-upstream"))
            .oneshot(req())
            .await
            .unwrap();
        let mut values = res.headers().get_all(X_REQUEST_ID).iter();
        assert_eq!(values.next().unwrap(), "from-upstream");
        assert!(values.next().is_none(), "one value, not two");
        // The typed extension is always this request's id.
        assert_eq!(
            res.extensions().get::<RequestId>().unwrap().as_str(),
            "from-client"
        );

        let res = SetRequestIdLayer::new()
            .overwrite_response_header(true)
            .layer(answers_with_id("from-upstream"))
            .oneshot(req())
            .await
            .unwrap();
        let mut values = res.headers().get_all(X_REQUEST_ID).iter();
        assert_eq!(values.next().unwrap(), "from-client");
        assert!(values.next().is_none(), "one value, not two");
    }

    #[tokio::test]
    async fn untrusted_incoming_ids_are_replaced_even_when_safe() {
        let longest = "a".repeat(MAX_LEN);
        for incoming in [
            &["trace-42"][..],
            &["01890a5d-ac96-774b-bcce-b302099a8057"],
            &[longest.as_str()],
            &["a b\"c"],
            &["first", "second"],
            &[""],
        ] {
            let seen = Seen::default();
            let svc = SetRequestIdLayer::new()
                .trust_incoming(false)
                .layer(Recorder(Arc::clone(&seen)));
            let mut req = Request::new(String::new());
            for value in incoming {
                req.headers_mut()
                    .append(X_REQUEST_ID, HeaderValue::from_str(value).unwrap());
            }
            let res = svc.oneshot(req).await.unwrap();
            let id = res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
            assert_eq!(
                uuid::Uuid::parse_str(&id).unwrap().get_version_num(),
                7,
                "{incoming:?}"
            );
            assert!(!incoming.contains(&id.as_str()), "{incoming:?}");
            let (in_context, in_header) = seen.lock().unwrap().pop().unwrap();
            assert_eq!(in_context.as_deref(), Some(id.as_str()));
            // The client's value is replaced for the inner service too (Recorder checks there
            // is one value only).
            assert_eq!(in_header.as_deref(), Some(id.as_str()));
        }
    }

    #[tokio::test]
    async fn an_outer_layers_id_wins_even_when_incoming_ids_are_not_trusted() {
        let svc = SetRequestIdLayer::new().trust_incoming(false).layer(ok());
        let mut req = Request::builder()
            .header(X_REQUEST_ID, "from-client")
            .body(String::new())
            .unwrap();
        req.context()
            .set_request_id(RequestId::try_from("from-outer").unwrap())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()[X_REQUEST_ID], "from-outer");
    }

    #[tokio::test]
    async fn the_layer_reports_its_own_time_when_asked() {
        let names = |cx: &Context| -> Vec<String> {
            cx.marks().iter().map(|m| m.name().to_owned()).collect()
        };
        let mut req = Request::new(String::new());
        req.context().request_layer_times();
        let cx = req.context().clone();
        SetRequestIdLayer::new()
            .layer(ok())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(names(&cx), ["mw.request_id"]);

        // Not asked: no mark, no clock.
        let mut req = Request::new(String::new());
        let cx = req.context().clone();
        SetRequestIdLayer::new()
            .layer(ok())
            .oneshot(req)
            .await
            .unwrap();
        assert!(names(&cx).is_empty());
    }

    #[cfg(all(feature = "timeout", feature = "catch-panic"))]
    #[tokio::test(start_paused = true)]
    async fn responses_made_by_inner_layers_carry_the_id() {
        use std::time::Duration;

        use http::StatusCode;
        use http_body_util::BodyExt;
        use tower::ServiceBuilder;

        use crate::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};

        let svc = ServiceBuilder::new()
            .layer(SetRequestIdLayer::new())
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::new(Duration::from_secs(1)))
            .service(service_fn(|req: Request<String>| async move {
                match req.body().as_str() {
                    "panic" => panic!("boom"),
                    _ => tokio::time::sleep(Duration::from_secs(60)).await,
                }
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
        for (body, status) in [
            ("panic", StatusCode::INTERNAL_SERVER_ERROR),
            ("slow", StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let req = Request::builder()
                .header(X_REQUEST_ID, "req-9")
                .body(String::from(body))
                .unwrap();
            let res = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), status);
            assert_eq!(res.headers()[X_REQUEST_ID], "req-9");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.contains(r#""request_id":"req-9""#), "{body}");
        }
    }

    #[test]
    fn a_hundred_thousand_ids_are_unique_and_sorted_by_time() {
        let ids: Vec<String> = (0..100_000)
            .map(|_| DefaultMakeRequestId.make_request_id().as_str().to_owned())
            .collect();
        // Strictly increasing as plain strings: sorted by creation, and so all distinct.
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        // The leading 48 bits are the Unix time in milliseconds.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let first = uuid::Uuid::parse_str(&ids[0]).unwrap();
        let (secs, nanos) = first.get_timestamp().unwrap().to_unix();
        let first_ms = u128::from(secs) * 1000 + u128::from(nanos / 1_000_000);
        assert!(first_ms <= now_ms && now_ms - first_ms < 60_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn multi_thread_concurrent_requests_get_distinct_ids() {
        let svc = SetRequestIdLayer::new().layer(ok());
        let mut tasks = Vec::new();
        for _ in 0..256 {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                let res = svc.oneshot(Request::new(String::new())).await.unwrap();
                res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned()
            }));
        }
        let mut ids = HashSet::new();
        for task in tasks {
            assert!(ids.insert(task.await.unwrap()));
        }
        Conformance::new(SetRequestIdLayer::new()).run().await;
    }

    #[tokio::test]
    async fn the_layer_passes_the_conformance_kit() {
        Conformance::new(SetRequestIdLayer::new()).run().await;
        Conformance::new(SetRequestIdLayer::new())
            .with_request(|| {
                Request::builder()
                    .header(X_REQUEST_ID, "bad value")
                    .body(String::new())
                    .unwrap()
            })
            .run()
            .await;
    }

    #[test]
    fn allocations_per_request_are_counted_exactly() {
        // A request whose extension map exists (as after a router) and that has headers.
        let make = || {
            let mut req = Request::new(String::new());
            req.extensions_mut().insert(crate::test_helpers::ConnInfo);
            req.headers_mut()
                .insert("accept", HeaderValue::from_static("*/*"));
            req
        };
        let base = allocations_per_request(Bare::new().with_header(), make);
        let svc = SetRequestIdLayer::new()
            .response_extension(false)
            .layer(Bare::new().with_header());
        // The context (2) and the generated id's bytes with their reference count (1): the
        // clones into both headers allocate nothing.
        assert_eq!(allocations_per_request(svc, make) - base, 3);
        // The typed response extension: the response's extension map (its box and its table)
        // and the boxed id.
        let svc = SetRequestIdLayer::new().layer(Bare::new().with_header());
        assert_eq!(allocations_per_request(svc, make) - base, 6);

        let incoming = move || {
            let mut req = make();
            req.headers_mut()
                .insert(X_REQUEST_ID, HeaderValue::from_static("trace-1"));
            req
        };
        let base = allocations_per_request(Bare::new().with_header(), incoming);
        let svc = SetRequestIdLayer::new()
            .response_extension(false)
            .layer(Bare::new().with_header());
        // An accepted id is shared, not copied: only the context.
        assert_eq!(allocations_per_request(svc, incoming) - base, 2);
    }

    #[test]
    fn debug_output_names_the_parts() {
        let debug = format!("{:?}", SetRequestIdLayer::new().layer(()));
        assert!(debug.starts_with("SetRequestId {"), "{debug}");
        assert!(debug.contains("x-request-id"), "{debug}");
        assert!(debug.contains("DefaultMakeRequestId"), "{debug}");
    }

    proptest! {
        #[test]
        fn an_untrusted_incoming_value_is_never_echoed(text in "[ -~\t]{0,140}") {
            let Ok(value) = HeaderValue::from_str(&text) else { return Ok(()) };
            let mut svc = SetRequestIdLayer::new().trust_incoming(false).layer(ok());
            let mut req = Request::new(String::new());
            req.headers_mut().insert(X_REQUEST_ID, value);
            let mut cx = TaskContext::from_waker(Waker::noop());
            prop_assert!(svc.poll_ready(&mut cx).is_ready());
            let Poll::Ready(Ok(res)) = pin!(svc.call(req)).poll(&mut cx) else {
                return Err(TestCaseError::fail("not ready"));
            };
            let echoed = res.headers()[X_REQUEST_ID].to_str().unwrap();
            prop_assert_ne!(echoed, text.as_str());
            prop_assert_eq!(uuid::Uuid::parse_str(echoed).unwrap().get_version_num(), 7);
            prop_assert_eq!(res.extensions().get::<RequestId>().unwrap().as_str(), echoed);
        }

        #[test]
        fn validation_matches_the_documented_charset(bytes in proptest::collection::vec(any::<u8>(), 0..140)) {
            let expected = !bytes.is_empty()
                && bytes.len() <= MAX_LEN
                && bytes.iter().all(|b| matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=' | b'@'));
            prop_assert_eq!(is_valid_request_id(&bytes), expected);
        }

        #[test]
        fn an_incoming_value_is_echoed_only_when_valid(text in "[ -~\t]{0,140}") {
            let Ok(value) = HeaderValue::from_str(&text) else { return Ok(()) };
            let mut svc = SetRequestIdLayer::new().layer(ok());
            let mut req = Request::new(String::new());
            req.headers_mut().insert(X_REQUEST_ID, value);
            let mut cx = TaskContext::from_waker(Waker::noop());
            prop_assert!(svc.poll_ready(&mut cx).is_ready());
            let Poll::Ready(Ok(res)) = pin!(svc.call(req)).poll(&mut cx) else {
                return Err(TestCaseError::fail("not ready"));
            };
            let echoed = res.headers()[X_REQUEST_ID].to_str().unwrap();
            if is_valid_request_id(text.as_bytes()) {
                prop_assert_eq!(echoed, text.as_str());
            } else {
                prop_assert_ne!(echoed, text.as_str());
                prop_assert_eq!(uuid::Uuid::parse_str(echoed).unwrap().get_version_num(), 7);
            }
        }
    }

    // ----- fixtures ---------------------------------------------------------------------------

    type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

    /// A layered service that records the id in the context and in the request header.
    fn recording() -> (SetRequestId<Recorder>, Seen) {
        let seen = Seen::default();
        let svc = SetRequestIdLayer::new().layer(Recorder(Arc::clone(&seen)));
        (svc, seen)
    }

    #[derive(Clone, Debug)]
    struct Recorder(Seen);

    impl Service<Request<String>> for Recorder {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<String>) -> Self::Future {
            let in_context = req
                .try_context()
                .and_then(Context::request_id)
                .map(|id| id.as_str().to_owned());
            let mut values = req.headers().get_all(X_REQUEST_ID).iter();
            let in_header = values.next().map(|v| v.to_str().unwrap().to_owned());
            assert!(values.next().is_none(), "the header was not replaced");
            self.0.lock().unwrap().push((in_context, in_header));
            std::future::ready(Ok(Response::new(String::new())))
        }
    }

    async fn assert_rejected(values: &[HeaderValue]) {
        let (svc, seen) = recording();
        let mut req = Request::new(String::new());
        for value in values {
            req.headers_mut().append(X_REQUEST_ID, value.clone());
        }
        let res = svc.oneshot(req).await.unwrap();
        let id = res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
        assert_eq!(
            uuid::Uuid::parse_str(&id).unwrap().get_version_num(),
            7,
            "{values:?}"
        );
        for value in values {
            assert_ne!(id.as_bytes(), value.as_bytes());
        }
        let (in_context, in_header) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(in_context.as_deref(), Some(id.as_str()));
        assert_eq!(in_header.as_deref(), Some(id.as_str()));
    }

    fn ok() -> impl Service<
        Request<String>,
        Response = Response<String>,
        Error = Infallible,
        Future = std::future::Ready<Result<Response<String>, Infallible>>,
    > + Clone {
        service_fn(|_: Request<String>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
        })
    }

    /// Answers with its own request id in the response header, as a proxy passing an
    /// upstream's id on would.
    fn answers_with_id(
        id: &'static str,
    ) -> impl Service<
        Request<String>,
        Response = Response<String>,
        Error = Infallible,
        Future = std::future::Ready<Result<Response<String>, Infallible>>,
    > + Clone {
        service_fn(move |_: Request<String>| {
            let mut res = Response::new(String::new());
            res.headers_mut()
                .insert(X_REQUEST_ID, HeaderValue::from_static(id));
            std::future::ready(Ok::<_, Infallible>(res))
        })
    }
}
