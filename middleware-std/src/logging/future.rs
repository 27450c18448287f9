use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use http::Response;
use http_body::Body;

use super::{MakeLevel, RequestOutcome, ResponseBody, access::Access};

pin_project_lite::pin_project! {
    /// The response future of [`Log`](super::Log). Dropping it before the response logs the
    /// request as dropped (see [`RequestOutcome`]).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, L: MakeLevel> {
        #[pin]
        inner: F,
        access: Option<Access<L>>,
    }
}

impl<F, L: MakeLevel> ResponseFuture<F, L> {
    pub(crate) const fn new(inner: F, access: Access<L>) -> Self {
        Self {
            inner,
            access: Some(access),
        }
    }
}

impl<F, L: MakeLevel> fmt::Debug for ResponseFuture<F, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &"...")
            .field("access", &self.access)
            .finish()
    }
}

impl<F, L, B, E> Future for ResponseFuture<F, L>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    B: Body,
    L: MakeLevel,
{
    type Output = Result<Response<ResponseBody<B, L>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let access = this
                .access
                .as_mut()
                .expect("future polled after completion");
            ready!(access.polling(|| this.inner.poll(cx)))
        };
        let mut access = this.access.take().expect("checked above");
        match result {
            Ok(res) => {
                access.response(&res);
                let access = if res.body().is_end_stream() {
                    // Nothing to stream: a server will not poll the body.
                    access.finish(access.completed(), None);
                    None
                } else {
                    Some(access)
                };
                Poll::Ready(Ok(res.map(|body| ResponseBody::new(body, access))))
            }
            Err(err) => {
                access.finish(RequestOutcome::Error, Some(&err));
                Poll::Ready(Err(err))
            }
        }
    }
}
