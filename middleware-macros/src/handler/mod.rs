//! `#[handler]`: an async fn handler with per-handler layers becomes a tower `Service`.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

use crate::attr::Errors;

/// Parses, validates and expands. The function is always emitted in some form: on an error as
/// the handler value with a stand-in `service` (or unchanged, for a method or a non-function
/// item) next to the errors, so nothing downstream fails a second time.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let handler_args = parse::Args::parse(args, &mut errors);
    let item: syn::Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        // Not even an item: leave it to rustc, which reports it in the user's own terms.
        Err(_) => return item,
    };
    let syn::Item::Fn(original) = &item else {
        errors.push(syn::Error::new(
            crate::middleware_fn::item_keyword(&item),
            "`#[handler]` must be applied to an `async fn`",
        ));
        let error = errors.into_error().map(syn::Error::into_compile_error);
        return quote!(#error #item);
    };
    let function = parse::Function {
        original,
        args: handler_args,
    };
    let plan = validate::validate(&function, &mut errors);
    match errors.into_error() {
        None => expand::expand(&function, &plan, false),
        Some(error) if validate::has_receiver(&function) => {
            let error = error.into_compile_error();
            quote!(#error #original)
        }
        Some(error) => {
            let error = error.into_compile_error();
            let fallback = expand::expand(&function, &plan, true);
            quote!(#error #fallback)
        }
    }
}
