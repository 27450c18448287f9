//! `#[derive(Layer)]`: the borrowing AST, parsed from the struct and its `#[middleware]`
//! attributes.

use proc_macro2::Span;
use syn::{
    DeriveInput, Expr, Ident, LitBool, LitStr, Member, Token, ext::IdentExt, parse::ParseStream,
};

use crate::{
    attr::{self, Errors, Once, kw},
    paths,
};

/// Keys accepted on the struct.
pub(crate) const CONTAINER_KEYS: &[&str] = &[
    "around", "hook", "observe", "crate", "service", "new", "provides",
];
/// Keys accepted on a field.
pub(crate) const FIELD_KEYS: &[&str] = &["secret", "default"];

/// How the user's logic is written: which core trait the struct implements.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `impl Middleware for Struct` (the default).
    Around,
    /// `impl Hook for Struct`.
    Hook,
    /// `impl Observe for Struct`.
    Observe,
}

impl Mode {
    const fn key(self) -> &'static str {
        match self {
            Self::Around => "around",
            Self::Hook => "hook",
            Self::Observe => "observe",
        }
    }
}

/// Named fields get `new` and setters, unit structs `new()`; tuple structs get neither.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Named,
    Tuple,
    Unit,
}

pub(crate) struct Input<'a> {
    pub(crate) original: &'a DeriveInput,
    pub(crate) style: Style,
    pub(crate) mode: Once<Mode>,
    pub(crate) krate: Once<syn::Path>,
    pub(crate) service: Once<Ident>,
    pub(crate) new: Once<bool>,
    /// `provides(T, ..)`: the context values the layer declares (`axum::Provides`).
    pub(crate) provides: Once<Vec<syn::Type>>,
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Field<'a> {
    pub(crate) original: &'a syn::Field,
    pub(crate) member: Member,
    pub(crate) secret: Once<()>,
    pub(crate) default: Once<DefaultValue>,
}

pub(crate) enum DefaultValue {
    /// `#[middleware(default)]`: `Default::default()`.
    Trait,
    /// `#[middleware(default = <expr>)]`.
    Expr(Expr),
}

