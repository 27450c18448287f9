//! The error model: one [`Error`] type, one [`RenderError`] trait that turns it into a response,
//! and an RFC 9457 problem-details renderer, [`ProblemDetails`], as the default.
//!
//! Layers and handlers return [`Error`]; the application decides the status line and body shape
//! of every error response in one place, by installing a [`Renderer`] (a [`Hook`]) at the edge
//! of the stack. Whoever answers with an error calls [`Context::render_error`], which uses that
//! renderer, or [`ProblemDetails`] when none is installed.
//!
//! Rendering never panics: the application's renderer runs inside `catch_unwind`, and if it
//! panics, [`Context::render_error`] cancels the request with
//! [`CancelCause::Panicked`] and answers with
//! [`ProblemDetails::fallback`], a fixed `500` built without any application code. So a bug in
//! the renderer cannot turn an error response (a `401`, a timeout's `503`, panic recovery's
//! `500`) into a connection closed without an answer.
//!
//! Any `std::error::Error` converts into an [`Error`] with `?`: it becomes an opaque
//! `500 Internal Server Error`. Its message stays available to logs ([`Error::source`],
//! `Display`) and never reaches the client. Error types that do not implement
//! `std::error::Error` themselves ([`BoxError`], `anyhow::Error`) go through
//! [`Error::internal`].
//!
//! # Example
//!
//! ```
//! use http::StatusCode;
//! use middleware_core::{Context, Error};
//!
//! let cx = Context::new();
//!
//! let res = cx.render_error(&Error::new(StatusCode::NOT_FOUND).with_detail("no such order"));
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! assert_eq!(res.headers()["content-type"], "application/problem+json");
//! assert_eq!(
//!     res.body(),
//!     r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no such order"}"#,
//! );
//!
//! // Unknown errors: a generic 500, the detail kept for logs only.
//! let io = std::io::Error::other("db password is hunter2");
//! let err = Error::from(io);
//! let res = cx.render_error(&err);
//! assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! assert!(!String::from_utf8_lossy(res.body()).contains("hunter2"));
//! assert!(err.to_string().contains("hunter2"));
//! ```

use std::{
    borrow::Cow,
    fmt,
    ops::ControlFlow,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::{
    body::ResponseBody,
    context::{CancelCause, Context, RequestExt},
    middleware::Hook,
};

/// A type-erased error, as in tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error that becomes an HTTP response: a status, an optional public detail, extra headers
/// (e.g. a `WWW-Authenticate` challenge), and an optional private source for logs.
///
/// It deliberately does not implement `std::error::Error`, so that every error type converts
/// into it with `?`. See the [module docs](self) for an example.
pub struct Error(Box<Inner>);

/// Boxed so that `Result<T, Error>` stays two words wide on the happy path.
struct Inner {
    status: StatusCode,
    detail: Option<Cow<'static, str>>,
    headers: HeaderMap,
    source: Option<BoxError>,
}

impl Error {
    /// An error with the given status and no detail.
    #[must_use]
    pub fn new(status: StatusCode) -> Self {
        Self(Box::new(Inner {
            status,
            detail: None,
            headers: HeaderMap::new(),
            source: None,
        }))
    }

    /// An opaque `500 Internal Server Error` caused by `source`. The source is for logs only.
    #[must_use]
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR).with_source(source)
    }

    /// Sets the public detail: a human-readable explanation that *is sent to the client*.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Sets the private source: logged, never sent to the client.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// Adds a header to the error response (appended, so repeated names are kept).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.append(name, value);
        self
    }

    /// The response status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The public detail, if any.
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// Headers to add to the error response.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The private source, for logs.
    #[must_use]
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.0.source.as_deref()
    }

    /// Renders this error with the renderer installed in the request's context (or
    /// [`ProblemDetails`]) into a response with any body type.
    #[must_use]
    pub fn into_response<B>(self, cx: &Context) -> http::Response<ResponseBody<B>> {
        ResponseBody::response(cx.render_error(&self))
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        Self::internal(error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Error))
            .field("status", &self.0.status)
            .field("detail", &self.0.detail)
            .field("headers", &self.0.headers.keys().collect::<Vec<_>>())
            .field("source", &self.0.source)
            .finish()
    }
}

