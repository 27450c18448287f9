//! Authentication: Basic, Bearer, API key, your own async validator, and JWT (feature `jwt`).
//!
//! [`AuthLayer`] reads credentials from the request, checks them, and on success puts the
//! [`Principal`] (identity, roles, scopes) into the request's [`Context`](crate::Context), where
//! inner layers and the handler read it with `cx.get::<Principal>()`. Role and scope
//! requirements ([`AuthLayer::require_role`], [`AuthLayer::require_scope`]) answer
//! `403 Forbidden` when the principal lacks them.
//!
//! | constructor | reads | checked |
//! | --- | --- | --- |
//! | [`AuthLayer::basic`] | `Authorization: Basic base64(user:password)` | static users, in `call` |
//! | [`AuthLayer::bearer`] | `Authorization: Bearer <token>` | static tokens, in `call` |
//! | [`AuthLayer::api_key`] | a header of your choice, e.g. `x-api-key` | static keys, in `call` |
//! | [`AuthLayer::validator`] | any [`Scheme`] | your async [`Validator`] (closures work) |
//! | `AuthLayer::jwt` | `Authorization: Bearer <jwt>` | `Jwt`: HS256/384/512, RS256, ES256; keys bound to issuers |
//!
//! # Failures
//!
//! Every failure — no header, several headers, an empty value, more than 8 KiB, a scheme with
//! no credentials, extra or unusual whitespace, bad base64 or padding, no `:`, non-UTF-8, a
//! wrong user, password, token or key, a validator's [`Rejection`] — gets the *same* response:
//! `401 Unauthorized` with the scheme's `WWW-Authenticate` challenge (realm configurable with
//! [`AuthLayer::with_realm`], quoted and escaped) and the body of the application's error
//! renderer (`Context::render_error`, RFC 9457 problem details by default) for an error with no
//! detail. Nothing in it depends on which part was wrong, so it is no oracle. The inner service
//! is not called for a rejected request. Scheme names match without regard to case; a Basic
//! password may contain `:` (the user name ends at the first one). The `WWW-Authenticate`
//! scheme for API keys is `ApiKey` with a `header` parameter, since no standard one exists.
//!
//! # Secrets
//!
//! Static secrets are stored as SHA-256 digests only. A presented secret is hashed and compared
//! with every stored digest using `subtle`'s constant-time equality, so neither its length, a
//! common prefix, nor which entry matched shows in the timing. Secrets never appear in `Debug`
//! output (every type here redacts by hand) or in error responses, and no type here compares
//! secrets with `==` (use [`Secret::matches`]). Static checks run synchronously in `call` and
//! allocate nothing beyond inserting the principal into the context (and declaring an API key
//! header, below); a validator's future is stored unboxed in the [`ResponseFuture`].
//!
//! The timing of the comparison can be checked with a dudect-style Welch t-test. It is not a CI
//! gate (it wants an optimized build and a machine that is not too busy); it prints the median t
//! of several rounds for the bearer check and for a deliberately leaky early-exit comparison,
//! and fails when the check's |t| exceeds 4.5 (dudect's threshold) or the leaky one's does not:
//!
//! ```text
//! cargo test -p middleware-std --release --features auth --lib -- --ignored --nocapture comparison_time
//! ```
//!
//! # Credentials stay out of logs
//!
//! Whatever the order of the layers, a header this layer reads a credential from is never
//! logged by a logger that honours these two marks. Before the credentials are even read — so
//! for valid, wrong and malformed values alike, and whether the request is then admitted,
//! refused or handed to a validator — the layer:
//!
//! - marks every value of that header sensitive ([`http::HeaderValue::set_sensitive`]), which
//!   inner layers, the handler and HTTP/2 encoders see;
//! - declares the header with [`Context::mark_sensitive_header`](crate::Context::mark_sensitive_header)
//!   when it is an API key header (any name, static or [`Scheme::ApiKey`] for a validator). The
//!   declaration is shared by every handle of the request, so an access log *outside* this
//!   layer, which holds a handle taken before the check, redacts the header too. It reaches the
//!   context the request carries when it arrives (a log layer outside creates one) and, on an
//!   admitted request, the context this layer puts the principal into.
//!
//! `Authorization` (Basic, Bearer, JWT) is flagged but not declared: it is, with
//! `Proxy-Authorization` and `Cookie`, on every logger's fixed deny list, and declaring it would
//! cost an allocation per request (the first entry of the context's list) for nothing. This
//! layer reads no other header and no cookie.
//!
//! # Per-layer time
//!
//! Inside a timing layer that asks for per-layer times (`ServerTimingLayer::per_layer_times`,
//! feature `timing`), the layer reports the time of its own work in `call` — reading and
//! checking the credentials, admitting or rendering the rejection — as the mark `mw.auth`,
//! once per request. A validator's future is the application's work, like the inner service's,
//! and is not counted. Otherwise no clock is read.
//!
//! # JWT
//!
//! With the `jwt` feature, `Jwt` verifies bearer tokens with keys that are each pinned to one
//! algorithm, optionally named by a `kid` and bound to an issuer (`JwtKey::with_issuer`): a
//! token is checked only with the keys of its `alg`, its `kid` (a `kid` no key has is refused)
//! and its `iss`, so one identity provider's key cannot vouch for another's tokens. A token
//! whose header has a `crit` is refused (this layer understands no extension), and HMAC secrets
//! shorter than RFC 7518 §3.2 allows are refused when the key is built. Every refusal is the one
//! `401` above.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode, header};
//! use middleware_std::{RequestExt, auth::{AuthLayer, Principal}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let app = ServiceBuilder::new()
//!     .layer(
//!         AuthLayer::bearer("s3cr3t", Principal::new("ci").with_role("deploy"))
//!             .with_realm("api")
//!             .require_role("deploy"),
//!     )
//!     .service(service_fn(|req: Request<String>| async move {
//!         let who = req.try_context().and_then(|cx| cx.get::<Principal>()).unwrap().id().to_owned();
//!         Ok::<_, Infallible>(Response::new(format!("hello {who}")))
//!     }));
//!
//! let req = Request::builder()
//!     .header(header::AUTHORIZATION, "bearer s3cr3t")
//!     .body(String::new())
//!     .unwrap();
//! let res = app.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! let res = app.oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()[header::WWW_AUTHENTICATE], r#"Bearer realm="api""#);
//! # }
//! ```
//!
//! An async validator, here for Basic credentials:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode, header};
//! use middleware_std::auth::{AuthLayer, Credentials, Principal, Rejection, Scheme};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let app = ServiceBuilder::new()
//!     .layer(AuthLayer::validator(Scheme::Basic, |credentials| async move {
//!         match credentials {
//!             // A real validator would look the user up; `matches` is constant time.
//!             Credentials::Basic { username, password } if password.matches("pw:with:colons") => {
//!                 Ok(Principal::new(username))
//!             }
//!             _ => Err(Rejection::new()),
//!         }
//!     }))
//!     .service(service_fn(|_: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("ok")))
//!     }));
//!
//! // base64("ada:pw:with:colons")
//! let req = Request::builder()
//!     .header(header::AUTHORIZATION, "Basic YWRhOnB3OndpdGg6Y29sb25z")
//!     .body(String::new())
//!     .unwrap();
//! assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```
//!
//! # Differences from tower-http
//!
//! tower-http's `ValidateRequestHeaderLayer::basic` / `::bearer` compare the header with the
//! expected value using `==` (time depends on the common prefix and the length), print the
//! expected header value — the secret — in `Debug`, answer `401` without a realm, do not mark
//! the header sensitive, and hand the handler no identity. Here the comparison is over
//! fixed-size digests in constant time, `Debug` redacts, the challenge carries a realm, every
//! failure is byte-identical, and the principal travels in the context. tower-http's
//! `AsyncRequireAuthorizationLayer` is closer to [`AuthLayer::validator`], but leaves parsing,
//! constant-time comparison and the failure response to you.

mod authenticate;
mod credentials;
mod future;
#[cfg(feature = "jwt")]
mod jwt;
mod layer;
mod principal;
mod service;
mod validator;

#[doc(inline)]
pub use self::{
    authenticate::{ApiKey, Authenticate, Basic, Bearer, Custom},
    credentials::{Credentials, Scheme, Secret},
    future::ResponseFuture,
    layer::AuthLayer,
    principal::{Principal, Rejection},
    service::Auth,
    validator::Validator,
};

#[cfg(feature = "jwt")]
#[doc(inline)]
pub use self::jwt::{Claims, Jwt, JwtKey, JwtKeyError};

#[cfg(test)]
mod tests;
