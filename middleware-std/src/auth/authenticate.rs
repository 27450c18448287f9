//! The ways a layer can authenticate: static credential sets ([`Basic`], [`Bearer`],
//! [`ApiKey`]) checked synchronously, and [`Custom`] validators checked asynchronously.

use std::{fmt, future::Future};

use http::{Extensions, HeaderName, HeaderValue};

use super::{
    Principal, Rejection, Scheme, Validator,
    credentials::{self, Digest, Entry, digest},
};

/// How an [`AuthLayer`](super::AuthLayer) authenticates a request: implemented by [`Basic`],
/// [`Bearer`], [`ApiKey`], [`Custom`] and, with the `jwt` feature, `Jwt`.
///
/// The trait is sealed; write a [`Validator`] to plug in your own check.
pub trait Authenticate: sealed::Sealed {
    /// The future of an asynchronous check. Static credential sets answer synchronously and
    /// never create one.
    type Future: Future<Output = Result<Principal, Rejection>>;

    /// The credentials this authenticator reads (for the challenge and the sensitive header).
    #[doc(hidden)]
    fn scheme(&self) -> &Scheme;

    /// Checks the request's credentials: `credential` is the only value of the scheme's
    /// header (`None` when it is missing or repeated). May add values (e.g. JWT claims) to
    /// `extensions`.
    #[doc(hidden)]
    fn authenticate(
        &self,
        credential: Option<&HeaderValue>,
        extensions: &mut Extensions,
    ) -> Verdict<Self::Future>;
}

/// An authenticator's answer. Not public API.
// Named only through the sealed `Authenticate` trait, which no one else can implement.
#[allow(unnameable_types)]
#[doc(hidden)]
#[derive(Debug)]
pub enum Verdict<F> {
    /// Authenticated.
    Granted(Principal),
    /// No or wrong credentials.
    Denied,
    /// Decided when the future completes.
    Pending(F),
}

pub(crate) mod sealed {
    // Sealed on purpose: nameable only here, so no one else can implement `Authenticate`.
    #[allow(unnameable_types)]
    pub trait Sealed {}
}

/// Never constructed: the future type of the synchronous authenticators.
type NoFuture = std::future::Ready<Result<Principal, Rejection>>;

static BASIC: Scheme = Scheme::Basic;
static BEARER: Scheme = Scheme::Bearer;

/// Static Basic credentials: user names and passwords, each granting a [`Principal`].
///
/// Only SHA-256 digests of the user names and passwords are kept; a presented pair is hashed and
/// compared with every entry in constant time. `Debug` shows the number of users only.
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct Basic {
    entries: Vec<Entry<Principal>>,
}

impl Basic {
    /// One user; the principal's id is the user name.
    #[must_use]
    pub fn new(username: &str, password: impl AsRef<[u8]>) -> Self {
        Self {
            entries: Vec::new(),
        }
        .with_user(username, password)
    }

    /// Adds a user; the principal's id is the user name.
    #[must_use]
    pub fn with_user(self, username: &str, password: impl AsRef<[u8]>) -> Self {
        self.with_user_as(username, password, Principal::new(username))
    }

    /// Adds a user who is granted `principal` (to give it roles or scopes).
    #[must_use]
    pub fn with_user_as(
        mut self,
        username: &str,
        password: impl AsRef<[u8]>,
        principal: Principal,
    ) -> Self {
        self.entries.push(Entry {
            user: digest(username.as_bytes()),
            secret: digest(password.as_ref()),
            grant: principal,
        });
        self
    }
}

