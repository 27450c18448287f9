//! [`RateLimitLayer`].

use std::{fmt, sync::Arc};

use http::{HeaderName, HeaderValue};
use tower_layer::Layer;

use super::{
    key::{HeaderKey, PeerIp},
    policy::Policy,
    service::RateLimit,
    store::{MemoryStore, RateLimitStore},
};

/// A keyed rate limit: each key (client address by default) gets its own quota; a request over
/// it is answered `429 Too Many Requests`. See the [module docs](super) for an example.
///
/// The store is behind an `Arc`: every service this layer makes, and every clone of those,
/// counts in the same store.
#[must_use]
pub struct RateLimitLayer<M = PeerIp, St = MemoryStore> {
    pub(crate) make_key: M,
    pub(crate) store: Arc<St>,
    /// The policy's headers, made once and shared by every response future that adds them.
    pub(crate) policy: Arc<PolicyHeaders>,
    pub(crate) on_allowed: bool,
}

/// What a store's policy puts in the headers, rendered once.
pub(crate) struct PolicyHeaders {
    /// The `RateLimit-Policy` value.
    pub(crate) value: HeaderValue,
    /// The policy's name as a structured-field string.
    pub(crate) quoted_name: Box<str>,
}

impl RateLimitLayer {
    /// `policy` per client address, counted in a [`MemoryStore`] with room for
    /// [`DEFAULT_CAPACITY`](super::DEFAULT_CAPACITY) keys.
    pub fn new(policy: Policy) -> Self {
        Self::with_store(MemoryStore::new(policy))
    }
}

impl<St: RateLimitStore> RateLimitLayer<PeerIp, St> {
    /// Per client address, counted in `store` (its policy applies).
    pub fn with_store(store: St) -> Self {
        let policy = Arc::new(PolicyHeaders {
            value: store.policy().header_value(),
            quoted_name: store.policy().quoted_name().into(),
        });
        Self {
            make_key: PeerIp,
            store: Arc::new(store),
            policy,
            on_allowed: true,
        }
    }
}

impl<M, St> RateLimitLayer<M, St> {
    /// Counts requests under the key `make_key` picks: a closure
    /// `Fn(&Request<B>) -> Option<Key>`, [`HeaderKey`], `PrincipalKey` (feature `auth`), or [`PeerIp`] (the default).
    pub fn key<M2>(self, make_key: M2) -> RateLimitLayer<M2, St> {
        RateLimitLayer {
            make_key,
            store: self.store,
            policy: self.policy,
            on_allowed: self.on_allowed,
        }
    }

    /// Counts requests under the value of the header `name` (an API key, a tenant id).
    pub fn per_header(self, name: HeaderName) -> RateLimitLayer<HeaderKey, St> {
        self.key(HeaderKey::new(name))
    }

    /// Counts requests under the authenticated principal's id; place the layer inside the
    /// [`AuthLayer`](crate::auth::AuthLayer).
    #[cfg(feature = "auth")]
    pub fn per_principal(self) -> RateLimitLayer<super::PrincipalKey, St> {
        self.key(super::PrincipalKey)
    }

    /// Leaves the `RateLimit` and `RateLimit-Policy` headers off allowed responses (they are
    /// always on the `429`).
    pub fn without_headers_on_allowed(mut self) -> Self {
        self.on_allowed = false;
        self
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<M: Clone, St> Clone for RateLimitLayer<M, St> {
    fn clone(&self) -> Self {
        Self {
            make_key: self.make_key.clone(),
            store: Arc::clone(&self.store),
            policy: Arc::clone(&self.policy),
            on_allowed: self.on_allowed,
        }
    }
}

impl<M, St: fmt::Debug> fmt::Debug for RateLimitLayer<M, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(RateLimitLayer))
            .field("make_key", &std::any::type_name::<M>())
            .field("store", &self.store)
            .field("on_allowed", &self.on_allowed)
            .finish_non_exhaustive()
    }
}

impl<S, M: Clone, St> Layer<S> for RateLimitLayer<M, St> {
    type Service = RateLimit<S, M, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::from_layer(inner, self.clone())
    }
}

// ----- stack introspection -----

impl<M, St: super::RateLimitStore> middleware_core::Describe for RateLimitLayer<M, St> {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        let policy = self.store.policy();
        description
            .layer("RateLimitLayer")
            .setting("key", crate::compose::short_name::<M>())
            .setting("store", crate::compose::short_name::<St>())
            .setting("policy", policy.name())
            .setting("quota", policy.quota())
            .setting("window", format_args!("{:?}", policy.window()))
            .setting("headers_on_allowed", self.on_allowed);
    }
}
