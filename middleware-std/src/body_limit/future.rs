//! [`ResponseFuture`] of [`RequestBodyLimit`](super::RequestBodyLimit).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context as TaskContext, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use middleware_core::{Context, Error, ResponseBody};

pin_project_lite::pin_project! {
    /// The response future of [`RequestBodyLimit`](super::RequestBodyLimit).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Rejected { response: Option<Response<Bytes>> },
        Inner {
            #[pin]
            future: F,
            // `None` for an empty body.
            signal: Option<Arc<AtomicBool>>,
            context: Option<Context>,
            close: bool,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) const fn rejected(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }

    #[inline]
    pub(crate) const fn new(
        future: F,
        signal: Option<Arc<AtomicBool>>,
        context: Option<Context>,
        close: bool,
    ) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                signal,
                context,
                close,
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(stringify!(ResponseFuture));
        match &self.kind {
            Kind::Rejected { .. } => d.field("rejected", &true),
            Kind::Inner { signal, .. } => d.field("future", &"...").field(
                "exceeded",
                &signal.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)),
            ),
        }
        .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Rejected { response } => Poll::Ready(Ok(ResponseBody::response(
                response.take().expect("future polled after completion"),
            ))),
            KindProj::Inner {
                future,
                signal,
                context,
                close,
            } => {
                let result = ready!(future.poll(cx));
                if signal.as_ref().is_some_and(|s| s.load(Ordering::Acquire)) {
                    // The body passed the limit before the head: whatever the handler made of
                    // the error (or of ignoring it), the answer is `413`.
                    let cx = context.take().unwrap_or_default();
                    return Poll::Ready(Ok(ResponseBody::response(too_large(&cx, *close))));
                }
                Poll::Ready(result.map(|res| res.map(ResponseBody::new)))
            }
        }
    }
}

/// The `413` response, rendered by the request's renderer; with `Connection: close` on HTTP/1,
/// since the rest of the body is not read.
pub(crate) fn too_large(cx: &Context, close: bool) -> Response<Bytes> {
    let mut res = cx.render_error(&Error::new(StatusCode::PAYLOAD_TOO_LARGE));
    if close {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
