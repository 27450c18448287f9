use std::{borrow::Cow, fmt, sync::Arc};

use http::HeaderName;
use tower_layer::Layer;
use tracing::Level;

use super::{CaptureRequestBody, DefaultLevel, Log, PassRequestBody, headers::HeaderPolicy};

/// Query keys whose values are masked by default when query logging is on (compared after
/// percent-decoding, ASCII-case-insensitively).
pub(crate) const SENSITIVE_QUERY_KEYS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "assertion",
    "auth",
    "auth_token",
    "client_assertion",
    "client_secret",
    "code",
    "code_verifier",
    "credential",
    "id_token",
    "jwt",
    "key",
    "otp",
    "passwd",
    "password",
    "private_key",
    "pwd",
    "refresh_token",
    "secret",
    "session",
    "session_id",
    "sessionid",
    "sig",
    "signature",
    "token",
    "x-amz-credential",
    "x-amz-security-token",
    "x-amz-signature",
    "x-goog-credential",
    "x-goog-signature",
];

/// Settings shared by every request of one layer.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) span_level: Level,
    pub(crate) query: bool,
    pub(crate) query_keys: Vec<Cow<'static, str>>,
    pub(crate) headers: bool,
    pub(crate) header_policy: HeaderPolicy,
    pub(crate) response_body: Option<usize>,
    pub(crate) create_context: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            span_level: Level::INFO,
            query: false,
            query_keys: SENSITIVE_QUERY_KEYS
                .iter()
                .map(|key| Cow::Borrowed(*key))
                .collect(),
            headers: false,
            header_policy: HeaderPolicy::default(),
            response_body: None,
            create_context: false,
        }
    }
}

/// Logs every request with `tracing`: one span, one access event. See the
/// [module docs](super).
#[derive(Clone)]
#[must_use]
pub struct LogLayer<L = DefaultLevel, C = PassRequestBody> {
    pub(crate) config: Arc<Config>,
    pub(crate) level: L,
    pub(crate) request_body: C,
}

impl LogLayer {
    /// Safe defaults: span at `INFO`, event levels by [`DefaultLevel`], no query string, no
    /// headers, no bodies.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config::default()),
            level: DefaultLevel::new(),
            request_body: PassRequestBody,
        }
    }
}

impl Default for LogLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<L, C> LogLayer<L, C> {
    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The level of the request span (`INFO` by default). A subscriber that filters the span
    /// out still sees the access event, without the span's fields.
    pub fn span_level(mut self, level: Level) -> Self {
        self.config().span_level = level;
        self
    }

    /// Chooses the access event's level with `level` (a [`MakeLevel`](super::MakeLevel): a
    /// configured [`DefaultLevel`] or a closure).
    pub fn level<L2>(self, level: L2) -> LogLayer<L2, C> {
        LogLayer {
            config: self.config,
            level,
            request_body: self.request_body,
        }
    }

    /// Logs the query string as `url.query` (off by default: query strings carry tokens). The
    /// values of sensitive keys are masked as `[redacted]`: `access_token`, `api_key`,
    /// `apikey`, `assertion`, `auth`, `auth_token`, `client_assertion`, `client_secret`,
    /// `code`, `code_verifier`, `credential`, `id_token`, `jwt`, `key`, `otp`, `passwd`,
    /// `password`, `private_key`, `pwd`, `refresh_token`, `secret`, `session`, `session_id`,
    /// `sessionid`, `sig`, `signature`, `token`, `x-amz-credential`, `x-amz-security-token`,
    /// `x-amz-signature`, `x-goog-credential`, `x-goog-signature`, and those added with
    /// [`mask_query_key`](Self::mask_query_key). Keys are matched after percent-decoding,
    /// ASCII-case-insensitively, with or without a `[...]` suffix. The same rules mask the
    /// query and fragment of the URLs in logged headers (`Location`, `Referer`...).
    pub fn log_query(mut self, enabled: bool) -> Self {
        self.config().query = enabled;
        self
    }

