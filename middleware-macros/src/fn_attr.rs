//! The driver shared by the fn-attribute macros (`#[handler]`, `#[middleware_fn]`): parse the
//! arguments and the item, validate, then expand, or on errors emit the errors next to a
//! fallback (or the function unchanged) so that nothing downstream fails a second time. Also
//! the pieces both expansions need: the borrowing view of the function, the qualifier checks,
//! the value type's `Debug` impl and the user's function moved inside a generated item; and the
//! readers of written types both validations use.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, Signature, Type, ext::IdentExt};

use crate::attr::Errors;

/// One fn-attribute macro's steps: its error for a non-function item, its argument parser, its
/// checks and its expansion (with `fallback`, the stand-in emitted next to errors).
pub(crate) struct Steps<A, P> {
    pub(crate) not_a_fn: &'static str,
    pub(crate) parse: fn(TokenStream, &mut Errors) -> A,
    pub(crate) validate: fn(&Function<'_, A>, &mut Errors) -> P,
    pub(crate) expand: fn(&Function<'_, A>, &P, bool) -> TokenStream,
}

/// The annotated function with its attribute arguments.
pub(crate) struct Function<'a, A> {
    pub(crate) original: &'a ItemFn,
    pub(crate) args: A,
}

impl<A> Function<'_, A> {
    /// Whether the function has a `self` receiver: then it is a method, and the attribute emits
    /// it unchanged next to the error rather than items an `impl` block cannot hold.
    pub(crate) fn has_receiver(&self) -> bool {
        self.original
            .sig
            .inputs
            .iter()
            .any(|arg| matches!(arg, FnArg::Receiver(_)))
    }

    /// The function's doc attributes, which go to the generated value type.
    pub(crate) fn docs(&self) -> impl Iterator<Item = &syn::Attribute> {
        self.original
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("doc"))
    }

    /// The function's name without `r#`.
    pub(crate) fn name(&self) -> String {
        self.original.sig.ident.unraw().to_string()
    }
}

/// Parses, validates and expands an fn-attribute macro. The function is always emitted in some
/// form: on an error as the macro's fallback (or unchanged, for a method or a non-function item)
/// next to the errors.
pub(crate) fn expand<A, P>(
    args: TokenStream,
    item: TokenStream,
    steps: &Steps<A, P>,
) -> TokenStream {
    let mut errors = Errors::default();
    let args = (steps.parse)(args, &mut errors);
    let item: syn::Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        // Not even an item: leave it to rustc, which reports it in the user's own terms.
        Err(_) => return item,
    };
    let syn::Item::Fn(original) = &item else {
        errors.push(syn::Error::new(item_keyword(&item), steps.not_a_fn));
        let error = errors.into_error().map(syn::Error::into_compile_error);
        return quote!(#error #item);
    };
    let function = Function { original, args };
    let plan = (steps.validate)(&function, &mut errors);
    match errors.into_error() {
        None => (steps.expand)(&function, &plan, false),
        Some(error) if function.has_receiver() => {
            let error = error.into_compile_error();
            quote!(#error #original)
        }
        Some(error) => {
            let error = error.into_compile_error();
            let fallback = (steps.expand)(&function, &plan, true);
            quote!(#error #fallback)
        }
    }
}

/// Reports the qualifiers no fn-attribute macro supports (`const`, `unsafe`, `extern`,
/// variadic) as one error over all of them: `const unsafe fn` is one mistake, said once.
pub(crate) fn unsupported_qualifiers(sig: &Signature, attr: &str, errors: &mut Errors) {
    let mut tokens = TokenStream::new();
    let mut names = Vec::new();
    if let Some(token) = &sig.constness {
        token.to_tokens(&mut tokens);
        names.push("`const`");
    }
    if let Some(token) = &sig.unsafety {
        token.to_tokens(&mut tokens);
        names.push("`unsafe`");
    }
    if let Some(abi) = &sig.abi {
        abi.to_tokens(&mut tokens);
        names.push("`extern`");
    }
    if !tokens.is_empty() {
        errors.spanned(
            tokens,
            format!(
                "`{attr}` does not support {} functions: remove {}",
                names.join(" "),
                names.join(" and ")
            ),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            format!("`{attr}` does not support variadic functions"),
        );
    }
}

/// How the value type's `Debug` prints a value that holds state.
#[derive(Clone, Copy)]
pub(crate) enum StateDebug {
    /// `name(..)`.
    Tuple,
    /// `name { .. }`.
    Struct,
}

/// The value type's `Debug`: its name, and `..` for state it holds (never the state itself).
pub(crate) fn debug_impl(
    ident: &syn::Ident,
    name: &str,
    state: Option<StateDebug>,
    p: &TokenStream,
) -> TokenStream {
    let body = match state {
        None => quote!(__middleware_f.write_str(#name)),
        Some(StateDebug::Tuple) => {
            quote!(__middleware_f.debug_tuple(#name).finish_non_exhaustive())
        }
        Some(StateDebug::Struct) => {
            quote!(__middleware_f.debug_struct(#name).finish_non_exhaustive())
        }
    };
    quote! {
        #[automatically_derived]
        impl #p::fmt::Debug for #ident {
            fn fmt(&self, __middleware_f: &mut #p::fmt::Formatter<'_>) -> #p::fmt::Result {
                #body
            }
        }
    }
}

/// The user's function, moved inside a generated item: same signature and body, no docs (they
/// went to the value type), no visibility, and none of the parameter attributes in `ours`.
pub(crate) fn nested(original: &ItemFn, ours: &[&str]) -> ItemFn {
    let mut nested = original.clone();
    nested.attrs.retain(|attr| !attr.path().is_ident("doc"));
    nested.vis = syn::Visibility::Inherited;
    if !ours.is_empty() {
        for arg in &mut nested.sig.inputs {
            if let FnArg::Typed(arg) = arg {
                arg.attrs
                    .retain(|attr| !ours.iter().any(|name| attr.path().is_ident(name)));
            }
        }
    }
    nested
}

/// The span of the token that says what kind of item this is (`struct`, `impl`, ...).
pub(crate) fn item_keyword(item: &syn::Item) -> Span {
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

/// `A` in `...::name<A>`: a path type ending in `name` with exactly one argument, a type.
pub(crate) fn single_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    match generic_args(ty, name)?.as_slice() {
        [only] => Some(only),
        _ => None,
    }
}

/// The type arguments of `...::name<A, B>`; `None` unless every argument is a type.
pub(crate) fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if path.qself.is_some() || last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args
        .iter()
        .map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect()
}

/// The tokens as written, for comparing types and for messages.
pub(crate) fn token_string(tokens: &impl ToTokens) -> String {
    tokens.to_token_stream().to_string()
}
