//! Reading credentials from request headers, and comparing secrets in constant time.
//!
//! Everything here treats header bytes as hostile: one header value only, at most
//! [`MAX_CREDENTIALS_LEN`] bytes, a strict `scheme SP token68` shape, base64 with canonical
//! padding, UTF-8 user names and passwords. Whatever fails any check is simply "no credentials";
//! the layer turns that into the same `401` as a wrong password.

use std::fmt;

use base64::Engine as _;
use http::{HeaderName, HeaderValue, header::AUTHORIZATION};
use sha2::{Digest as _, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Credential headers longer than this (8 KiB) are rejected before any decoding.
pub(crate) const MAX_CREDENTIALS_LEN: usize = 8 * 1024;

/// Room for the decoded payload of the longest accepted Basic header (base64 is 4 → 3).
const BASIC_BUFFER: usize = MAX_CREDENTIALS_LEN / 4 * 3 + 3;

/// Which credentials a layer reads, and so which challenge it sends.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `Authorization: Basic base64(user:password)` (RFC 7617).
    Basic,
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer,
    /// The whole value of the named header is the key (e.g. `x-api-key: <key>`).
    ApiKey(HeaderName),
}

impl Scheme {
    /// The header the credentials are read from.
    #[must_use]
    pub fn header_name(&self) -> &HeaderName {
        match self {
            Self::Basic | Self::Bearer => &AUTHORIZATION,
            Self::ApiKey(name) => name,
        }
    }

    /// Reads this scheme's credentials from `value` (the only value of its header) into owned
    /// [`Credentials`], or `None` when they are missing or malformed.
    pub(crate) fn credentials(&self, value: Option<&HeaderValue>) -> Option<Credentials> {
        match self {
            Self::Basic => basic(value, |username, password| Credentials::Basic {
                username: username.to_owned(),
                password: Secret::new(password),
            }),
            Self::Bearer => bearer_str(value).map(|token| Credentials::Bearer {
                token: Secret::new(token),
            }),
            Self::ApiKey(_) => api_key(value).map(|key| Credentials::ApiKey {
                key: Secret::new(key),
            }),
        }
    }
}

/// Credentials handed to a [`Validator`](super::Validator), already checked for shape.
///
/// `Debug` shows the user name of Basic credentials and redacts every secret. There is no `==`:
/// it would compare the secrets in variable time; match the variant and use
/// [`Secret::matches`].
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// From `Authorization: Basic`. The password may contain `:`; the user name cannot.
    Basic {
        /// The user name (UTF-8, may be empty).
        username: String,
        /// The password.
        password: Secret,
    },
    /// From `Authorization: Bearer`.
    Bearer {
        /// The token (token68 characters).
        token: Secret,
    },
    /// From the configured API key header.
    ApiKey {
        /// The key (visible ASCII).
        key: Secret,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, password } => f
                .debug_struct("Credentials::Basic")
                .field("username", username)
                .field("password", password)
                .finish(),
            Self::Bearer { token } => f
                .debug_struct("Credentials::Bearer")
                .field("token", token)
                .finish(),
            Self::ApiKey { key } => f
                .debug_struct("Credentials::ApiKey")
                .field("key", key)
                .finish(),
        }
    }
}

/// A secret string: `Debug` prints `[redacted]`, and [`Secret::matches`] compares in constant
/// time.
///
/// `Secret` implements neither `PartialEq` nor `Hash`: `==` on strings stops at the first
/// differing byte, so its time would tell an attacker how much of a guess was right.
///
/// ```
/// use middleware_std::auth::Secret;
///
/// let presented = Secret::new("s3cr3t");
/// assert!(presented.matches("s3cr3t"));
/// assert!(!presented.matches("s3cr3"));
/// ```
#[derive(Clone)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: impl Into<Box<str>>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Keep it out of logs and error messages.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `expected` in constant time: both sides are hashed with SHA-256 and the
    /// digests compared with `subtle`, so neither the length nor a common prefix shows in the
    /// timing.
    #[must_use]
    pub fn matches(&self, expected: impl AsRef<[u8]>) -> bool {
        digest(self.0.as_bytes())
            .ct_eq(&digest(expected.as_ref()))
            .into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A SHA-256 digest of a secret.
pub(crate) type Digest = [u8; 32];

/// Hashes a secret for constant-time comparison.
pub(crate) fn digest(secret: &[u8]) -> Digest {
    Sha256::digest(secret).into()
}

/// One stored credential: the digests of its user name (empty for tokens) and secret, and the
/// principal it grants.
#[derive(Clone)]
pub(crate) struct Entry<P> {
    pub(crate) user: Digest,
    pub(crate) secret: Digest,
    pub(crate) grant: P,
}

/// Finds the entry whose user and secret digests equal the presented ones. Without a `user`
/// (tokens and keys, whose entries all have the same empty user) only secrets are compared.
///
/// Every entry is compared, and the comparisons and the selection are constant time, so the
/// time taken depends only on the number of entries, never on the presented bytes.
pub(crate) fn find<'a, P>(
    entries: &'a [Entry<P>],
    user: Option<&Digest>,
    secret: &Digest,
) -> Option<&'a P> {
    let mut found = subtle::Choice::from(0);
    let mut index = 0_u64;
    for (i, entry) in (0_u64..).zip(entries) {
        let user_ok = user.map_or(subtle::Choice::from(1), |user| entry.user.ct_eq(user));
        let hit = user_ok & entry.secret.ct_eq(secret);
        index.conditional_assign(&i, hit);
        found |= hit;
    }
    if bool::from(found) {
        usize::try_from(index)
            .ok()
            .and_then(|i| entries.get(i))
            .map(|entry| &entry.grant)
    } else {
        None
    }
}

