//! [`Principal`]: who made the request, and [`Rejection`]: a validator's "no".

use std::{fmt, sync::Arc};

/// The authenticated caller: an identity plus the roles and scopes it holds.
///
/// On success the auth layer inserts it into the request's [`Context`](crate::Context), where
/// inner layers and the handler read it with `cx.get::<Principal>()`. Cloning is cheap (one
/// reference count), so static credentials hand out their principal without allocating.
///
/// See the [module docs](super) for an example.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal(Arc<Inner>);

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    id: Box<str>,
    roles: Vec<Box<str>>,
    scopes: Vec<Box<str>>,
}

impl Principal {
    /// A principal with the given identity and no roles or scopes.
    #[must_use]
    pub fn new(id: impl Into<Box<str>>) -> Self {
        Self(Arc::new(Inner {
            id: id.into(),
            roles: Vec::new(),
            scopes: Vec::new(),
        }))
    }

    /// Adds a role (duplicates are ignored).
    #[must_use]
    pub fn with_role(mut self, role: impl Into<Box<str>>) -> Self {
        let role = role.into();
        if !self.has_role(&role) {
            Arc::make_mut(&mut self.0).roles.push(role);
        }
        self
    }

    /// Adds a scope (duplicates are ignored).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<Box<str>>) -> Self {
        let scope = scope.into();
        if !self.has_scope(&scope) {
            Arc::make_mut(&mut self.0).scopes.push(scope);
        }
        self
    }

    /// The identity: a user name, a token's subject, a service name.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The roles, in the order they were added.
    #[must_use]
    pub fn roles(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.roles.iter().map(|role| &**role)
    }

    /// The scopes, in the order they were added.
    #[must_use]
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.scopes.iter().map(|scope| &**scope)
    }

    /// Whether the principal holds `role` (exact, case-sensitive match).
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|held| held == role)
    }

    /// Whether the principal holds `scope` (exact, case-sensitive match).
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|held| held == scope)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Principal))
            .field("id", &self.id())
            .field("roles", &self.0.roles)
            .field("scopes", &self.0.scopes)
            .finish()
    }
}

/// A validator's answer for credentials it does not accept.
///
/// It carries no reason on purpose: every rejection becomes the same `401` response, so a client
/// cannot learn which part of its credentials was wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rejection(());

impl Rejection {
    /// A rejection.
    #[must_use]
    pub const fn new() -> Self {
        Self(())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("credentials rejected")
    }
}

impl std::error::Error for Rejection {}
