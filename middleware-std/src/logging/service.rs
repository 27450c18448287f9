use std::{
    fmt,
    sync::{Arc, atomic::AtomicBool},
    task::{Context as TaskContext, Poll},
};

use http::{Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{
    DefaultLevel, LogBody, LogLayer, MakeLevel, PassRequestBody, RequestBodyMode, ResponseFuture,
    access::{self, Access, Record, make_span},
    layer::Config,
};
use crate::{Context, DropGuard, RequestExt, compose, layer_time};

/// The service of [`LogLayer`]. See the [module docs](super) for an example.
#[derive(Clone)]
pub struct Log<S, L = DefaultLevel, C = PassRequestBody> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
    pub(crate) level: L,
    pub(crate) request_body: C,
}

impl<S> Log<S> {
    /// Wraps `inner` with the defaults of [`LogLayer::new`].
    pub fn new(inner: S) -> Self {
        let layer = LogLayer::new();
        Self {
            inner,
            config: layer.config,
            level: layer.level,
            request_body: layer.request_body,
        }
    }

    /// The layer form, same as [`LogLayer::new`].
    pub fn layer() -> LogLayer {
        LogLayer::new()
    }
}

impl<S, L, C> Log<S, L, C> {
    define_inner_service_accessors!();
}

impl<S, L: MakeLevel + Clone, C> Log<S, L, C> {
    /// Opens the span and the access record of a request.
    fn start<B>(&self, req: &mut Request<B>) -> Access<L> {
        // A log layer outside already records this request: one record, not two.
        if compose::enter(req.extensions_mut(), compose::LOG) & compose::LOG != 0 {
            warn_nested();
            return Access::off(DropGuard::none());
        }
        if self.config.create_context {
            req.context();
        }
        // One look into the extensions for all that follows.
        let cx = req.try_context();
        // No subscriber would see the event and no timing layer wants this layer's own time: skip the record.
        if !access::any_event_enabled() && !layer_time::wanted(cx) {
            return Access::off(cx.map_or_else(DropGuard::none, Context::drop_guard));
        }
        // A clone, not a new context: the cause and a late request id are read through it.
        let cx = cx.cloned();
        let mut record = Record::new(Arc::clone(&self.config), self.level.clone(), cx);
        let span = make_span(&self.config, req, record.context());
        #[cfg(feature = "otel")]
        if let Some(ids) = crate::otel::server_span_started(&span, req) {
            record.set_trace(
                u128::from_be_bytes(ids.trace_id().to_bytes()),
                u64::from_be_bytes(ids.span_id().to_bytes()),
            );
        }
        record.set_span(span, req);
        if layer_time::wanted(record.context()) {
            layer_time::record(record.context(), "mw.logging", record.elapsed());
        }
        Access::on(record)
    }

    /// Calls the inner service inside the span.
    fn call_inner<B>(
        &mut self,
        mut access: Access<L>,
        req: Request<B>,
    ) -> ResponseFuture<S::Future, L>
    where
        S: Service<Request<B>>,
    {
        // hyper never polls the body of a response to HEAD.
        let head = req.method() == Method::HEAD;
        // A panic in `call` unwinds through here: `access` is dropped while `polling`.
        let future = access.polling(|| self.inner.call(req));
        ResponseFuture::new(future, access, head)
    }
}

impl<S: fmt::Debug, L, C: fmt::Debug> fmt::Debug for Log<S, L, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Log))
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("level", &std::any::type_name::<L>())
            .field("request_body", &self.request_body)
            .finish()
    }
}

impl<S, L, C, B, RB> Service<Request<B>> for Log<S, L, C>
where
    C: RequestBodyMode<B>,
    S: Service<Request<C::Body>, Response = Response<RB>>,
    S::Error: fmt::Display,
    RB: Body,
    RB::Error: fmt::Display,
    L: MakeLevel + Clone,
{
    type Response = Response<LogBody<RB, L>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, L>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let mut access = self.start(&mut req);
        let req = self.request_body.wrap(req, &mut access);
        self.call_inner(access, req)
    }
}

/// Warns, once per process, that a log layer found another one outside it.
fn warn_nested() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    compose::once(&WARNED, || {
        tracing::warn!(
            "two `LogLayer`s on one request (a per-route `LogLayer` under a global one, or under \
             `StackLayer`, which has one): the inner one writes no access record, the outer one \
             does; remove the inner `LogLayer`"
        );
    });
}

// ----- stack introspection -----

impl<S: middleware_core::Describe, L, C> middleware_core::Describe for Log<S, L, C> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.config.describe::<L, C>(description);
        self.inner.describe(description);
    }
}
