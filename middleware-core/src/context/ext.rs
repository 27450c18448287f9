//! `RequestExt`: find or create a request's context, render an error for a request.

use bytes::Bytes;
use http::Extensions;

use super::Context;
use crate::Error;

/// Extension methods that find or create the [`Context`] of a request.
///
/// Implemented for [`http::Request`], [`http::request::Parts`] and [`http::Extensions`].
pub trait RequestExt: sealed::Sealed {
    /// The request's context, created on first use.
    ///
    /// Creating it costs two allocations (the shared state and the extension slot; an extension
    /// map that is still empty allocates itself on its first insert, whatever is inserted).
    /// Finding an existing one costs none.
    fn context(&mut self) -> &mut Context;

    /// The request's context if some layer created one, without creating it.
    fn try_context(&self) -> Option<&Context>;

    /// Renders `error` for this request: with the renderer in the request's context when it
    /// has one ([`Context::render_error`]), as [`ProblemDetails`](crate::ProblemDetails)
    /// otherwise. The verb for a layer or an extractor that answers a request with an error
    /// before, or without, any context.
    ///
    /// Never panics: a panicking renderer is caught as [`Context::render_error`] catches it.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use middleware_core::{Error, RequestExt};
    ///
    /// let req = Request::new(());
    /// let res = req.render_error(&Error::new(StatusCode::FORBIDDEN));
    /// assert_eq!(res.status(), StatusCode::FORBIDDEN);
    /// assert_eq!(res.headers()["content-type"], "application/problem+json");
    /// assert!(req.try_context().is_none(), "no context is created");
    /// ```
    #[must_use]
    fn render_error(&self, error: &Error) -> http::Response<Bytes> {
        match self.try_context() {
            Some(cx) => cx.render_error(error),
            None => Context::new().render_error(error),
        }
    }
}

impl RequestExt for Extensions {
    fn context(&mut self) -> &mut Context {
        // One map lookup; the context is built only when absent.
        self.get_or_insert_with(Context::new)
    }

    #[inline]
    fn try_context(&self) -> Option<&Context> {
        self.get::<Context>()
    }
}

impl<B> RequestExt for http::Request<B> {
    fn context(&mut self) -> &mut Context {
        self.extensions_mut().context()
    }

    #[inline]
    fn try_context(&self) -> Option<&Context> {
        self.extensions().try_context()
    }
}

impl RequestExt for http::request::Parts {
    fn context(&mut self) -> &mut Context {
        self.extensions.context()
    }

    fn try_context(&self) -> Option<&Context> {
        self.extensions.try_context()
    }
}

mod sealed {
    // Sealed on purpose: nameable only here, so no one else can implement `RequestExt`.
    #[allow(unnameable_types)]
    pub trait Sealed {}
    impl Sealed for http::Extensions {}
    impl<B> Sealed for http::Request<B> {}
    impl Sealed for http::request::Parts {}
}
