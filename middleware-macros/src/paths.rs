//! The one place generated code names the core crate.
//!
//! Every expansion reaches core through the hidden `__private` module of the facade the user
//! depends on: `middleware-core`'s (which re-exports exactly what expansions need) or
//! `middleware-std`'s (core's plus the std layers), under whatever name the user's manifest gives
//! it. `crate = "<path>"` overrides that, for a facade of the user's own.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote_spanned;

/// The base path for generated code: `<facade>::__private`, where the facade is `krate` when the
/// user named one, else `middleware-core` as the user's manifest names it, else
/// `middleware-std` (which re-exports core's hidden module), else `::middleware_core`.
///
/// `span` is where rustc reports a trait error on a path built from it: the call site for
/// plumbing, the user's own token for a check.
pub(crate) fn private(krate: Option<&syn::Path>, span: Span) -> TokenStream {
    if let Some(krate) = krate {
        return quote_spanned!(span=> #krate::__private);
    }
    let facade = dependency("middleware-core")
        .or_else(|| dependency("middleware-std"))
        .unwrap_or_else(|| Ident::new("middleware_core", Span::call_site()));
    quote_spanned!(span=> ::#facade::__private)
}

/// The base path for `#[handler]`'s generated code: `<facade>::__private` of `middleware-std`
/// (core's hidden module plus the std layers and the handler runtime), as the user's manifest
/// names it, or `krate`.
pub(crate) fn private_std(krate: Option<&syn::Path>, span: Span) -> TokenStream {
    if let Some(krate) = krate {
        return quote_spanned!(span=> #krate::__private);
    }
    let facade = dependency("middleware-std")
        .unwrap_or_else(|| Ident::new("middleware_std", Span::call_site()));
    quote_spanned!(span=> ::#facade::__private)
}

/// The name under which the crate being compiled reaches package `package` (renamed or not,
/// a dependency or a dev-dependency), or `None` when its manifest does not list it. Inside the
/// package itself (its tests and examples), the package's own crate name.
fn dependency(package: &str) -> Option<Ident> {
    let name = match crate_name(package).ok()? {
        FoundCrate::Itself => package.replace('-', "_"),
        FoundCrate::Name(name) => name,
    };
    Some(Ident::new(&name, Span::call_site()))
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

/// `use <base> as <alias>;` next to an expansion, and the alias every other generated path goes
/// through. A facade path that does not resolve (a wrong `crate = "..."`, a manifest without
/// the facade) is then reported once, on the `use`, rather than once per generated path: rustc
/// reports an unresolved import and stays silent about the paths that go through it.
///
/// The alias is named after the annotated item (`__middleware_private_<item>`) so that two
/// expansions in one module do not clash.
pub(crate) fn aliased(base: &TokenStream, item: &Ident) -> (TokenStream, Ident) {
    use syn::ext::IdentExt;
    let alias = Ident::new(
        &format!("__middleware_private_{}", item.unraw()),
        Span::call_site(),
    );
    let import = quote::quote! {
        #[doc(hidden)]
        #[allow(unused_imports)]
        use #base as #alias;
    };
    (import, alias)
}

/// The alias of [`aliased`], reported at `at` (for a trait error on the user's token).
pub(crate) fn alias_at(alias: &Ident, at: Span) -> TokenStream {
    let ident = Ident::new(&alias.to_string(), generated_at(at));
    quote::quote!(#ident)
}
