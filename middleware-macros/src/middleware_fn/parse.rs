//! `#[middleware_fn]`: the attribute arguments and the borrowing view of the function.

use proc_macro2::TokenStream;
use syn::{LitStr, Token, parse::ParseStream, parse::Parser};

use crate::{
    attr::{self, Errors, Once, kw},
    paths,
};

/// Keys accepted by `#[middleware_fn(...)]`.
pub(crate) const KEYS: &[&str] = &["before", "after", "state", "crate"];

/// The attribute arguments.
pub(crate) struct Args {
    /// `before`: the function is the synchronous `before` of a hook.
    pub(crate) before: Once<()>,
    /// `after = path`: the hook's `after` function.
    pub(crate) after: Once<syn::Path>,
    /// `state = Type`: shared state the middleware value holds, passed as `&Type`.
    pub(crate) state: Once<syn::Type>,
    /// `crate = "path"`: the crate that re-exports `middleware_core`.
    pub(crate) krate: Once<syn::Path>,
    /// Whether an entry was not understood (already reported): the form is then read from
    /// the function rather than from the attribute, so a misspelled `before` is said once.
    pub(crate) unreadable: bool,
}

impl Args {
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = Self {
            before: Once::new("before"),
            after: Once::new("after"),
            state: Once::new("state"),
            krate: Once::new("crate"),
            unreadable: false,
        };
        let parser = |input: ParseStream<'_>| {
            attr::parse_list(input, errors, |input, errors| args.entry(input, errors))
        };
        if let Err(error) = parser.parse2(tokens) {
            errors.push(error);
            args.unreadable = true;
        }
        args
    }

    fn entry(&mut self, input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<()> {
        if input.peek(kw::before) {
            let key: kw::before = input.parse()?;
            self.before.set(key.span, (), errors);
        } else if input.peek(kw::after) {
            let key: kw::after = input.parse()?;
            attr::expect_eq(input, key.span, "after = <function>")?;
            self.after.set(key.span, input.parse()?, errors);
        } else if input.peek(kw::state) {
            let key: kw::state = input.parse()?;
            attr::expect_eq(input, key.span, "state = <Type>")?;
            self.state.set(key.span, input.parse()?, errors);
        } else if input.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            attr::expect_eq(input, key.span, "crate = \"<path>\"")?;
            let lit: LitStr = input.parse()?;
            self.krate.set(key.span, paths::parse_crate(&lit)?, errors);
        } else {
            self.unreadable = true;
            attr::unknown_key(input, "#[middleware_fn]", KEYS, errors)?;
        }
        Ok(())
    }
}

/// The annotated function with its arguments.
pub(crate) type Function<'a> = crate::fn_attr::Function<'a, Args>;