/// For logs: the status, the public detail and the private source.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.status)?;
        if let Some(detail) = &self.0.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(source) = &self.0.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

/// Turns an [`Error`] into a response. The application implements this once to choose the
/// status line and body shape of every error response.
///
/// Implemented for [`ProblemDetails`] and for closures
/// `Fn(&Error, &Context) -> http::Response<Bytes>`.
///
/// A renderer should not panic; if it does, [`Context::render_error`] catches the panic and
/// answers with the fixed [`ProblemDetails::fallback`] instead (see the [module docs](self)).
pub trait RenderError: Send + Sync + 'static {
    /// Renders `error`. Must not put [`Error::source`] in the body.
    fn render(&self, error: &Error, cx: &Context) -> http::Response<Bytes>;
}

impl<F> RenderError for F
where
    F: Fn(&Error, &Context) -> http::Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, error: &Error, cx: &Context) -> http::Response<Bytes> {
        self(error, cx)
    }
}

/// The default renderer: RFC 9457 problem details as `application/problem+json`.
///
/// Members: `type` (`about:blank`), `title` (the status's reason phrase), `status`, `detail`
/// (the public detail, when set) and, when the context has one, the extension member
/// `request_id`. The private source is never rendered.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProblemDetails;

/// The body of [`ProblemDetails::fallback`].
const FALLBACK_BODY: &str =
    r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#;

