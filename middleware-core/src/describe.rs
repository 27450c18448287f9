//! Stack introspection: a service describes itself and its inner services, outermost first,
//! so that an application can log its effective stack at startup and a test can assert it.
//!
//! Every layer's service that implements [`Describe`] pushes one [`Entry`] (its name and its
//! settings, secrets left out: an auth layer says how many keys it holds, never which) and
//! then asks its inner service. A service that is not a layer (the handler, a router, a
//! foreign service) ends the chain: wrap it in [`Described`] (with [`described`]) to give it a
//! name. Rust has no "describe whatever it is" without specialization, so a chain reaches only
//! as deep as its services implement the trait.
//!
//! # Example
//!
//! ```
//! use middleware_core::describe::{self, Describe, Description, described};
//!
//! /// A third-party layer's service: one entry, then its inner service.
//! struct Greet<S> {
//!     inner: S,
//!     greeting: &'static str,
//! }
//!
//! impl<S: Describe> Describe for Greet<S> {
//!     fn describe(&self, description: &mut Description) {
//!         description.layer("Greet").setting("greeting", self.greeting);
//!         self.inner.describe(description);
//!     }
//! }
//!
//! let handler = |name: &str| format!("hello {name}");
//! let app = Greet { inner: described("hello handler", handler), greeting: "hi" };
//!
//! let stack = describe::describe(&app);
//! assert_eq!(stack.to_string(), "Greet(greeting=hi) -> hello handler");
//! assert_eq!(stack.names().collect::<Vec<_>>(), ["Greet", "hello handler"]);
//! assert_eq!(stack.find("Greet").unwrap().get("greeting"), Some("hi"));
//! assert!(stack.is_complete());
//! ```

use std::{borrow::Cow, fmt, sync::Arc, task::Poll};

use tower_service::Service;

/// A service (or a layer) that can say what it is: see the [module docs](self).
///
/// A layer's service pushes its own entry with [`Description::layer`] and then calls
/// `describe` on its inner service; a service that ends the chain pushes one with
/// [`Description::service`]. A layer (before it wraps anything) pushes its entry, or its
/// entries for a layer made of several, and nothing else.
///
/// Settings name what changes behaviour (a budget, a limit, a header name, a count), never a
/// secret: no key, token, password or signing secret, not even hashed.
pub trait Describe {
    /// Appends this service's entries to `description`, outermost first.
    fn describe(&self, description: &mut Description);
}

/// The chain a service describes, outermost first: what [`describe`] returns. See the
/// [module docs](self) for an example.
///
/// `Display` writes one line, `A(k=v) -> B -> service`; the alternate form (`{:#}`) one entry
/// per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    entries: Vec<Entry>,
}

/// One layer or service of a [`Description`]: a name and settings in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    name: Cow<'static, str>,
    settings: Vec<(Cow<'static, str>, String)>,
    service: bool,
}

/// The description of `svc`: its layers, outermost first, down to the first service that does
/// not describe further. See the [module docs](self) for an example.
pub fn describe<S: Describe + ?Sized>(svc: &S) -> Description {
    let mut description = Description::new();
    svc.describe(&mut description);
    description
}

impl Description {
    /// An empty description.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Appends a layer's entry; add its settings to the entry returned.
    pub fn layer(&mut self, name: impl Into<Cow<'static, str>>) -> &mut Entry {
        self.push(name.into(), false)
    }

    /// Appends the entry of a service that ends the chain (a handler, a router, a foreign
    /// service).
    pub fn service(&mut self, name: impl Into<Cow<'static, str>>) -> &mut Entry {
        self.push(name.into(), true)
    }

    fn push(&mut self, name: Cow<'static, str>, service: bool) -> &mut Entry {
        self.entries.push(Entry {
            name,
            settings: Vec::new(),
            service,
        });
        self.entries.last_mut().expect("just pushed")
    }

    /// The entries, outermost first.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries' names, outermost first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(Entry::name)
    }

    /// The outermost entry named `name`.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.name == name)
    }

    /// How many entries are named `name`: more than one for a doubled layer.
    #[must_use]
    pub fn count(&self, name: &str) -> usize {
        self.entries
            .iter()
            .filter(|entry| entry.name == name)
            .count()
    }

    /// Whether the chain ends with a service (rather than with a layer whose inner service
    /// did not describe itself, or a layer not yet applied).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.entries.last().is_some_and(Entry::is_service)
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = if f.alternate() { "\n" } else { " -> " };
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(separator)?;
            }
            fmt::Display::fmt(entry, f)?;
        }
        Ok(())
    }
}

impl Entry {
    /// Adds a setting; values are written with `Display`.
    pub fn setting(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl fmt::Display,
    ) -> &mut Self {
        self.settings.push((key.into(), value.to_string()));
        self
    }

    /// The name of the layer or service.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings, in the order given.
    pub fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings
            .iter()
            .map(|(key, value)| (key.as_ref(), value.as_str()))
    }

    /// The value of the setting `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }

    /// Whether this entry is a service that ends the chain (not a layer).
    #[must_use]
    pub const fn is_service(&self) -> bool {
        self.service
    }
}

/// `Name(key=value, ...)`, or `Name` without settings. Control characters (a newline in a
/// configured name) are written escaped (`\n`, `\u{1b}`), so that an entry stays on its line.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.name)?;
        if self.settings.is_empty() {
            return Ok(());
        }
        f.write_str("(")?;
        for (i, (key, value)) in self.settings.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_escaped(f, key)?;
            f.write_str("=")?;
            write_escaped(f, value)?;
        }
        f.write_str(")")
    }
}

