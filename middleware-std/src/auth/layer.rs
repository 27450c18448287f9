//! [`AuthLayer`] and the settings its services share.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http::{
    Extensions, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode,
    header::{self, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE},
};
use middleware_core::{Error, RequestExt};
use tower_layer::Layer;

use super::{ApiKey, Auth, Authenticate, Basic, Bearer, Custom, Principal, Scheme, Validator};

/// The realm sent in challenges unless [`AuthLayer::with_realm`] sets another.
const DEFAULT_REALM: &str = "restricted";

/// Authenticates requests and puts the [`Principal`] into the request's context.
///
/// Build it with a named constructor ([`basic`](Self::basic), [`bearer`](Self::bearer),
/// [`api_key`](Self::api_key), [`validator`](Self::validator), `jwt` with the `jwt` feature) or
/// with [`new`](Self::new) and an [`Authenticate`] value. `Debug` never shows a secret.
/// See the [module docs](super) for an example.
#[must_use]
pub struct AuthLayer<A> {
    authenticator: Arc<A>,
    settings: Arc<Settings>,
}

impl<A: Authenticate> AuthLayer<A> {
    /// A layer that authenticates with `authenticator`, realm `"restricted"`, no role or scope
    /// requirements.
    pub fn new(authenticator: A) -> Self {
        let settings = Settings::new(authenticator.scheme());
        Self {
            authenticator: Arc::new(authenticator),
            settings: Arc::new(settings),
        }
    }

    /// Sets the realm sent in the `WWW-Authenticate` challenge (quoted, with `"` and `\`
    /// escaped).
    ///
    /// # Panics
    ///
    /// When `realm` contains a control character other than tab (these cannot appear in a
    /// header); the realm is configuration, so this is a programming error.
    pub fn with_realm(mut self, realm: &str) -> Self {
        let settings = Arc::make_mut(&mut self.settings);
        settings.challenge = challenge(self.authenticator.scheme(), realm);
        settings.realm = realm.into();
        self
    }

    /// Requires the principal to hold `role`; a principal without it gets `403 Forbidden`.
    /// Every required role must be held.
    pub fn require_role(mut self, role: impl Into<Box<str>>) -> Self {
        Arc::make_mut(&mut self.settings).roles.push(role.into());
        self
    }

    /// Requires the principal to hold `scope`; a principal without it gets `403 Forbidden`.
    /// Every required scope must be held.
    pub fn require_scope(mut self, scope: impl Into<Box<str>>) -> Self {
        Arc::make_mut(&mut self.settings).scopes.push(scope.into());
        self
    }

    fn map_authenticator(self, f: impl FnOnce(A) -> A) -> Self
    where
        A: Clone,
    {
        Self {
            authenticator: Arc::new(f(Arc::unwrap_or_clone(self.authenticator))),
            settings: self.settings,
        }
    }
}

impl AuthLayer<Basic> {
    /// Basic authentication with one user; the principal's id is the user name.
    pub fn basic(username: &str, password: impl AsRef<[u8]>) -> Self {
        Self::new(Basic::new(username, password))
    }

    /// Adds a Basic user; the principal's id is the user name.
    pub fn with_user(self, username: &str, password: impl AsRef<[u8]>) -> Self {
        self.map_authenticator(|basic| basic.with_user(username, password))
    }

    /// Adds a Basic user who is granted `principal`.
    pub fn with_user_as(
        self,
        username: &str,
        password: impl AsRef<[u8]>,
        principal: Principal,
    ) -> Self {
        self.map_authenticator(|basic| basic.with_user_as(username, password, principal))
    }
}

impl AuthLayer<Bearer> {
    /// Bearer authentication with one static token granting `principal`.
    pub fn bearer(token: impl AsRef<[u8]>, principal: Principal) -> Self {
        Self::new(Bearer::new(token, principal))
    }

    /// Adds a bearer token granting `principal`.
    pub fn with_token(self, token: impl AsRef<[u8]>, principal: Principal) -> Self {
        self.map_authenticator(|bearer| bearer.with_token(token, principal))
    }
}

impl AuthLayer<ApiKey> {
    /// API key authentication: the value of header `header` must be `key`, which grants
    /// `principal`.
    pub fn api_key(header: HeaderName, key: impl AsRef<[u8]>, principal: Principal) -> Self {
        Self::new(ApiKey::new(header, key, principal))
    }

    /// Adds an API key granting `principal`.
    pub fn with_key(self, key: impl AsRef<[u8]>, principal: Principal) -> Self {
        self.map_authenticator(|api_key| api_key.with_key(key, principal))
    }
}