impl fmt::Debug for Basic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Basic))
            .field("users", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl sealed::Sealed for Basic {}

impl Authenticate for Basic {
    type Future = NoFuture;

    fn scheme(&self) -> &Scheme {
        &BASIC
    }

    fn authenticate(
        &self,
        credential: Option<&HeaderValue>,
        _: &mut Extensions,
    ) -> Verdict<NoFuture> {
        let found = credentials::basic(credential, |username, password| {
            credentials::find(
                &self.entries,
                Some(&digest(username.as_bytes())),
                &digest(password.as_bytes()),
            )
        });
        match found.flatten() {
            Some(principal) => Verdict::Granted(principal.clone()),
            None => Verdict::Denied,
        }
    }
}

/// Static bearer tokens, each granting a [`Principal`].
///
/// Only SHA-256 digests of the tokens are kept; `Debug` shows the number of tokens only.
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct Bearer {
    entries: Vec<Entry<Principal>>,
}

impl Bearer {
    /// One token granting `principal`.
    #[must_use]
    pub fn new(token: impl AsRef<[u8]>, principal: Principal) -> Self {
        Self {
            entries: Vec::new(),
        }
        .with_token(token, principal)
    }

    /// Adds a token granting `principal`.
    #[must_use]
    pub fn with_token(mut self, token: impl AsRef<[u8]>, principal: Principal) -> Self {
        self.entries.push(token_entry(token.as_ref(), principal));
        self
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Bearer))
            .field("tokens", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl sealed::Sealed for Bearer {}

impl Authenticate for Bearer {
    type Future = NoFuture;

    fn scheme(&self) -> &Scheme {
        &BEARER
    }

    fn authenticate(
        &self,
        credential: Option<&HeaderValue>,
        _: &mut Extensions,
    ) -> Verdict<NoFuture> {
        let found =
            credentials::bearer(credential).and_then(|token| find_token(&self.entries, token));
        found.map_or(Verdict::Denied, |principal| {
            Verdict::Granted(principal.clone())
        })
    }
}

/// Static API keys read from one header (e.g. `x-api-key`), each granting a [`Principal`].
///
/// Only SHA-256 digests of the keys are kept; `Debug` shows the header name and the number of
/// keys only. See the [module docs](super) for an example.
#[derive(Clone)]
pub struct ApiKey {
    scheme: Scheme,
    entries: Vec<Entry<Principal>>,
}

impl ApiKey {
    /// One key, read from header `header`, granting `principal`.
    #[must_use]
    pub fn new(header: HeaderName, key: impl AsRef<[u8]>, principal: Principal) -> Self {
        Self {
            scheme: Scheme::ApiKey(header),
            entries: Vec::new(),
        }
        .with_key(key, principal)
    }

    /// Adds a key granting `principal`.
    #[must_use]
    pub fn with_key(mut self, key: impl AsRef<[u8]>, principal: Principal) -> Self {
        self.entries.push(token_entry(key.as_ref(), principal));
        self
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ApiKey))
            .field("header", self.scheme.header_name())
            .field("keys", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl sealed::Sealed for ApiKey {}

impl Authenticate for ApiKey {
    type Future = NoFuture;

    fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    fn authenticate(
        &self,
        credential: Option<&HeaderValue>,
        _: &mut Extensions,
    ) -> Verdict<NoFuture> {
        let found = credentials::api_key(credential)
            .and_then(|key| find_token(&self.entries, key.as_bytes()));
        found.map_or(Verdict::Denied, |principal| {
            Verdict::Granted(principal.clone())
        })
    }
}

/// SHA-256 of the empty string: the "user" of every token entry, computed once
/// (`the_empty_digest_is_sha256_of_nothing` checks it). Token checks skip the user.
const EMPTY_DIGEST: Digest = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

fn token_entry(token: &[u8], principal: Principal) -> Entry<Principal> {
    Entry {
        user: EMPTY_DIGEST,
        secret: digest(token),
        grant: principal,
    }
}

fn find_token<'a>(entries: &'a [Entry<Principal>], token: &[u8]) -> Option<&'a Principal> {
    credentials::find(entries, None, &digest(token))
}

/// Credentials of one [`Scheme`] checked by your [`Validator`].
///
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct Custom<V> {
    scheme: Scheme,
    validator: V,
}

impl<V> Custom<V> {
    /// Reads `scheme` credentials and checks them with `validator`.
    #[must_use]
    pub fn new(scheme: Scheme, validator: V) -> Self {
        Self { scheme, validator }
    }
}

impl<V> fmt::Debug for Custom<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Custom))
            .field("scheme", &self.scheme)
            .field("validator", &std::any::type_name::<V>())
            .finish()
    }
}

impl<V> sealed::Sealed for Custom<V> {}

impl<V: Validator> Authenticate for Custom<V> {
    type Future = V::Future;

    fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    fn authenticate(
        &self,
        credential: Option<&HeaderValue>,
        _: &mut Extensions,
    ) -> Verdict<V::Future> {
        match self.scheme.credentials(credential) {
            Some(credentials) => Verdict::Pending(self.validator.validate(credentials)),
            None => Verdict::Denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_digest_is_sha256_of_nothing() {
        assert_eq!(EMPTY_DIGEST, digest(b""));
    }
}
