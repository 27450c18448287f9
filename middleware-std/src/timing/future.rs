use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
    time::Duration,
};

use http::{HeaderName, Response, StatusCode};
use http_body::Body;
use middleware_core::Context;

use super::{OnBodyEnd, StreamEnd, TimingBody, TimingFilter, body::Pending, header, layer::Config};

/// `server-timing` (not among `http`'s constants).
static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// `x-response-time`.
static X_RESPONSE_TIME: HeaderName = HeaderName::from_static("x-response-time");

/// What the future needs once the inner future completes.
pub(crate) struct State<H, F> {
    pub(crate) cx: Context,
    /// `cx.elapsed()` when the layer was called, in nanoseconds (half the size of a
    /// `Duration`, and 584 years): the clock is the context's (tokio's).
    pub(crate) start: u64,
    pub(crate) config: Config,
    pub(crate) hook: H,
    pub(crate) filter: F,
    /// The request is `HEAD`: its response has no body to stream.
    pub(crate) head: bool,
    /// A timing layer outside writes the header: this one writes none.
    pub(crate) nested: bool,
}

/// Whether a response has no body on the wire, so that servers never poll (or even drop
/// unpolled) its body: a response to `HEAD`, `1xx`, `204 No Content`, `304 Not Modified`.
fn is_bodiless(head: bool, status: StatusCode) -> bool {
    head || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

pin_project_lite::pin_project! {
    /// The response future of [`ServerTiming`](super::ServerTiming): adds the headers when the
    /// inner response arrives.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<Fut, H, F = super::DefaultTimingFilter> {
        #[pin]
        inner: Fut,
        state: Option<State<H, F>>,
    }
}

impl<Fut, H, F> ResponseFuture<Fut, H, F> {
    pub(crate) const fn new(inner: Fut, state: State<H, F>) -> Self {
        Self {
            inner,
            state: Some(state),
        }
    }
}

impl<Fut, H, F> fmt::Debug for ResponseFuture<Fut, H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &"...")
            .field("done", &self.state.is_none())
            .finish()
    }
}

impl<Fut, H, F, RB, E> Future for ResponseFuture<Fut, H, F>
where
    Fut: Future<Output = Result<Response<RB>, E>>,
    RB: Body,
    H: OnBodyEnd,
    F: TimingFilter,
{
    type Output = Result<Response<TimingBody<RB, H>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let State {
            cx,
            start,
            config,
            hook,
            filter,
            head,
            nested,
        } = this.state.take().expect("future polled after completion");
        let mut res = result?;
        let start = Duration::from_nanos(start);
        let total = cx.elapsed().saturating_sub(start);
        if !nested && filter.should_send(res.status(), res.headers()) {
            let max_marks = usize::try_from(config.max_marks).unwrap_or(usize::MAX);
            let precision = config.precision;
            let value =
                cx.with_marks(|marks| header::server_timing(total, marks, max_marks, precision));
            let headers = res.headers_mut();
            headers.append(SERVER_TIMING.clone(), value);
            if config.response_time {
                headers.insert(
                    X_RESPONSE_TIME.clone(),
                    header::response_time(precision.round(total)),
                );
            }
        }
        let status = res.status();
        let mut pending = H::ENABLED.then(|| {
            Box::new(Pending {
                hook: Some(hook),
                cx,
                start,
                headers: total,
                status,
                sent: false,
            })
        });
        let length = crate::body_state::declared_length(&res);
        if is_bodiless(head, status) || length == Some(0) {
            // Finished at the head: the server will drop the body unpolled (as it does a
            // declared length of 0), which is not a client going away.
            if let Some(mut pending) = pending.take() {
                pending.report(StreamEnd::Complete);
            }
        }
        Poll::Ready(Ok(res.map(|body| TimingBody::new(body, pending, length))))
    }
}
