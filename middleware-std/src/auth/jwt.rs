//! JSON Web Tokens (feature `jwt`): bearer tokens verified with `jsonwebtoken`.

use std::{fmt, sync::Arc, time::Duration};

use http::{Extensions, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use middleware_core::RequestExt;
use serde_json::{Map, Value};

use super::{
    AuthLayer, Principal, Rejection, Scheme,
    authenticate::{Authenticate, Verdict, sealed},
    credentials,
};

/// A key that verifies tokens of exactly one algorithm: HS256, HS384, HS512, RS256 or ES256,
/// optionally bound to one issuer and named by a key id.
///
/// Pinning the algorithm to the key is what stops algorithm confusion: a token whose header
/// names another algorithm (an HS256 token "signed" with an RSA public key, or `alg: none`) is
/// never checked against this key. Binding it to an issuer ([`with_issuer`](Self::with_issuer))
/// is what stops one identity provider from minting tokens in another's name. `Debug` shows the
/// algorithm, key id and issuer only.
///
/// ```
/// use middleware_std::auth::JwtKey;
///
/// let key = JwtKey::hs256(b"a shared secret of at least 32 bytes")?
///     .with_kid("2024-06")
///     .with_issuer("https://id.example.test");
/// // RFC 7518 section 3.2: an HS256 secret has at least 256 bits.
/// let short = JwtKey::hs256(b"too short").unwrap_err();
/// assert_eq!(short.to_string(), "hs256 secret shorter than 256 bits");
/// # Ok::<(), middleware_std::auth::JwtKeyError>(())
/// ```
#[derive(Clone)]
pub struct JwtKey {
    algorithm: Algorithm,
    key: DecodingKey,
    kid: Option<Box<str>>,
    issuer: Option<Box<str>>,
}

impl JwtKey {
    /// An HS256 (HMAC-SHA-256) shared secret of at least 32 bytes.
    ///
    /// # Errors
    ///
    /// When `secret` is shorter than 256 bits (the empty secret included): RFC 7518 §3.2
    /// forbids such keys, and a short secret can be found by brute force from one token.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, JwtKeyError> {
        Self::hmac(Algorithm::HS256, secret.as_ref())
    }

    /// An HS384 (HMAC-SHA-384) shared secret of at least 48 bytes.
    ///
    /// # Errors
    ///
    /// When `secret` is shorter than 384 bits (RFC 7518 §3.2).
    pub fn hs384(secret: impl AsRef<[u8]>) -> Result<Self, JwtKeyError> {
        Self::hmac(Algorithm::HS384, secret.as_ref())
    }

    /// An HS512 (HMAC-SHA-512) shared secret of at least 64 bytes.
    ///
    /// # Errors
    ///
    /// When `secret` is shorter than 512 bits (RFC 7518 §3.2).
    pub fn hs512(secret: impl AsRef<[u8]>) -> Result<Self, JwtKeyError> {
        Self::hmac(Algorithm::HS512, secret.as_ref())
    }

    /// An RS256 public key as PKCS#1 `RSAPublicKey` DER (`openssl rsa -RSAPublicKey_out
    /// -outform DER`). A malformed key makes every token fail verification.
    #[must_use]
    pub fn rs256_der(der: &[u8]) -> Self {
        Self::pinned(Algorithm::RS256, DecodingKey::from_rsa_der(der))
    }

    /// An RS256 public key from its JWK components: modulus `n` and exponent `e`, base64url.
    ///
    /// # Errors
    ///
    /// When either component is not valid base64url.
    pub fn rs256_components(n: &str, e: &str) -> Result<Self, JwtKeyError> {
        DecodingKey::from_rsa_components(n, e)
            .map(|key| Self::pinned(Algorithm::RS256, key))
            .map_err(|_| JwtKeyError::new(KeyErrorKind::Malformed))
    }

    /// An ES256 (P-256) public key as a SEC1 encoded point (the last 65 bytes of the
    /// `SubjectPublicKeyInfo` DER). A malformed key makes every token fail verification.
    #[must_use]
    pub fn es256_sec1(point: &[u8]) -> Self {
        Self::pinned(Algorithm::ES256, DecodingKey::from_ec_der(point))
    }

    /// An ES256 public key from its JWK components `x` and `y`, base64url.
    ///
    /// # Errors
    ///
    /// When either component is not valid base64url or not a P-256 coordinate.
    pub fn es256_components(x: &str, y: &str) -> Result<Self, JwtKeyError> {
        DecodingKey::from_ec_components(x, y)
            .map(|key| Self::pinned(Algorithm::ES256, key))
            .map_err(|_| JwtKeyError::new(KeyErrorKind::Malformed))
    }

    /// Names the key: a token whose header carries a `kid` is checked only with the key of
    /// that id, and a token naming an id no key has is rejected. Tokens without a `kid` are
    /// checked with every key of their algorithm (and issuer).
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<Box<str>>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Binds the key to `issuer`: it verifies only tokens whose `iss` is `issuer` (the claim
    /// is then required), and a token whose `iss` names an issuer some key is bound to is
    /// verified only with that issuer's keys. A key from a JWKS document is bound to the
    /// issuer that published it. Calling it again replaces the issuer; for a key shared by
    /// two issuers, add it twice.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<Box<str>>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    fn hmac(algorithm: Algorithm, secret: &[u8]) -> Result<Self, JwtKeyError> {
        // RFC 7518 §3.2: a key of the same size as the hash output or larger.
        let min_bits: u16 = match algorithm {
            Algorithm::HS384 => 384,
            Algorithm::HS512 => 512,
            _ => 256,
        };
        if secret.len() < usize::from(min_bits / 8) {
            return Err(JwtKeyError::new(KeyErrorKind::ShortSecret {
                algorithm,
                min_bits,
            }));
        }
        Ok(Self::pinned(algorithm, DecodingKey::from_secret(secret)))
    }

    fn pinned(algorithm: Algorithm, key: DecodingKey) -> Self {
        Self {
            algorithm,
            key,
            kid: None,
            issuer: None,
        }
    }

    /// Whether a token with this (unverified) header may be checked with this key: same
    /// algorithm, and the same `kid` when the token names one.
    fn accepts(&self, header: &jsonwebtoken::Header) -> bool {
        self.algorithm == header.alg
            && header
                .kid
                .as_deref()
                .is_none_or(|kid| self.kid.as_deref() == Some(kid))
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(JwtKey))
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The error returned for key material that cannot be a key: a malformed public key, or an
/// HMAC secret shorter than RFC 7518 §3.2 allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtKeyError {
    kind: KeyErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyErrorKind {
    Malformed,
    ShortSecret { algorithm: Algorithm, min_bits: u16 },
}

impl JwtKeyError {
    fn new(kind: KeyErrorKind) -> Self {
        Self { kind }
    }
}

impl fmt::Display for JwtKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            KeyErrorKind::Malformed => f.write_str("invalid jwt key"),
            KeyErrorKind::ShortSecret {
                algorithm,
                min_bits,
            } => {
                let name = format!("{algorithm:?}").to_ascii_lowercase();
                write!(f, "{name} secret shorter than {min_bits} bits")
            }
        }
    }
}

