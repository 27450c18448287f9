//! [`ResponseFuture`] of [`RateLimit`](super::RateLimit), and the `429`.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use middleware_core::{Context, Error, ResponseBody};
use tower_service::Service;

use super::{
    layer::PolicyHeaders,
    policy::{Decision, ceil_secs},
};
use crate::admission::{AdmissionFuture, Grant, Pending};

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
    /// A store's decision still to come (one across the network), and what answering it needs.
    pub(crate) struct Checking<C> {
        #[pin]
        check: C,
        policy: Arc<PolicyHeaders>,
        on_allowed: bool,
    }
}

impl<C: Future<Output = Decision>> Future for Checking<C> {
    type Output = Decision;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Decision> {
        self.project().check.poll(cx)
    }
}

impl<C: Future<Output = Decision>> Pending for Checking<C> {
    type Grant = Headers;
    type Refusal = Decision;

    fn admit(self: Pin<&mut Self>, decision: Decision) -> Result<Option<Headers>, Decision> {
        if decision.is_allowed() {
            // The policy is shared only when allowed responses carry its headers (and there is a
            // quota to report: not when the store could not check it).
            let this = self.project();
            Ok((*this.on_allowed && !decision.is_unavailable())
                .then(|| (Arc::clone(this.policy), decision)))
        } else {
            Err(decision)
        }
    }

    fn refuse(self: Pin<&mut Self>, decision: Decision, cx: &Context) -> Response<Bytes> {
        limited(cx, &self.policy, decision)
    }
}

impl<B> Grant<B> for Headers {
    type Body = B;

    #[inline]
    fn respond(headers: Option<Self>, mut res: Response<B>) -> Response<ResponseBody<B>> {
        if let Some((policy, decision)) = headers {
            add_headers(res.headers_mut(), &policy, decision);
        }
        res.map(ResponseBody::new)
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit).
    pub struct ResponseFuture<S, R, C>
    where
        S: Service<R>,
    {
        #[pin]
        inner: AdmissionFuture<S, R, Checking<C>, Headers>,
    }
}

impl<S, R, C> ResponseFuture<S, R, C>
where
    S: Service<R>,
{
    pub(crate) const fn rejected(response: Response<Bytes>) -> Self {
        Self {
            inner: AdmissionFuture::rejected(response),
        }
    }

    #[inline]
    pub(crate) const fn running(future: S::Future, headers: Option<Headers>) -> Self {
        Self {
            inner: AdmissionFuture::running(future, headers),
        }
    }

    /// Waits for the store's `check`. Only a store that cannot decide at once (one across the
    /// network) makes a request wait (with its service, boxed).
    pub(crate) fn checking(
        check: C,
        service: S,
        request: R,
        policy: Arc<PolicyHeaders>,
        on_allowed: bool,
    ) -> Self {
        let checking = Checking {
            check,
            policy,
            on_allowed,
        };
        Self {
            inner: AdmissionFuture::waiting(checking, service, request),
        }
    }
}

impl<S, R, C> fmt::Debug for ResponseFuture<S, R, C>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ResponseFuture))
            .field("state", &self.inner.state("checking"))
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody, C> Future for ResponseFuture<S, Request<ReqBody>, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Future<Output = Decision>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
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
