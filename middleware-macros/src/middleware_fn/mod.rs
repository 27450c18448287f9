//! `#[middleware_fn]`: an async fn becomes an around-style middleware value, a synchronous fn a
//! zero-allocation hook.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::attr::Errors;

/// Parses, validates and expands. The function is always emitted in some form: on a signature
/// error as a fallback value type (or unchanged, for a method or a non-function item) next to
/// the errors, so nothing downstream fails a second time.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let function_args = parse::Args::parse(args, &mut errors);
    let item: syn::Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        // Not even an item: leave it to rustc, which reports it in the user's own terms.
        Err(_) => return item,
    };
    let syn::Item::Fn(original) = &item else {
        errors.push(syn::Error::new(
            item_keyword(&item),
            "`#[middleware_fn]` must be applied to an `async fn` (or, with `before`, a synchronous `fn`)",
        ));
        let error = errors.into_error().map(syn::Error::into_compile_error);
        return quote!(#error #item);
    };
    let function = parse::Function {
        original,
        args: function_args,
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

/// The span of the token that says what kind of item this is (`struct`, `impl`, ...).
pub(crate) fn item_keyword(item: &syn::Item) -> proc_macro2::Span {
    use syn::spanned::Spanned;
    let tokens = match item {
        syn::Item::Const(item) => item.const_token.to_token_stream(),
        syn::Item::Enum(item) => item.enum_token.to_token_stream(),
        syn::Item::ExternCrate(item) => item.extern_token.to_token_stream(),
        syn::Item::ForeignMod(item) => item.abi.to_token_stream(),
        syn::Item::Impl(item) => item.impl_token.to_token_stream(),
        syn::Item::Macro(item) => item.mac.path.to_token_stream(),
        syn::Item::Mod(item) => item.mod_token.to_token_stream(),
        syn::Item::Static(item) => item.static_token.to_token_stream(),
        syn::Item::Struct(item) => item.struct_token.to_token_stream(),
        syn::Item::Trait(item) => item.trait_token.to_token_stream(),
        syn::Item::TraitAlias(item) => item.trait_token.to_token_stream(),
        syn::Item::Type(item) => item.type_token.to_token_stream(),
        syn::Item::Union(item) => item.union_token.to_token_stream(),
        syn::Item::Use(item) => item.use_token.to_token_stream(),
        other => other.to_token_stream(),
    };
    tokens.span()
}
