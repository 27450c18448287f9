use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
    time::Duration,
};

use http::{HeaderName, Response};
use http_body::Body;
use middleware_core::Context;

use super::{OnBodyEnd, ResponseBody, body::Pending, header, layer::Config};

/// `server-timing` (not among `http`'s constants).
static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// `x-response-time`.
static X_RESPONSE_TIME: HeaderName = HeaderName::from_static("x-response-time");

/// What the future needs once the inner future completes.
pub(crate) struct State<H> {
    pub(crate) cx: Context,
    /// `cx.elapsed()` when the layer was called, in nanoseconds (half the size of a
    /// `Duration`, and 584 years): the clock is the context's (tokio's).
    pub(crate) start: u64,
    pub(crate) config: Config,
    pub(crate) hook: H,
}

pin_project_lite::pin_project! {
    /// The response future of [`ServerTiming`](super::ServerTiming): adds the headers when the
    /// inner response arrives.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, H> {
        #[pin]
        inner: F,
        state: Option<State<H>>,
    }
}

impl<F, H> ResponseFuture<F, H> {
    pub(crate) const fn new(inner: F, state: State<H>) -> Self {
        Self {
            inner,
            state: Some(state),
        }
    }
}

impl<F, H> fmt::Debug for ResponseFuture<F, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &"...")
            .field("done", &self.state.is_none())
            .finish()
    }
}

impl<F, H, RB, E> Future for ResponseFuture<F, H>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Body,
    H: OnBodyEnd,
{
    type Output = Result<Response<ResponseBody<RB, H>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let State {
            cx,
            start,
            config,
            hook,
        } = this.state.take().expect("future polled after completion");
        let mut res = result?;
        let start = Duration::from_nanos(start);
        let total = cx.elapsed().saturating_sub(start);
        let max_marks = usize::try_from(config.max_marks).unwrap_or(usize::MAX);
        let value = cx.with_marks(|marks| header::server_timing(total, marks, max_marks));
        let headers = res.headers_mut();
        headers.append(SERVER_TIMING.clone(), value);
        if config.response_time {
            headers.insert(X_RESPONSE_TIME.clone(), header::response_time(total));
        }
        let pending = H::ENABLED.then(|| {
            Box::new(Pending {
                hook: Some(hook),
                cx,
                start,
                headers: total,
                status: res.status(),
            })
        });
        Poll::Ready(Ok(res.map(|body| ResponseBody::new(body, pending))))
    }
}