/// The bytes of a credentials header's only value (the layer passes `None` when the header is
/// missing or repeated), if it is non-empty and at most [`MAX_CREDENTIALS_LEN`] bytes.
fn checked(value: Option<&HeaderValue>) -> Option<&[u8]> {
    let value = value?.as_bytes();
    (!value.is_empty() && value.len() <= MAX_CREDENTIALS_LEN).then_some(value)
}

/// `<scheme> SP <token68>` from the `Authorization` value: the scheme name matched without
/// regard to case (RFC 9110 §11.1), exactly one space, and a well-formed token68 (RFC 9110
/// §11.2). Anything else — a scheme alone, extra or other whitespace, parameters — is `None`.
fn authorization<'h>(value: Option<&'h HeaderValue>, scheme: &str) -> Option<&'h [u8]> {
    let value = checked(value)?;
    let space = value.iter().position(|&b| b == b' ')?;
    let (name, token) = (&value[..space], &value[space + 1..]);
    (name.eq_ignore_ascii_case(scheme.as_bytes()) && is_token68(token)).then_some(token)
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_token68(token: &[u8]) -> bool {
    let body = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body > 0 && token[..body].iter().all(|&b| TOKEN68[usize::from(b)])
}

/// The characters of a token68 before its padding, as a table: one load per byte.
static TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        // `b < 256`, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

/// The bearer token's bytes (token68: ASCII), for a check that hashes them.
pub(crate) fn bearer(value: Option<&HeaderValue>) -> Option<&[u8]> {
    authorization(value, "Bearer")
}

/// The bearer token, as a string (token68 is ASCII).
pub(crate) fn bearer_str(value: Option<&HeaderValue>) -> Option<&str> {
    bearer(value).and_then(|token| std::str::from_utf8(token).ok())
}

/// Decodes Basic credentials into a stack buffer and calls `f(username, password)`, splitting on
/// the first `:`. Rejects bad base64, non-canonical padding, non-UTF-8 and a missing colon.
pub(crate) fn basic<R>(value: Option<&HeaderValue>, f: impl FnOnce(&str, &str) -> R) -> Option<R> {
    let token = authorization(value, "Basic")?;
    let mut buffer = [0_u8; BASIC_BUFFER];
    let len = base64::engine::general_purpose::STANDARD
        .decode_slice(token, &mut buffer)
        .ok()?;
    let text = std::str::from_utf8(&buffer[..len]).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(f(username, password))
}

/// The API key: the only value of its header, all visible ASCII.
pub(crate) fn api_key(value: Option<&HeaderValue>) -> Option<&str> {
    let value = checked(value)?;
    if !value.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    std::str::from_utf8(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token68_table_is_the_grammar_for_every_byte() {
        for b in 0..=u8::MAX {
            let grammar =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(TOKEN68[usize::from(b)], grammar, "byte {b:#04x}");
            // Padding only at the end, and never alone.
            assert_eq!(is_token68(&[b]), grammar, "byte {b:#04x}");
            assert_eq!(is_token68(&[b, b'=', b'=']), grammar, "byte {b:#04x}");
            assert_eq!(is_token68(&[b'a', b, b'a']), grammar, "byte {b:#04x}");
        }
        assert!(!is_token68(b"=="));
        assert!(!is_token68(b"a=b"));
    }
}
