//! The [`Validator`] trait: asynchronous credential checks written by the application.

use std::future::Future;

use super::{Credentials, Principal, Rejection};

/// Checks credentials asynchronously (a database lookup, a call to an identity service) and
/// returns the [`Principal`] they belong to, or a [`Rejection`].
///
/// Implemented for closures `Fn(Credentials) -> impl Future<Output = Result<Principal,
/// Rejection>>`. The future is stored in the layer's response future as it is, without boxing:
/// the associated type names it.
///
/// The credentials have already passed the layer's shape checks (one header, at most 8 KiB,
/// well-formed scheme and encoding). To compare a secret, use
/// [`Secret::matches`](super::Secret::matches), which is constant time.
///
/// ```
/// use middleware_std::auth::{Credentials, Principal, Rejection, Validator};
///
/// let validator = |credentials: Credentials| async move {
///     match credentials {
///         Credentials::Bearer { token } if token.matches("s3cr3t") => Ok(Principal::new("ci")),
///         _ => Err(Rejection::new()),
///     }
/// };
/// # fn is_validator(_: &impl Validator) {}
/// # is_validator(&validator);
/// ```
pub trait Validator {
    /// The future `validate` returns.
    type Future: Future<Output = Result<Principal, Rejection>>;

    /// Checks `credentials`.
    fn validate(&self, credentials: Credentials) -> Self::Future;
}

impl<F, Fut> Validator for F
where
    F: Fn(Credentials) -> Fut,
    Fut: Future<Output = Result<Principal, Rejection>>,
{
    type Future = Fut;

    fn validate(&self, credentials: Credentials) -> Self::Future {
        self(credentials)
    }
}