impl<V: Validator> AuthLayer<Custom<V>> {
    /// Reads `scheme` credentials and checks them with an asynchronous [`Validator`] (a closure
    /// returning a future works).
    pub fn validator(scheme: Scheme, validator: V) -> Self {
        Self::new(Custom::new(scheme, validator))
    }
}

impl<A> Clone for AuthLayer<A> {
    fn clone(&self) -> Self {
        Self {
            authenticator: Arc::clone(&self.authenticator),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<A: fmt::Debug> fmt::Debug for AuthLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(AuthLayer))
            .field("authenticator", &self.authenticator)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<S, A> Layer<S> for AuthLayer<A> {
    type Service = Auth<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth::from_parts(
            inner,
            Arc::clone(&self.authenticator),
            Arc::clone(&self.settings),
        )
    }
}

/// What every service of one layer shares: the challenge, the requirements.
#[derive(Clone)]
pub(crate) struct Settings {
    realm: Box<str>,
    challenge: HeaderValue,
    /// The header credentials are read from.
    sensitive: HeaderName,
    /// Whether `sensitive` must be declared to the context: not for the headers every logger
    /// already redacts (see [`declared_by_loggers`]).
    declare: bool,
    roles: Vec<Box<str>>,
    scopes: Vec<Box<str>>,
}

impl Settings {
    pub(crate) fn new(scheme: &Scheme) -> Self {
        Self {
            realm: DEFAULT_REALM.into(),
            challenge: challenge(scheme, DEFAULT_REALM),
            sensitive: scheme.header_name().clone(),
            declare: !declared_by_loggers(scheme.header_name()),
            roles: Vec::new(),
            scopes: Vec::new(),
        }
    }

    /// The one `401` response for every failure: same status, challenge and body whatever was
    /// wrong, rendered with the application's error renderer when the context has one.
    pub(crate) fn unauthorized<B>(&self, req: &Request<B>) -> Response<Bytes> {
        let error = Error::new(StatusCode::UNAUTHORIZED)
            .with_header(WWW_AUTHENTICATE, self.challenge.clone());
        req.render_error(&error)
    }

    /// Marks every value of the credentials header sensitive and, unless every logger redacts
    /// that header anyway, declares it to the request's context when it has one ([`admit`]
    /// declares it again, on the context it may have created). Runs before the credentials
    /// are even read, so it holds for valid, invalid and malformed values alike.
    ///
    /// Returns the header's value when it has exactly one, for the authenticator to read:
    /// found in one lookup when no header of the request is repeated (`len` counts values,
    /// `keys_len` names), the usual case.
    ///
    /// [`admit`]: Self::admit
    pub(crate) fn protect<'h>(
        &self,
        headers: &'h mut HeaderMap,
        extensions: &Extensions,
    ) -> Option<&'h HeaderValue> {
        if self.declare {
            if let Some(cx) = extensions.try_context() {
                cx.mark_sensitive_header(self.sensitive.clone());
            }
        }
        if headers.len() != headers.keys_len() {
            let mut values = headers.get_all(&self.sensitive).iter();
            if values.next().is_some() && values.next().is_some() {
                // Only a request that is about to be rejected has several; `entry` may grow the
                // map.
                if let header::Entry::Occupied(mut entry) = headers.entry(&self.sensitive) {
                    entry.iter_mut().for_each(|value| value.set_sensitive(true));
                }
                return None;
            }
        }
        let value = headers.get_mut(&self.sensitive)?;
        value.set_sensitive(true);
        Some(value)
    }

    /// Checks the requirements; when they are met, puts the principal into the context (which
    /// it creates if the request has none) and returns `None`, else returns the `403`.
    pub(crate) fn admit<B>(
        &self,
        principal: Principal,
        req: &mut Request<B>,
    ) -> Option<Response<Bytes>> {
        let allowed = self.roles.iter().all(|role| principal.has_role(role))
            && self.scopes.iter().all(|scope| principal.has_scope(scope));
        if !allowed {
            return Some(req.render_error(&Error::new(StatusCode::FORBIDDEN)));
        }
        let cx = req.context();
        if self.declare {
            // Again: `protect` may have found no context (a repeat only takes the lock).
            cx.mark_sensitive_header(self.sensitive.clone());
        }
        cx.insert(principal);
        None
    }
}

/// Headers on every logger's fixed deny list: declaring them would cost an allocation per
/// request (the first push into the context's list) and change nothing.
fn declared_by_loggers(name: &HeaderName) -> bool {
    [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE].contains(name)
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Settings))
            .field("realm", &self.realm)
            .field("roles", &self.roles)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The `WWW-Authenticate` challenge for `scheme` in `realm` (RFC 9110 §11.6.1).
