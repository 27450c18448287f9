//! [`ResponseFuture`] of [`RateLimit`](super::RateLimit), and the `429`.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use middleware_core::{Context, Error, RequestExt, ResponseBody};
use tower_service::Service;

use super::{
    layer::PolicyHeaders,
    store::{Decision, ceil_secs},
};

/// The `RateLimit` header (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The `RateLimit-Policy` header (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The headers of an allowed response: the policy's and the decision.
type Headers = (Arc<PolicyHeaders>, Decision);

/// `RateLimit: "<name>";r=<remaining>;t=<seconds until reset, rounded up>`, built in a buffer
/// of the exact length (one allocation, kept by the header value as is).
fn ratelimit_value(quoted: &str, decision: Decision) -> HeaderValue {
    let mut remaining = itoa::Buffer::new();
    let remaining = remaining.format(decision.remaining());
    let mut reset = itoa::Buffer::new();
    let reset = reset.format(ceil_secs(decision.reset()));
    let len = quoted.len() + ";r=".len() + remaining.len() + ";t=".len() + reset.len();
    let mut value = Vec::with_capacity(len);
    for part in [quoted, ";r=", remaining, ";t=", reset] {
        value.extend_from_slice(part.as_bytes());
    }
    debug_assert_eq!(value.len(), len);
    HeaderValue::from_maybe_shared(Bytes::from(value)).expect("printable ASCII")
}

fn add_headers(headers: &mut HeaderMap, policy: &PolicyHeaders, decision: Decision) {
    // Appended: a list may span several fields (nested limits each add their item).
    headers.append(RATELIMIT_POLICY, policy.value.clone());
    headers.append(RATELIMIT, ratelimit_value(&policy.quoted_name, decision));
}

/// The `429`: rendered by the request's renderer, with `Retry-After` and both headers. A store
/// that could not decide ([`Decision::unavailable`]) answers `503` with `Retry-After` only: the
/// client is over no quota.
pub(crate) fn limited(cx: &Context, policy: &PolicyHeaders, decision: Decision) -> Response<Bytes> {
    // At least a second: a client told "0" would retry at once.
    let after = ceil_secs(decision.reset()).max(1);
    let status = if decision.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    let mut res = cx.render_error(
        &Error::new(status).with_header(header::RETRY_AFTER, HeaderValue::from(after)),
    );
    if decision.is_unavailable() {
        return res;
    }
    let decision = Decision::limited(std::time::Duration::from_secs(after));
    add_headers(res.headers_mut(), policy, decision);
    res
}

pin_project_lite::pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit).
    pub struct ResponseFuture<S, R, C>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R, S::Future, C>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, R, F, C> {
        Rejected { response: Option<Response<Bytes>> },
        Checking {
            #[pin]
            check: C,
            // Boxed: only a store that cannot decide at once (one across the network) waits
            // with the request, and the request would make every state as large.
            call: Option<Box<(S, R)>>,
            policy: Arc<PolicyHeaders>,
            on_allowed: bool,
        },
        Running {
            #[pin]
            future: F,
            headers: Option<Headers>,
        },
    }
}

impl<S, R, C> ResponseFuture<S, R, C>
where
    S: Service<R>,
{
    pub(crate) const fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) const fn running(future: S::Future, headers: Option<Headers>) -> Self {
        Self {
            state: State::Running { future, headers },
        }
    }

    pub(crate) fn checking(
        check: C,
        service: S,
        request: R,
        policy: Arc<PolicyHeaders>,
        on_allowed: bool,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                call: Some(Box::new((service, request))),
                policy,
                on_allowed,
            },
        }
    }
}

impl<S, R, C> fmt::Debug for ResponseFuture<S, R, C>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Rejected { .. } => "rejected",
            State::Checking { .. } => "checking",
            State::Running { .. } => "running",
        };
        f.debug_struct(stringify!(ResponseFuture))
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody, C> Future for ResponseFuture<S, Request<ReqBody>, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Future<Output = Decision>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(ResponseBody::response(
                        response.take().expect("future polled after completion"),
                    )));
                }
                StateProj::Checking {
                    check,
                    call,
                    policy,
                    on_allowed,
                } => {
                    let decision = ready!(check.poll(cx));
                    let call = call.take().expect("future polled after completion");
                    let (mut service, mut request) = *call;
                    if decision.is_allowed() {
                        // The service taken ready in `call` is the one called.
                        State::Running {
                            future: service.call(request),
                            // No quota to report when the store could not check it.
                            headers: (*on_allowed && !decision.is_unavailable())
                                .then(|| (Arc::clone(policy), decision)),
                        }
                    } else {
                        drop(service);
                        State::Rejected {
                            response: Some(limited(request.context(), policy, decision)),
                        }
                    }
                }
                StateProj::Running { future, headers } => {
                    let result = ready!(future.poll(cx));
                    let headers = headers.take();
                    return Poll::Ready(result.map(|mut res| {
                        if let Some((policy, decision)) = headers {
                            add_headers(res.headers_mut(), &policy, decision);
                        }
                        res.map(ResponseBody::new)
                    }));
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_store_s_longest_reset_renders_without_overflowing() {
        // A user store may answer any `Duration`; rounding it up must saturate, not overflow.
        let value = ratelimit_value("\"default\"", Decision::allowed(1, Duration::MAX));
        assert_eq!(value, format!("\"default\";r=1;t={}", u64::MAX).as_str());
        let policy = PolicyHeaders {
            value: HeaderValue::from_static("\"default\";q=1;w=1"),
            quoted_name: "\"default\"".into(),
        };
        let res = limited(&Context::new(), &policy, Decision::limited(Duration::MAX));
        assert_eq!(
            res.headers()[header::RETRY_AFTER],
            u64::MAX.to_string().as_str()
        );
    }

    proptest! {
        #[test]
        fn the_ratelimit_value_is_what_the_formatter_writes(
            remaining in any::<u32>(),
            secs in any::<u64>(),
            nanos in 0_u32..1_000_000_000,
        ) {
            let reset = Duration::new(secs, nanos);
            let value = ratelimit_value("\"default\"", Decision::allowed(remaining, reset));
            let expected = format!("\"default\";r={remaining};t={}", ceil_secs(reset));
            prop_assert_eq!(value.to_str().unwrap(), expected);
        }
    }
}