/// Writes `text` with its control characters escaped.
fn write_escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(char::is_control) {
        f.write_str(&rest[..at])?;
        let control = rest[at..].chars().next().expect("found at `at`");
        write!(f, "{}", control.escape_default())?;
        rest = &rest[at + control.len_utf8()..];
    }
    f.write_str(rest)
}

impl<T: Describe + ?Sized> Describe for &T {
    fn describe(&self, description: &mut Description) {
        (**self).describe(description);
    }
}

impl<T: Describe + ?Sized> Describe for Box<T> {
    fn describe(&self, description: &mut Description) {
        (**self).describe(description);
    }
}

impl<T: Describe + ?Sized> Describe for Arc<T> {
    fn describe(&self, description: &mut Description) {
        (**self).describe(description);
    }
}

/// The layer that does nothing adds no entry.
impl Describe for tower_layer::Identity {
    fn describe(&self, _: &mut Description) {}
}

/// A service with a name, for the end of a chain: a handler, a router, a boxed or foreign
/// service (which cannot describe itself). Calls pass through unchanged. Made by
/// [`described`]; see the [module docs](self) for an example.
///
/// A foreign *layer* in the middle of a stack ends the chain too (its inner service cannot be
/// reached from outside): wrap its service, `described("tower_http::cors::Cors", cors)`, so
/// the description says where it stops.
#[derive(Clone, Debug)]
pub struct Described<S> {
    inner: S,
    name: Cow<'static, str>,
}

/// Names `inner` for [`describe`]: see [`Described`].
pub fn described<S>(name: impl Into<Cow<'static, str>>, inner: S) -> Described<S> {
    Described {
        inner,
        name: name.into(),
    }
}

impl<S> Described<S> {
    /// The wrapped service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Describe for Described<S> {
    fn describe(&self, description: &mut Description) {
        description.service(self.name.clone());
    }
}

impl<S: Service<R>, R> Service<R> for Described<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

/// The short name of a type: its path without modules (`my_app::Audit<T>` is `Audit`).
fn short_type_name<T: ?Sized>() -> &'static str {
    let name = std::any::type_name::<T>();
    let end = name.find('<').unwrap_or(name.len());
    name[..end].rsplit("::").next().unwrap_or(name)
}

/// A middleware's entry is its type's name; then its inner service.
impl<M, S: Describe> Describe for crate::MiddlewareService<M, S> {
    fn describe(&self, description: &mut Description) {
        description.layer(short_type_name::<M>());
        self.get_ref().describe(description);
    }
}

/// A hook's entry is its type's name; then its inner service.
impl<H, S: Describe> Describe for crate::HookService<H, S> {
    fn describe(&self, description: &mut Description) {
        description.layer(short_type_name::<H>());
        self.get_ref().describe(description);
    }
}

/// An observer's entry is its type's name; then its inner service.
impl<O, S: Describe> Describe for crate::ObserveService<O, S> {
    fn describe(&self, description: &mut Description) {
        description.layer(short_type_name::<O>());
        self.get_ref().describe(description);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Handler;

    impl Describe for Handler {
        fn describe(&self, description: &mut Description) {
            description.service("handler");
        }
    }

    struct Outer<S>(S);

    impl<S: Describe> Describe for Outer<S> {
        fn describe(&self, description: &mut Description) {
            description
                .layer("Outer")
                .setting("limit", 3)
                .setting("header", "x-a");
            self.0.describe(description);
        }
    }

    #[test]
    fn a_chain_is_written_outermost_first() {
        let stack = describe(&Outer(Outer(Handler)));
        assert_eq!(
            stack.to_string(),
            "Outer(limit=3, header=x-a) -> Outer(limit=3, header=x-a) -> handler"
        );
        assert_eq!(
            format!("{stack:#}"),
            "Outer(limit=3, header=x-a)\nOuter(limit=3, header=x-a)\nhandler"
        );
        assert_eq!(stack.count("Outer"), 2);
        assert!(stack.is_complete());
        assert_eq!(stack.find("Outer").unwrap().get("limit"), Some("3"));
        assert_eq!(stack.find("Outer").unwrap().get("absent"), None);
    }

    #[test]
    fn a_chain_without_a_service_is_not_complete() {
        struct LayerOnly;
        impl Describe for LayerOnly {
            fn describe(&self, description: &mut Description) {
                description.layer("LayerOnly");
            }
        }
        let stack = describe(&LayerOnly);
        assert!(!stack.is_complete());
        assert_eq!(stack.to_string(), "LayerOnly");
        assert!(!describe(&Box::new(Handler)).entries().is_empty());
    }

    #[test]
    fn control_characters_in_names_and_values_are_escaped() {
        let mut description = Description::new();
        description
            .layer("Evil\nLayer")
            .setting("name", "a\r\nINFO forged\u{1b}[31m")
            .setting("k\t", "ünïcödé ok");
        let text = description.to_string();
        assert_eq!(
            text,
            "Evil\\nLayer(name=a\\r\\nINFO forged\\u{1b}[31m, k\\t=ünïcödé ok)"
        );
        assert!(!text.chars().any(char::is_control));
        // The raw values stay available as given.
        assert_eq!(description.entries()[0].name(), "Evil\nLayer");
    }

    proptest::proptest! {
        #[test]
        fn a_description_is_one_line_whatever_the_settings(
            name in ".*",
            key in ".*",
            value in ".*",
        ) {
            let mut description = Description::new();
            description.layer(name.clone()).setting(key, &value);
            description.service(name);
            let text = description.to_string();
            proptest::prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
        }
    }

    #[test]
    fn short_type_names_drop_the_path_and_the_parameters() {
        assert_eq!(short_type_name::<Outer<Handler>>(), "Outer");
        assert_eq!(short_type_name::<String>(), "String");
    }
}
