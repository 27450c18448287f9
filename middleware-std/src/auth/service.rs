//! The [`Auth`] service.

use std::{
    fmt,
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use http::{Request, Response};
use middleware_core::{RequestExt, ResponseBody};
use tower_service::Service;

use crate::layer_time;

use super::{
    AuthLayer, Authenticate, authenticate::Verdict, future::ResponseFuture, layer::Settings,
};

/// Authenticates each request before calling `inner`; rejected requests never reach it.
///
/// See the [module docs](super) for an example.
pub struct Auth<S, A> {
    inner: S,
    authenticator: Arc<A>,
    settings: Arc<Settings>,
}

impl<S, A: Authenticate> Auth<S, A> {
    /// Wraps `inner` with the default settings (realm `"restricted"`, no requirements). Use
    /// [`AuthLayer`] to change them.
    pub fn new(inner: S, authenticator: A) -> Self {
        let settings = Settings::new(authenticator.scheme());
        Self::from_parts(inner, Arc::new(authenticator), Arc::new(settings))
    }

    /// A layer that authenticates with `authenticator`; same as [`AuthLayer::new`].
    pub fn layer(authenticator: A) -> AuthLayer<A> {
        AuthLayer::new(authenticator)
    }
}

impl<S, A> Auth<S, A> {
    pub(crate) fn from_parts(inner: S, authenticator: Arc<A>, settings: Arc<Settings>) -> Self {
        Self {
            inner,
            authenticator,
            settings,
        }
    }

    define_inner_service_accessors!();
}

impl<S: Clone, A> Clone for Auth<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            authenticator: Arc::clone(&self.authenticator),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<S: fmt::Debug, A: fmt::Debug> fmt::Debug for Auth<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Auth))
            .field("inner", &self.inner)
            .field("authenticator", &self.authenticator)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    A: Authenticate,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, A::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // A clock is read only when a timing layer asks for this layer's own time.
        let started = layer_time::wanted(req.try_context()).then(std::time::Instant::now);
        // The extensions are taken out for the call (a pointer), not the request split into
        // parts and put back together (two moves of the whole request).
        let mut extensions = std::mem::take(req.extensions_mut());
        // Before anything is read: the header is protected whatever the verdict.
        let credential = self.settings.protect(req.headers_mut(), &extensions);
        let verdict = self.authenticator.authenticate(credential, &mut extensions);
        *req.extensions_mut() = extensions;
        let spent = |req: &Request<ReqBody>| {
            if let Some(started) = started {
                layer_time::record(req.try_context(), "mw.auth", started.elapsed());
            }
        };
        match verdict {
            Verdict::Granted(principal) => match self.settings.admit(principal, &mut req) {
                None => {
                    spent(&req);
                    ResponseFuture::called(self.inner.call(req))
                }
                Some(forbidden) => {
                    spent(&req);
                    ResponseFuture::rejected(forbidden)
                }
            },
            Verdict::Denied => {
                let unauthorized = self.settings.unauthorized(&req);
                spent(&req);
                ResponseFuture::rejected(unauthorized)
            }
            Verdict::Pending(validation) => {
                // The validator's own time is the application's, like the inner service's:
                // only the reading and starting of the check counts as this layer's.
                spent(&req);
                // The ready service goes into the future; this handle keeps a fresh clone.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::validating(validation, req, inner, Arc::clone(&self.settings))
            }
        }
    }
}

// ----- stack introspection -----

impl<S: middleware_core::Describe, A> middleware_core::Describe for Auth<S, A> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.settings.describe::<A>(description);
        self.inner.describe(description);
    }
}
