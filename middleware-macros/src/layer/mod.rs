//! `#[derive(Layer)]`: a tower layer from a struct that implements `Middleware` or `Hook`.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

use crate::attr::Errors;

/// Parses, validates and expands. On a validation error, the errors come with a fallback
/// expansion (the same items, trait bodies never run), so code that uses the generated names
/// does not fail a second time; `Err` only when there is nothing to expand (not a struct).
pub(crate) fn derive(input: &syn::DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let parsed = parse::Input::from_syn(input, &mut errors);
    if let Some(parsed) = &parsed {
        validate::validate(parsed, &mut errors);
    }
    match (parsed, errors.into_error()) {
        (Some(parsed), None) => Ok(expand::expand(&parsed, false)),
        (Some(parsed), Some(error)) => {
            let error = error.into_compile_error();
            let fallback = expand::expand(&parsed, true);
            Ok(quote!(#error #fallback))
        }
        (None, error) => Err(error.unwrap_or_else(|| {
            syn::Error::new_spanned(&input.ident, "`#[derive(Layer)]` could not read this item")
        })),
    }
}
