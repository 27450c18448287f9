#![doc = include_str!("../README.md")]

use std::{fmt, ops::ControlFlow, sync::Arc};

// Everything from `middleware-core`, which re-exports the crates a layer's signatures are made
// of: this crate depends on nothing else.
use middleware_core::{
    Error, Hook, HookLayer, HookService, RequestExt, ResponseBody,
    bytes::Bytes,
    http::{HeaderName, HeaderValue, Request, Response, StatusCode},
    tower_layer::Layer,
};

/// The tenant of a request, found in the request's [`Context`](middleware_core::Context).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tenant(Arc<str>);

impl Tenant {
    /// Parses a tenant name: 1–63 characters of `a-z`, `0-9`, `-`, not starting or ending with
    /// `-`.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidTenant`] for anything else.
    pub fn parse(name: &[u8]) -> Result<Self, InvalidTenant> {
        let valid = (1..=63).contains(&name.len())
            && name
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && name.first() != Some(&b'-')
            && name.last() != Some(&b'-');
        if !valid {
            return Err(InvalidTenant(()));
        }
        // Checked above: ASCII.
        let name = std::str::from_utf8(name).map_err(|_| InvalidTenant(()))?;
        Ok(Self(Arc::from(name)))
    }

    /// The tenant name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant name that is not a DNS label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTenant(());

impl fmt::Display for InvalidTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tenant must be 1-63 characters of a-z, 0-9 and '-'")
    }
}

impl std::error::Error for InvalidTenant {}

/// The layer: validates the tenant header and puts the [`Tenant`] into the context.
///
/// See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct TenantLayer {
    hook: HookLayer<TenantHook>,
}

/// The service made by [`TenantLayer`].
pub type TenantService<S> = HookService<TenantHook, S>;

impl TenantLayer {
    /// Reads `x-tenant-id`, requires it, accepts any valid tenant.
    pub fn new() -> Self {
        Self::from_hook(TenantHook {
            header: HeaderName::from_static("x-tenant-id"),
            default: None,
            allow: None,
        })
    }

    fn from_hook(hook: TenantHook) -> Self {
        Self {
            hook: HookLayer::new(hook),
        }
    }

    fn config(&self) -> TenantHook {
        self.hook.hook().clone()
    }

    /// Reads the tenant from `header` instead.
    pub fn header(self, header: HeaderName) -> Self {
        Self::from_hook(TenantHook {
            header,
            ..self.config()
        })
    }

    /// Uses `tenant` when the header is absent (a present but invalid header is still `400`).
    pub fn default_tenant(self, tenant: Tenant) -> Self {
        Self::from_hook(TenantHook {
            default: Some(tenant),
            ..self.config()
        })
    }

    /// Accepts only these tenants (`403` for others).
    ///
    /// # Panics
    ///
    /// When a name is not a valid tenant: an allow-list is configuration, checked at startup.
    pub fn allow<'a>(self, tenants: impl IntoIterator<Item = &'a str>) -> Self {
        let allow = tenants
            .into_iter()
            .map(|t| Tenant::parse(t.as_bytes()).expect("allow-list entries must be valid tenants"))
            .collect();
        Self::from_hook(TenantHook {
            allow: Some(allow),
            ..self.config()
        })
    }
}

impl Default for TenantLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.hook.layer(inner)
    }
}

/// The hook behind [`TenantLayer`] (public so that [`TenantService`] can be named).
#[derive(Clone, Debug)]
pub struct TenantHook {
    header: HeaderName,
    default: Option<Tenant>,
    allow: Option<Arc<[Tenant]>>,
}

impl TenantHook {
    fn reject<B>(req: &Request<B>, status: StatusCode, detail: &'static str) -> Response<Bytes> {
        req.render_error(&Error::new(status).with_detail(detail))
    }
}

impl Hook for TenantHook {
    type State = ();

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        let mut values = req.headers().get_all(&self.header).iter();
        let tenant = match (values.next(), values.next()) {
            (None, _) => match &self.default {
                Some(tenant) => tenant.clone(),
                None => {
                    return ControlFlow::Break(Self::reject(
                        req,
                        StatusCode::BAD_REQUEST,
                        "missing tenant header",
                    ));
                }
            },
            (Some(value), None) => match Tenant::parse(value.as_bytes()) {
                Ok(tenant) => tenant,
                Err(_) => {
                    return ControlFlow::Break(Self::reject(
                        req,
                        StatusCode::BAD_REQUEST,
                        "invalid tenant header",
                    ));
                }
            },
            (Some(_), Some(_)) => {
                return ControlFlow::Break(Self::reject(
                    req,
                    StatusCode::BAD_REQUEST,
                    "several tenant headers",
                ));
            }
        };
        if let Some(allow) = &self.allow {
            if !allow.contains(&tenant) {
                return ControlFlow::Break(Self::reject(
                    req,
                    StatusCode::FORBIDDEN,
                    "unknown tenant",
                ));
            }
        }
        req.context().insert(tenant);
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

/// Lets a handler echo the tenant in a response header, e.g. for caches keyed on it.
impl From<&Tenant> for HeaderValue {
    fn from(tenant: &Tenant) -> Self {
        // A tenant is a DNS label: always a valid header value.
        Self::from_str(tenant.as_str()).unwrap_or_else(|_| Self::from_static("invalid"))
    }
}
