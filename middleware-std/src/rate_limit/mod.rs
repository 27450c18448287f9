//! A keyed rate limit with the IETF `RateLimit` headers: [`RateLimitLayer`].
//!
//! Each key gets `quota` requests per `window` ([`Policy`]), replenished continuously by the
//! generic cell rate algorithm (GCRA, from the `governor` crate): one request's worth comes back
//! every `window / quota`, and a key that waited long enough may burst up to `quota` at once.
//!
//! - **The key** is the client's IP address by default ([`PeerIp`]: the `SocketAddr` a hyper
//!   accept loop puts in the extensions, or axum's `ConnectInfo`; IPv6 by `/64`), or a header
//!   ([`per_header`](RateLimitLayer::per_header)), the authenticated principal
//!   (`per_principal`, feature `auth`), or any closure
//!   ([`key`](RateLimitLayer::key)). Requests without a key share one
//!   [anonymous](Key::anonymous) quota (a missing header is not a way around the limit). A key
//!   keeps at most [`MAX_KEY_LEN`] bytes, whatever the client sends.
//! - **A request over its quota** is answered `429 Too Many Requests`, rendered by the
//!   request's [`Renderer`](crate::Renderer), with `Retry-After` (whole seconds until the next
//!   request may pass, at least 1) and the headers of draft-ietf-httpapi-ratelimit-headers:
//!   `RateLimit-Policy: "default";q=100;w=60` (the policy: quota and window in seconds) and
//!   `RateLimit: "default";r=0;t=3` (remaining requests, seconds until reset). The handler
//!   never runs. No `HandleErrorLayer` is needed.
//! - **An allowed response** carries the same two headers, `r` being what remains after this
//!   request and `t` when the quota is whole again (turn them off with
//!   [`without_headers_on_allowed`](RateLimitLayer::without_headers_on_allowed)).
//! - **Clones share one store**, and so does every service the layer makes: the layer holds
//!   it behind an `Arc`.
//! - **Memory is bounded**: the default [`MemoryStore`] tracks at most a fixed number of keys
//!   (100 000 by default), forgets keys whose quota is whole again, and makes room under a
//!   flood of distinct keys; see its docs for the trade-off.
//! - **Storage is a trait**, [`RateLimitStore`]: a store decides at once ([`Check::Ready`],
//!   the in-process store) or later ([`Check::Pending`], a store across the network, e.g.
//!   Redis), so instances of a service can count together.
//!
//! With the [`MemoryStore`], a request under a key already tracked costs one allocation, the
//! `RateLimit` header value (none without the headers on allowed responses).
//!
//! `poll_ready` is the inner service's readiness: the limit answers, it does not apply
//! backpressure. With a store that decides later, the ready inner service waits with the
//! request (`mem::replace` with a clone) and is called once the decision allows it.
//!
//! Place it after authentication when keyed by principal, and inside a concurrency limit (a
//! request the rate limit refuses costs almost nothing, so it need not hold a place).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::{convert::Infallible, net::SocketAddr};
//!
//! use http::{Request, Response, StatusCode, header};
//! use middleware_std::rate_limit::{Policy, RateLimitLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(Policy::per_minute(2)))
//!     .service(service_fn(|_: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//!
//! let from = |ip: [u8; 4]| {
//!     let mut req = Request::new(());
//!     req.extensions_mut().insert(SocketAddr::from((ip, 4000)));
//!     req
//! };
//!
//! let res = svc.clone().oneshot(from([10, 0, 0, 1])).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["ratelimit-policy"], r#""default";q=2;w=60"#);
//! assert_eq!(res.headers()["ratelimit"], r#""default";r=1;t=30"#);
//!
//! let res = svc.clone().oneshot(from([10, 0, 0, 1])).await.unwrap();
//! assert_eq!(res.headers()["ratelimit"], r#""default";r=0;t=60"#);
//!
//! // The third request within the window is refused, with the time to wait.
//! let res = svc.clone().oneshot(from([10, 0, 0, 1])).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(res.headers()[header::RETRY_AFTER], "30");
//! assert_eq!(res.headers()["ratelimit"], r#""default";r=0;t=30"#);
//!
//! // Another client has its own quota.
//! let res = svc.oneshot(from([10, 0, 0, 2])).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # }
//! ```
//!
//! # Differences from tower
//!
//! tower's `RateLimit` is one fixed-window counter per service handle: not keyed, not shared
//! between clones (each clone counts alone, so it needs `Buffer` to be one limit), and it
//! applies backpressure in `poll_ready` (a caller waits instead of hearing `429`; load
//! shedding and `HandleErrorLayer` are needed to answer). Here the limit is keyed, GCRA
//! (smooth, no burst at window edges), shared by every clone through its store, answered with
//! `429` and the standard headers, and bounded in memory. tower-http has no rate limit.

mod future;
mod key;
mod layer;
mod policy;
mod service;
mod store;
#[cfg(test)]
mod tests;

#[cfg(feature = "auth")]
#[doc(inline)]
pub use self::key::PrincipalKey;
#[doc(inline)]
pub use self::{
    future::{RATELIMIT, RATELIMIT_POLICY, ResponseFuture},
    key::{HeaderKey, Key, MAX_KEY_LEN, MakeKey, PeerIp},
    layer::RateLimitLayer,
    policy::{Decision, Policy},
    service::RateLimit,
    store::{Check, DEFAULT_CAPACITY, MemoryStore, RateLimitStore},
};
