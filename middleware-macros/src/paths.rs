//! The one place generated code names the core crate.
//!
//! Every expansion reaches core through `::middleware_core::__private` (the hidden module that
//! re-exports exactly what expansions need), or through `<path>::__private` when the user
//! writes `crate = "<path>"` because they depend on a re-exporter such as `middleware_std`.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

/// The base path for generated code: `::middleware_core::__private` or `<krate>::__private`.
///
/// `span` is where rustc reports a trait error on a path built from it: the call site for
/// plumbing, the user's own token for a check.
pub(crate) fn private(krate: Option<&syn::Path>, span: Span) -> TokenStream {
    if let Some(krate) = krate {
        quote_spanned!(span=> #krate::__private)
    } else {
        quote_spanned!(span=> ::middleware_core::__private)
    }
}

/// The base path for `#[handler]`'s generated code: `::middleware_std::__private` (core's
/// hidden module plus the std layers and the handler runtime) or `<krate>::__private`.
pub(crate) fn private_std(krate: Option<&syn::Path>, span: Span) -> TokenStream {
    if let Some(krate) = krate {
        quote_spanned!(span=> #krate::__private)
    } else {
        quote_spanned!(span=> ::middleware_std::__private)
    }
}

/// A span that reports at `at` but resolves, and is linted, as macro output: rustc's
/// `unused_qualifications` and clippy skip it, while errors still point at the user's token.
pub(crate) fn generated_at(at: Span) -> Span {
    Span::call_site().located_at(at)
}

/// Parses the value of `crate = "..."`: a string literal holding a path, spanned as generated
/// code located at the literal.
pub(crate) fn parse_crate(lit: &syn::LitStr) -> syn::Result<syn::Path> {
    let span = generated_at(lit.span());
    let respanned = syn::LitStr::new(&lit.value(), span);
    respanned.parse::<syn::Path>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format_args!(
                "expected a path to the crate that re-exports `middleware_core`, like `crate = \"middleware_std\"`, found `{}`",
                lit.value()
            ),
        )
    })
}
