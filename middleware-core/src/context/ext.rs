//! `RequestExt`: find or create a request's context.

use http::Extensions;

use super::Context;

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
}

impl RequestExt for Extensions {
    fn context(&mut self) -> &mut Context {
        // One map lookup; the context is built only when absent.
        self.get_or_insert_with(Context::new)
    }

    fn try_context(&self) -> Option<&Context> {
        self.get::<Context>()
    }
}

impl<B> RequestExt for http::Request<B> {
    fn context(&mut self) -> &mut Context {
        self.extensions_mut().context()
    }

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