    /// Masks the value of query key `key` too (see [`log_query`](Self::log_query)).
    pub fn mask_query_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.config().query_keys.push(key.into());
        self
    }

    /// Logs the request headers on the span (`http.request.headers`) and the response headers
    /// on the event (`http.response.headers`); off by default. Safe by default: every header
    /// is listed by name, but a value is shown only for a header on the allow-list of
    /// well-known non-credential headers (see the [module docs](super#headers)) or added with
    /// [`log_header_value`](Self::log_header_value); any other value is written `[redacted]`.
    ///
    /// A value is always `[redacted]`, allow-list or not, for `authorization`,
    /// `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key`, `api-key`, `x-auth-token`,
    /// `x-access-token`, `x-csrf-token`, `x-xsrf-token`, the headers added with
    /// [`redact_header`](Self::redact_header), values marked
    /// [sensitive](http::HeaderValue::set_sensitive), and headers that any layer of the request
    /// declared with [`Context::mark_sensitive_header`](crate::Context::mark_sensitive_header)
    /// (an auth layer inside or outside this one: the headers are written when the request
    /// ends). The header maps are copied (one clone each) only when the request span is
    /// enabled.
    pub fn log_headers(mut self, enabled: bool) -> Self {
        self.config().headers = enabled;
        self
    }

    /// Shows the value of header `name` too (see [`log_headers`](Self::log_headers)); the
    /// always-redacted headers stay redacted.
    pub fn log_header_value(mut self, name: HeaderName) -> Self {
        self.config().header_policy.allowed.push(name);
        self
    }

    /// Redacts header `name` too, even when it is on the allow-list (see
    /// [`log_headers`](Self::log_headers)).
    pub fn redact_header(mut self, name: HeaderName) -> Self {
        self.config().header_policy.denied.push(name);
        self
    }

    /// Logs the first `limit` bytes of the response body (`http.response.body`, escaped,
    /// ending in `...[truncated]` when cut). The body streams through unchanged; the copy costs
    /// one buffer of at most `limit` bytes per request. Off by default.
    pub fn capture_response_body(mut self, limit: usize) -> Self {
        self.config().response_body = Some(limit);
        self
    }

    /// Logs the first `limit` bytes of the request body as the inner service reads them
    /// (`http.request.body`, escaped, ending in `...[truncated]` when cut, and
    /// `http.request.body.size`, the bytes read). Off by default.
    ///
    /// The inner service then receives a [`CaptureBody<B>`](super::CaptureBody) instead of the
    /// client's `B`, which streams through unchanged; a body the inner service never read is
    /// logged empty. Costs a shared buffer (two allocations and a lock per frame) per request.
    pub fn capture_request_body(self, limit: usize) -> LogLayer<L, CaptureRequestBody> {
        LogLayer {
            config: self.config,
            level: self.level,
            request_body: CaptureRequestBody { limit },
        }
    }

    /// Creates the request's context when no outer layer did (off by default: it costs two
    /// allocations). Without a context, the layer cannot see a cancellation cause or a request
    /// id recorded by layers inside it; see the [module docs](super#the-context).
    pub fn create_context(mut self, enabled: bool) -> Self {
        self.config().create_context = enabled;
        self
    }
}

impl<S, L: Clone, C: Clone> Layer<S> for LogLayer<L, C> {
    type Service = Log<S, L, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Log {
            inner,
            config: Arc::clone(&self.config),
            level: self.level.clone(),
            request_body: self.request_body.clone(),
        }
    }
}

impl<L, C: fmt::Debug> fmt::Debug for LogLayer<L, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(LogLayer))
            .field("config", &self.config)
            .field("level", &std::any::type_name::<L>())
            .field("request_body", &self.request_body)
            .finish()
    }
}

// ----- stack introspection -----

impl Config {
    /// The entry of a log layer or service (`L` its level, `C` its request-body mode).
    pub(crate) fn describe<L, C>(&self, description: &mut middleware_core::describe::Description) {
        let entry = description.layer("LogLayer");
        entry
            .setting("level", crate::compose::short_name::<L>())
            .setting("span_level", self.span_level)
            .setting("query", self.query)
            .setting("headers", self.headers)
            .setting("request_body", crate::compose::short_name::<C>());
        if let Some(limit) = self.response_body {
            entry.setting("response_body", limit);
        }
        entry.setting("create_context", self.create_context);
    }
}

impl<L, C> middleware_core::Describe for LogLayer<L, C> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        self.config.describe::<L, C>(description);
    }
}
