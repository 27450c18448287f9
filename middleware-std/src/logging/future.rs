use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
};

use http::{Response, StatusCode};
use http_body::Body;

use super::{LogBody, MakeLevel, RequestOutcome, access::Access};
use crate::body_state::declared_length;

pin_project_lite::pin_project! {
    /// The response future of [`Log`](super::Log). Dropping it before the response logs the
    /// request as dropped (see [`RequestOutcome`]).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, L: MakeLevel> {
        #[pin]
        inner: F,
        access: Option<Access<L>>,
        // The request is a HEAD: its response has no body, whatever the body says.
        head: bool,
    }
}

impl<F, L: MakeLevel> ResponseFuture<F, L> {
    pub(crate) const fn new(inner: F, access: Access<L>, head: bool) -> Self {
        Self {
            inner,
            access: Some(access),
            head,
        }
    }
}

impl<F, L: MakeLevel> fmt::Debug for ResponseFuture<F, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("inner", &"...")
            .field("access", &self.access)
            .field("head", &self.head)
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
    type Output = Result<Response<LogBody<B, L>>, E>;

    #[inline]
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
                access.response_request_id(res.extensions());
                let length = declared_length(&res);
                let access = if *this.head
                    || is_bodiless(res.status())
                    || res.body().is_end_stream()
                    || length == Some(0)
                {
                    // Nothing to stream: a server will not poll the body (hyper drops the body
                    // of a response to HEAD, 1xx, 204 and 304, or of a declared length of 0,
                    // unpolled), so the request ends at the head, completed: not a disconnect.
                    access.finish(access.completed(), None);
                    None
                } else {
                    Some(access)
                };
                Poll::Ready(Ok(
                    res.map(|body| LogBody::new(body, access).with_length(length))
                ))
            }
            Err(err) => {
                access.finish(RequestOutcome::Error, Some(&err));
                Poll::Ready(Err(err))
            }
        }
    }
}

/// Whether a response with `status` has no body on the wire (RFC 9110: 1xx, 204, 304).
fn is_bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}
