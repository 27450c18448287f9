//! JSON Web Tokens (feature `jwt`): bearer tokens verified with `jsonwebtoken`.

use std::{fmt, sync::Arc, time::Duration};

use http::{Extensions, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use middleware_core::RequestExt;
use serde_json::{Map, Value};

use super::{
    AuthLayer, Principal, Rejection, Scheme,
    authenticate::{Authenticate, Verdict, sealed},
    credentials,
};

/// A key that verifies tokens of exactly one algorithm: HS256, RS256 or ES256.
///
/// Pinning the algorithm to the key is what stops algorithm confusion: a token whose header
/// names another algorithm (an HS256 token "signed" with an RSA public key, or `alg: none`) is
/// never checked against this key. `Debug` shows the algorithm and key id only.
#[derive(Clone)]
pub struct JwtKey {
    algorithm: Algorithm,
    key: DecodingKey,
    kid: Option<Box<str>>,
}

impl JwtKey {
    /// An HS256 (HMAC-SHA-256) shared secret.
    #[must_use]
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        Self::pinned(Algorithm::HS256, DecodingKey::from_secret(secret.as_ref()))
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
            .map_err(|_| JwtKeyError(()))
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
            .map_err(|_| JwtKeyError(()))
    }

    /// Only tokens whose header carries this `kid` (or no `kid`) are checked with this key.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<Box<str>>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    fn pinned(algorithm: Algorithm, key: DecodingKey) -> Self {
        Self {
            algorithm,
            key,
            kid: None,
        }
    }

    fn accepts(&self, header: &jsonwebtoken::Header) -> bool {
        self.algorithm == header.alg
            && match (&self.kid, &header.kid) {
                (Some(want), Some(got)) => **want == **got,
                _ => true,
            }
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(JwtKey))
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The error returned for key material that cannot be a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtKeyError(());

impl fmt::Display for JwtKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid jwt key")
    }
}

impl std::error::Error for JwtKeyError {}

/// Verifies `Authorization: Bearer <jwt>` tokens.
///
/// A token is accepted when its signature verifies with a key pinned to the token's `alg` (and
/// `kid`, when both name one), it has an `exp` in the future and a string `sub`, its `nbf` (if
/// any) has passed, and its `iss` and `aud` match the configured ones (when configured), all
/// with the configured leeway (60 s by default). Configure an audience in production: without
/// one, `aud` is not checked. Times are read from the system clock (by `jsonwebtoken`), not
/// from tokio's.
///
/// The principal's id is `sub`, its roles the strings of the `roles` claim (configurable), its
/// scopes the space-separated `scope` claim or the `scp` claim. The whole claim set goes into
/// the context as [`Claims`]. See the [module docs](super) for an example.
#[derive(Clone)]
pub struct Jwt {
    keys: Vec<(JwtKey, Validation)>,
    issuers: Vec<String>,
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
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            roles_claim: "roles".into(),
        }
        .with_key(key)
    }

    /// Adds a key (for rotation, or to accept several algorithms, each pinned to its key).
    #[must_use]
    pub fn with_key(mut self, key: JwtKey) -> Self {
        self.keys.push((key, Validation::new(Algorithm::HS256)));
        self.rebuild()
    }

    /// Accepts tokens from `issuer` (`iss`); once set, `iss` is required. Call again to accept
    /// several issuers.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
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
            if self.issuers.is_empty() {
                rules.iss = None;
            } else {
                rules.set_issuer(&self.issuers);
                required.push("iss");
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
            .field("issuers", &self.issuers)
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
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Verdict<Self::Future> {
        let Some(token) = credentials::bearer(headers) else {
            return Verdict::Denied;
        };
        // Unverified: only used to pick the key; `decode` checks the header again.
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Verdict::Denied;
        };
        for (key, validation) in self.keys.iter().filter(|(key, _)| key.accepts(&header)) {
            let Ok(data) = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            else {
                continue;
            };
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