impl<'a> Input<'a> {
    /// Parses what can be parsed; problems go to `errors`. `None` if the item is not a struct.
    pub(crate) fn from_syn(original: &'a DeriveInput, errors: &mut Errors) -> Option<Self> {
        let data = match &original.data {
            syn::Data::Struct(data) => data,
            syn::Data::Enum(data) => {
                errors.error(
                    data.enum_token.span,
                    "`#[derive(Layer)]` must be applied to a struct: its fields are the middleware's configuration",
                );
                return None;
            }
            syn::Data::Union(data) => {
                errors.error(
                    data.union_token.span,
                    "`#[derive(Layer)]` must be applied to a struct: its fields are the middleware's configuration",
                );
                return None;
            }
        };
        let mut input = Self {
            original,
            style: match data.fields {
                syn::Fields::Named(_) => Style::Named,
                syn::Fields::Unnamed(_) => Style::Tuple,
                syn::Fields::Unit => Style::Unit,
            },
            mode: Once::new("mode"),
            krate: Once::new("crate"),
            service: Once::new("service"),
            new: Once::new("new"),
            provides: Once::new("provides"),
            fields: Vec::new(),
        };
        for attr in middleware_attrs(&original.attrs) {
            let parsed = attr.parse_args_with(|stream: ParseStream<'_>| {
                attr::parse_list(stream, errors, |stream, errors| {
                    input.container_entry(stream, errors)
                })
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        }
        for (index, field) in data.fields.iter().enumerate() {
            input.fields.push(Field::from_syn(index, field, errors));
        }
        Some(input)
    }

    fn container_entry(&mut self, input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<()> {
        if input.peek(kw::around) {
            let key: kw::around = input.parse()?;
            self.set_mode(key.span, Mode::Around, errors);
        } else if input.peek(kw::hook) {
            let key: kw::hook = input.parse()?;
            self.set_mode(key.span, Mode::Hook, errors);
        } else if input.peek(kw::observe) {
            let key: kw::observe = input.parse()?;
            self.set_mode(key.span, Mode::Observe, errors);
        } else if input.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            attr::expect_eq(input, key.span, "crate = \"<path>\"")?;
            let lit: LitStr = input.parse()?;
            self.krate.set(key.span, paths::parse_crate(&lit)?, errors);
        } else if input.peek(kw::service) {
            let key: kw::service = input.parse()?;
            attr::expect_eq(input, key.span, "service = <TypeName>")?;
            self.service.set(key.span, input.parse()?, errors);
        } else if input.peek(kw::new) {
            let key: kw::new = input.parse()?;
            attr::expect_eq(input, key.span, "new = false")?;
            let value: LitBool = input.parse()?;
            self.new.set(key.span, value.value, errors);
        } else if input.peek(kw::provides) {
            let key: kw::provides = input.parse()?;
            if !input.peek(syn::token::Paren) {
                return Err(syn::Error::new(
                    key.span,
                    "expected `provides(<Type>, ..)`: the types of the context values the layer inserts",
                ));
            }
            let content;
            syn::parenthesized!(content in input);
            let types =
                syn::punctuated::Punctuated::<syn::Type, Token![,]>::parse_terminated(&content)?;
            self.provides
                .set(key.span, types.into_iter().collect(), errors);
        } else if input.peek(kw::secret) || input.peek(kw::default) {
            let key = Ident::parse_any(input)?;
            errors.error(
                key.span(),
                format_args!(
                    "`{key}` is a field attribute: put `#[middleware({key})]` on a field, not on the struct"
                ),
            );
            attr::skip_entry(input)?;
        } else {
            attr::unknown_key(input, "#[middleware]", CONTAINER_KEYS, errors)?;
        }
        Ok(())
    }

    fn set_mode(&mut self, span: Span, mode: Mode, errors: &mut Errors) {
        match self.mode.get() {
            Some(&previous) if previous != mode => errors.error(
                span,
                format_args!(
                    "`{}` conflicts with `{}`: a middleware is one of around (`impl Middleware`), hook (`impl Hook`) or observe (`impl Observe`)",
                    mode.key(),
                    previous.key()
                ),
            ),
            Some(_) => errors.error(
                span,
                format_args!("`{}` specified more than once", mode.key()),
            ),
            None => self.mode.set(span, mode, errors),
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode.get().copied().unwrap_or(Mode::Around)
    }
}

impl<'a> Field<'a> {
    fn from_syn(index: usize, original: &'a syn::Field, errors: &mut Errors) -> Self {
        let member = original.ident.clone().map_or_else(
            || {
                Member::Unnamed(syn::Index {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    span: Span::call_site(),
                })
            },
            Member::Named,
        );
        let mut field = Self {
            original,
            member,
            secret: Once::new("secret"),
            default: Once::new("default"),
        };
        for attr in middleware_attrs(&original.attrs) {
            let parsed = attr.parse_args_with(|stream: ParseStream<'_>| {
                attr::parse_list(stream, errors, |stream, errors| field.entry(stream, errors))
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        }
        field
    }

    fn entry(&mut self, input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<()> {
        if input.peek(kw::secret) {
            let key: kw::secret = input.parse()?;
            self.secret.set(key.span, (), errors);
        } else if input.peek(kw::default) {
            let key: kw::default = input.parse()?;
            let value = if input.peek(Token![=]) {
                let eq: Token![=] = input.parse()?;
                if input.is_empty() || input.peek(Token![,]) {
                    return Err(syn::Error::new(
                        eq.span,
                        "expected `default = <expr>`, or `default` alone for `Default::default()`",
                    ));
                }
                DefaultValue::Expr(input.parse()?)
            } else {
                DefaultValue::Trait
            };
            self.default.set(key.span, value, errors);
        } else if input.peek(kw::around)
            || input.peek(kw::hook)
            || input.peek(kw::observe)
            || input.peek(Token![crate])
            || input.peek(kw::service)
            || input.peek(kw::new)
        {
            let key = Ident::parse_any(input)?;
            errors.error(
                key.span(),
                format_args!(
                    "`{key}` is a struct attribute: put `#[middleware({key} ...)]` on the struct, not on a field"
                ),
            );
            attr::skip_entry(input)?;
        } else {
            attr::unknown_key(input, "#[middleware]", FIELD_KEYS, errors)?;
        }
        Ok(())
    }
}

fn middleware_attrs(attrs: &[syn::Attribute]) -> impl Iterator<Item = &syn::Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("middleware"))
}