impl ProblemDetails {
    /// The fixed `500 Internal Server Error` answered when the application's renderer panics:
    /// problem details without a detail or request id, built from constants only (no
    /// application code runs, nothing here can panic).
    ///
    /// ```
    /// use http::StatusCode;
    /// use middleware_core::ProblemDetails;
    ///
    /// let res = ProblemDetails::fallback();
    /// assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    /// assert_eq!(res.headers()["content-type"], "application/problem+json");
    /// assert_eq!(
    ///     res.body(),
    ///     r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#,
    /// );
    /// ```
    #[must_use]
    pub fn fallback() -> http::Response<Bytes> {
        let mut res = http::Response::new(Bytes::from_static(FALLBACK_BODY.as_bytes()));
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

impl RenderError for ProblemDetails {
    fn render(&self, error: &Error, cx: &Context) -> http::Response<Bytes> {
        let status = error.status();
        let mut json = String::with_capacity(96);
        json.push_str(r#"{"type":"about:blank","title":"#);
        push_json_string(&mut json, status.canonical_reason().unwrap_or("Error"));
        json.push_str(r#","status":"#);
        json.push_str(status.as_str());
        if let Some(detail) = error.detail() {
            json.push_str(r#","detail":"#);
            push_json_string(&mut json, detail);
        }
        if let Some(id) = cx.request_id() {
            json.push_str(r#","request_id":"#);
            push_json_string(&mut json, id.as_str());
        }
        json.push('}');

        let mut res = http::Response::new(Bytes::from(json));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        // The error's headers replace ours of the same name (no duplicate `content-type`).
        for name in error.headers().keys() {
            res.headers_mut().remove(name);
        }
        for (name, value) in error.headers() {
            res.headers_mut().append(name, value.clone());
        }
        res
    }
}

/// Appends `value` as a JSON string literal (RFC 8259 escaping).
fn push_json_string(out: &mut String, value: &str) {
    use fmt::Write;
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The application's error renderer, carried in the request's [`Context`].
///
/// It is a [`Hook`]: put `HookLayer::new(Renderer::new(my_renderer))` at the edge of the stack
/// and every layer and handler inside renders errors with it.
///
/// ```
/// use bytes::Bytes;
/// use http::StatusCode;
/// use middleware_core::{Context, Error, Renderer};
///
/// let mut cx = Context::new();
/// cx.insert(Renderer::new(|err: &Error, _: &Context| {
///     let mut res = http::Response::new(Bytes::from(format!("oops: {}", err.status().as_u16())));
///     *res.status_mut() = err.status();
///     res
/// }));
/// let res = cx.render_error(&Error::new(StatusCode::FORBIDDEN));
/// assert_eq!(res.body(), "oops: 403");
/// ```
#[derive(Clone)]
pub struct Renderer(Arc<dyn RenderError>);

impl Renderer {
    /// Wraps a renderer.
    #[must_use]
    pub fn new(renderer: impl RenderError) -> Self {
        Self(Arc::new(renderer))
    }

    /// Renders `error` with the wrapped renderer, which may panic; [`Context::render_error`]
    /// is the call that cannot.
    #[must_use]
    pub fn render(&self, error: &Error, cx: &Context) -> http::Response<Bytes> {
        self.0.render(error, cx)
    }
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(stringify!(Renderer)).field(&"..").finish()
    }
}

impl Hook for Renderer {
    type State = ();

    fn before<B>(&self, req: &mut http::Request<B>) -> ControlFlow<http::Response<Bytes>> {
        req.context().insert(self.clone());
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut http::Response<ResponseBody<B>>) {}
}

impl Context {
    /// Renders `error` with the [`Renderer`] in this context, or [`ProblemDetails`].
    ///
    /// Never panics: if the renderer panics, the request is cancelled with
    /// [`CancelCause::Panicked`] and the answer is [`ProblemDetails::fallback`], a fixed
    /// `500`. The panic hook still reports the panic (core does not log).
    #[must_use]
    pub fn render_error(&self, error: &Error) -> http::Response<Bytes> {
        match self.get::<Renderer>() {
            Some(renderer) => {
                // `AssertUnwindSafe`: after a panic nothing the renderer touched is used for this
                // answer, and the context recovers its locks from poisoning (every critical
                // section in it leaves the data consistent).
                match catch_unwind(AssertUnwindSafe(|| renderer.render(error, self))) {
                    Ok(res) => res,
                    Err(payload) => {
                        // Dropping the payload may panic in turn; that one is swallowed too.
                        let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                        self.cancel_with(CancelCause::Panicked);
                        ProblemDetails::fallback()
                    }
                }
            }
            None => ProblemDetails.render(error, self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestId;

    #[test]
    fn problem_details_escape_hostile_detail() {
        let cx = Context::new();
        let err = Error::new(StatusCode::BAD_REQUEST).with_detail("\"}\n\u{1b}[31m\\\u{0}");
        let res = cx.render_error(&err);
        assert_eq!(
            res.body(),
            r#"{"type":"about:blank","title":"Bad Request","status":400,"detail":"\"}\n\u001b[31m\\\u0000"}"#
        );
    }

    #[test]
    fn problem_details_carry_the_request_id_and_headers() {
        let cx = Context::new();
        cx.set_request_id(RequestId::try_from("req-1").unwrap())
            .unwrap();
        let err = Error::new(StatusCode::UNAUTHORIZED).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"api\""),
        );
        let res = cx.render_error(&err);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"api\""
        );
        assert_eq!(
            res.body(),
            r#"{"type":"about:blank","title":"Unauthorized","status":401,"request_id":"req-1"}"#
        );
    }

    #[test]
    fn unknown_errors_are_opaque_500s() {
        fn fails() -> Result<(), Error> {
            let n: u8 = "not a number".parse()?;
            let _ = n;
            Ok(())
        }
        let err = fails().unwrap_err();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(err.source().is_some());
        let body = Context::new().render_error(&err).into_body();
        assert_eq!(
            body,
            r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#
        );
        assert!(err.to_string().contains("invalid digit"), "{err}");
    }

    #[test]
    fn error_headers_replace_the_renderer_defaults() {
        let err = Error::new(StatusCode::BAD_REQUEST)
            .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let res = Context::new().render_error(&err);
        let types: Vec<_> = res.headers().get_all(header::CONTENT_TYPE).iter().collect();
        assert_eq!(types, ["text/plain"]);
    }

    #[test]
    fn a_panicking_renderer_answers_the_fixed_500_and_cancels_with_panicked() {
        let mut cx = Context::new();
        cx.set_request_id(RequestId::try_from("req-1").unwrap())
            .unwrap();
        cx.insert(Renderer::new(
            |_: &Error, _: &Context| -> http::Response<Bytes> { panic!("renderer bug") },
        ));
        let err = Error::new(StatusCode::UNAUTHORIZED)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        let res = cx.render_error(&err);
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(res.body(), FALLBACK_BODY);
        assert_eq!(cx.cause(), Some(CancelCause::Panicked));
        // The same through `Error::into_response`.
        let res = Error::new(StatusCode::NOT_FOUND).into_response::<String>(&cx);
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_renderer_whose_panic_payload_panics_on_drop_still_gets_the_fixed_500() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("payload drop");
            }
        }
        let mut cx = Context::new();
        cx.insert(Renderer::new(
            |_: &Error, _: &Context| -> http::Response<Bytes> { std::panic::panic_any(Bomb) },
        ));
        let res = catch_unwind(AssertUnwindSafe(|| {
            cx.render_error(&Error::new(StatusCode::BAD_REQUEST))
        }))
        .unwrap_or_else(|payload| {
            // Never drop that payload here: its drop panics.
            let _ = Box::leak(payload);
            panic!("the renderer's panic escaped render_error")
        });
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(cx.cause(), Some(CancelCause::Panicked));
    }

    #[test]
    fn a_request_renders_with_its_context_s_renderer_or_problem_details() {
        use crate::RequestExt;

        let err = Error::new(StatusCode::FORBIDDEN);
        let bare = http::Request::new(());
        let res = bare.render_error(&err);
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(bare.try_context().is_none(), "rendering creates no context");

        let mut req = http::Request::new(());
        req.context()
            .insert(Renderer::new(|err: &Error, _: &Context| {
                let mut res = http::Response::new(Bytes::from_static(b"custom"));
                *res.status_mut() = err.status();
                res
            }));
        assert_eq!(req.render_error(&err).body(), "custom");
        let (parts, ()) = req.into_parts();
        assert_eq!(parts.render_error(&err).body(), "custom");
        assert_eq!(parts.extensions.render_error(&err).body(), "custom");
    }

    #[test]
    fn a_request_whose_renderer_panics_gets_the_fixed_500() {
        use crate::RequestExt;

        let mut req = http::Request::new(());
        req.context().insert(Renderer::new(
            |_: &Error, _: &Context| -> http::Response<Bytes> { panic!("renderer bug") },
        ));
        let res = req.render_error(&Error::new(StatusCode::BAD_REQUEST));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.body(), FALLBACK_BODY);
        assert_eq!(req.context().cause(), Some(CancelCause::Panicked));
    }

    #[test]
    fn a_working_renderer_does_not_cancel() {
        let mut cx = Context::new();
        cx.insert(Renderer::new(|err: &Error, _: &Context| {
            let mut res = http::Response::new(Bytes::from_static(b"custom"));
            *res.status_mut() = err.status();
            res
        }));
        let res = cx.render_error(&Error::new(StatusCode::FORBIDDEN));
        assert_eq!(res.body(), "custom");
        assert_eq!(cx.cause(), None);
    }

    #[test]
    fn nonstandard_status_gets_a_generic_title() {
        let status = StatusCode::from_u16(599).unwrap();
        let body = Context::new().render_error(&Error::new(status)).into_body();
        assert_eq!(
            body,
            r#"{"type":"about:blank","title":"Error","status":599}"#
        );
    }
}