impl std::error::Error for JwtKeyError {}

/// Verifies `Authorization: Bearer <jwt>` tokens.
///
/// A token is accepted when all of these hold:
///
/// - its header has no `crit` (we understand no extension, so any `crit`, even `[]`, is
///   refused, as RFC 7515 §4.1.11 requires of extensions a recipient does not understand);
/// - its signature verifies with a key pinned to the token's `alg` and, when the header names
///   a `kid`, with the key of that id only (a `kid` no key has is refused);
/// - its `iss`, if any, is one string, and for a key bound to an issuer
///   ([`JwtKey::with_issuer`]) it is that issuer; a token whose `iss` names an issuer some key
///   is bound to is never accepted with an unbound key or another issuer's key, so one
///   identity provider cannot mint tokens for another;
/// - it has an `exp` in the future and a string `sub`, its `nbf` (if any) has passed, and its
///   `aud` matches the configured audiences (when configured), with the configured leeway
///   (60 s by default).
///
/// Bind every key to its issuer and configure an audience in production: an unbound key
/// checks no `iss`, and without an audience `aud` is not checked. Times are read from the
/// system clock (by `jsonwebtoken`), not from tokio's. Every refusal, whatever its reason, is
/// the layer's one `401`.
///
/// The principal's id is `sub`, its roles the strings of the `roles` claim (configurable), its
/// scopes the space-separated `scope` claim or the `scp` claim. The whole claim set goes into
/// the context as [`Claims`]. See the [module docs](super) for how the layer is used.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), middleware_std::auth::JwtKeyError> {
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode, header};
/// use middleware_std::auth::{AuthLayer, Jwt, JwtKey};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// // Two identity providers: neither key verifies tokens in the other's name.
/// let a = JwtKey::hs256(b"the secret of provider a, 32 bytes+")?.with_issuer("https://a.test");
/// let jwt = Jwt::new(a)
///     .with_key(
///         JwtKey::hs256(b"the secret of provider b, 32 bytes+")?
///             .with_kid("b-2024")
///             .with_issuer("https://b.test"),
///     )
///     .with_audience("api");
/// let app = ServiceBuilder::new()
///     .layer(AuthLayer::jwt(jwt))
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("ok")))
///     }));
///
/// let req = Request::builder()
///     .header(header::AUTHORIZATION, "Bearer not.a.token")
///     .body(String::new())
///     .unwrap();
/// assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Jwt {
    keys: Vec<(JwtKey, Validation)>,
    audiences: Vec<String>,
    leeway: Duration,
    roles_claim: Box<str>,
}

impl Jwt {
    /// Verifies tokens with `key`.
    #[must_use]
    pub fn new(key: JwtKey) -> Self {
        Self {
            keys: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            roles_claim: "roles".into(),
        }
        .with_key(key)
    }

    /// Adds a key (for rotation, another issuer, or another algorithm, each pinned to its key).
    #[must_use]
    pub fn with_key(mut self, key: JwtKey) -> Self {
        self.keys.push((key, Validation::new(Algorithm::HS256)));
        self.rebuild()
    }