fn challenge(scheme: &Scheme, realm: &str) -> HeaderValue {
    let mut value = String::with_capacity(realm.len() + 48);
    value.push_str(match scheme {
        Scheme::Basic => "Basic",
        Scheme::Bearer => "Bearer",
        Scheme::ApiKey(_) => "ApiKey",
    });
    value.push_str(" realm=");
    push_quoted(&mut value, realm);
    match scheme {
        Scheme::Basic => value.push_str(", charset=\"UTF-8\""),
        Scheme::Bearer => {}
        Scheme::ApiKey(header) => {
            value.push_str(", header=");
            push_quoted(&mut value, header.as_str());
        }
    }
    HeaderValue::from_bytes(value.as_bytes())
        .unwrap_or_else(|_| panic!("realm {realm:?} contains a control character"))
}

/// Appends `text` as an RFC 9110 quoted-string (`"` and `\` become quoted pairs).
fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

// ----- stack introspection -----

impl Settings {
    /// The entry of an auth layer or service (`A` its authenticator): names and counts, never a
    /// credential.
    pub(crate) fn describe<A>(&self, description: &mut middleware_core::describe::Description) {
        let entry = description.layer("AuthLayer");
        entry
            .setting("authenticator", crate::compose::short_name::<A>())
            .setting("header", &self.sensitive)
            .setting("realm", &*self.realm);
        if !self.roles.is_empty() {
            entry.setting("roles", self.roles.join("|"));
        }
        if !self.scopes.is_empty() {
            entry.setting("scopes", self.scopes.join("|"));
        }
    }
}

impl<A> middleware_core::Describe for AuthLayer<A> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.settings.describe::<A>(description);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_quotes_and_escapes_the_realm() {
        let value = challenge(&Scheme::Bearer, r#"a "quoted" \ realm"#);
        assert_eq!(value, r#"Bearer realm="a \"quoted\" \\ realm""#);
        let value = challenge(&Scheme::Basic, "api");
        assert_eq!(value, r#"Basic realm="api", charset="UTF-8""#);
        let value = challenge(&Scheme::ApiKey(HeaderName::from_static("x-api-key")), "api");
        assert_eq!(value, r#"ApiKey realm="api", header="x-api-key""#);
    }

    #[test]
    fn non_ascii_realm_is_sent_as_utf8_bytes() {
        let value = challenge(&Scheme::Bearer, "zoë");
        assert_eq!(value.as_bytes(), "Bearer realm=\"zoë\"".as_bytes());
    }

    #[test]
    fn every_value_of_the_credentials_header_is_flagged_before_it_is_read() {
        let name = HeaderName::from_static("x-auth-token");
        let settings = Settings::new(&Scheme::ApiKey(name.clone()));
        for values in [
            &[][..],
            &["valid-looking"],
            &["Bearer with-a-scheme"],
            &["two", "values"],
            &["three", "values", "here"],
            &["non-ascii \u{e9}"],
        ] {
            // With no other header repeated (found in one lookup), and with one (the slow path).
            for other_repeated in [false, true] {
                let mut req = Request::new(());
                for value in values {
                    req.headers_mut()
                        .append(&name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
                }
                req.headers_mut()
                    .insert("accept", HeaderValue::from_static("*/*"));
                if other_repeated {
                    req.headers_mut()
                        .append("accept", HeaderValue::from_static("text/html"));
                }
                let (mut parts, ()) = req.into_parts();
                let found = settings
                    .protect(&mut parts.headers, &parts.extensions)
                    .map(HeaderValue::as_bytes);
                // The credential is handed on only when it is the header's one value.
                let expected = match values {
                    [one] => Some(one.as_bytes()),
                    _ => None,
                };
                assert_eq!(found, expected, "{values:?}, {other_repeated}");
                assert!(
                    parts
                        .headers
                        .get_all(&name)
                        .iter()
                        .all(HeaderValue::is_sensitive),
                    "{values:?}, {other_repeated}"
                );
                assert!(
                    parts
                        .headers
                        .get_all("accept")
                        .iter()
                        .all(|value| !value.is_sensitive())
                );
            }
        }
    }

    #[test]
    fn only_headers_loggers_do_not_already_redact_are_declared() {
        for name in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
            assert!(!Settings::new(&Scheme::ApiKey(name)).declare);
        }
        assert!(!Settings::new(&Scheme::Bearer).declare);
        assert!(!Settings::new(&Scheme::Basic).declare);
        let custom = Scheme::ApiKey(HeaderName::from_static("api-key"));
        assert!(Settings::new(&custom).declare);
    }

    #[test]
    #[should_panic(expected = "control character")]
    fn realm_with_a_newline_is_a_programming_error() {
        let _ = challenge(&Scheme::Bearer, "api\r\nset-cookie: x=1");
    }
}