    /// Accepts tokens for `audience` (`aud`); once set, `aud` is required. Call again to accept
    /// several audiences.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self.rebuild()
    }

    /// Clock-skew allowance for `exp` and `nbf` (whole seconds; default 60 s).
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.rebuild()
    }

    /// Reads roles from claim `name` instead of `roles`.
    #[must_use]
    pub fn with_roles_claim(mut self, name: impl Into<Box<str>>) -> Self {
        self.roles_claim = name.into();
        self
    }

    /// Recomputes each key's validation rules after a builder call.
    fn rebuild(mut self) -> Self {
        for (key, validation) in &mut self.keys {
            let mut rules = Validation::new(key.algorithm);
            rules.leeway = self.leeway.as_secs();
            rules.validate_exp = true;
            rules.validate_nbf = true;
            let mut required = vec!["exp", "sub"];
            match &key.issuer {
                Some(issuer) => {
                    rules.set_issuer(&[&**issuer]);
                    required.push("iss");
                }
                None => rules.iss = None,
            }
            if self.audiences.is_empty() {
                rules.validate_aud = false;
            } else {
                rules.set_audience(&self.audiences);
                required.push("aud");
            }
            rules.set_required_spec_claims(&required);
            *validation = rules;
        }
        self
    }

    /// Whether `iss` names an issuer some key is bound to: such a token must not be accepted
    /// by an unbound key.
    fn is_bound_issuer(&self, iss: &str) -> bool {
        self.keys
            .iter()
            .any(|(key, _)| key.issuer.as_deref() == Some(iss))
    }

    fn principal(&self, claims: &Map<String, Value>) -> Option<Principal> {
        let mut principal = Principal::new(claims.get("sub")?.as_str()?);
        for role in strings(claims.get(&*self.roles_claim)) {
            principal = principal.with_role(role);
        }
        let present = |name: &str| claims.get(name).filter(|value| !value.is_null());
        let scopes = present("scope").or_else(|| present("scp"));
        for scope in strings(scopes) {
            principal = principal.with_scope(scope);
        }
        Some(principal)
    }
}

/// The strings in a claim: a space-separated string, or an array of strings (others ignored).
fn strings(claim: Option<&Value>) -> Vec<&str> {
    match claim {
        Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Jwt))
            .field(
                "keys",
                &self.keys.iter().map(|(key, _)| key).collect::<Vec<_>>(),
            )
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("roles_claim", &self.roles_claim)
            .finish()
    }
}

static BEARER: Scheme = Scheme::Bearer;

impl sealed::Sealed for Jwt {}

impl Authenticate for Jwt {
    type Future = std::future::Ready<Result<Principal, Rejection>>;

    fn scheme(&self) -> &Scheme {
        &BEARER
    }

    fn authenticate(
        &self,
        credential: Option<&HeaderValue>,
        extensions: &mut Extensions,
    ) -> Verdict<Self::Future> {
        let Some(token) = credentials::bearer_str(credential) else {
            return Verdict::Denied;
        };
        // Unverified: only used to pick the key; `decode` checks the header again. The token
        // is at most 8 KiB (the credentials bound), so is the JSON parsed here.
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Verdict::Denied;
        };
        if header.crit.is_some() {
            return Verdict::Denied;
        }
        for (key, validation) in self.keys.iter().filter(|(key, _)| key.accepts(&header)) {
            let Ok(data) = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            else {
                continue;
            };
            // RFC 7519 §4.1.1: `iss` is one string. `jsonwebtoken` also takes an array that
            // merely contains the key's issuer, which would let B's key vouch for ["B", "A"].
            let iss = match data.claims.get("iss") {
                None => None,
                Some(Value::String(iss)) => Some(iss.as_str()),
                Some(_) => return Verdict::Denied,
            };
            if key.issuer.is_none() && iss.is_some_and(|iss| self.is_bound_issuer(iss)) {
                continue;
            }
            let Some(principal) = self.principal(&data.claims) else {
                return Verdict::Denied;
            };
            extensions.context().insert(Claims(Arc::new(data.claims)));
            return Verdict::Granted(principal);
        }
        Verdict::Denied
    }
}

impl AuthLayer<Jwt> {
    /// Bearer authentication with JSON Web Tokens (feature `jwt`).
    pub fn jwt(jwt: Jwt) -> Self {
        Self::new(jwt)
    }
}

/// The verified claims of a JWT, in the request's context next to the [`Principal`].
///
/// `Debug` shows the claim names only (claims often carry personal data).
#[derive(Clone, PartialEq)]
pub struct Claims(pub(crate) Arc<Map<String, Value>>);

impl Claims {
    /// One claim.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The `sub` claim.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.get("sub").and_then(Value::as_str)
    }

    /// Every claim.
    #[must_use]
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Deserializes the claims into your own type.
    ///
    /// # Errors
    ///
    /// When the claims do not fit `T`.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(Value::Object((*self.0).clone()))
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(stringify!(Claims))
            .field(&self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}
