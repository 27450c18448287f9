//! `#[derive(Layer)]`: the generated items. `quote!` only; every decision is in `parse.rs` and
//! `validate.rs`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{GenericParam, Generics, Ident, ext::IdentExt};

use super::parse::{DefaultValue, Input, Mode, Style};
use crate::paths;

/// Expands the derive. With `fallback`, the trait impls have bodies that are never run and no
/// bounds, so that an input with errors produces those errors and nothing else.
pub(crate) fn expand(input: &Input<'_>, fallback: bool) -> TokenStream {
    let original = input.original;
    let (import, alias) = paths::aliased(
        &paths::private(input.krate.get(), Span::call_site()),
        &original.ident,
    );
    let p = quote!(#alias);
    let inner = inner_param(&original.generics);
    let adapter = match input.mode() {
        Mode::Around => quote!(#p::MiddlewareService),
        Mode::Hook => quote!(#p::HookService),
        Mode::Observe => quote!(#p::ObserveService),
    };

    let alias_type = alias_type(input, &inner, &adapter);
    let constructors = constructors(input, &p);
    let layer = layer_impl(input, &inner, &adapter, &alias, fallback);
    let debug = debug_impl(input, &p, fallback);
    let provides = provides_impl(input, &p);
    quote! {
        #import
        #alias_type
        #constructors
        const _: () = {
            #layer
            #debug
            #provides
        };
    }
}

/// With `provides(T, ..)`: `impl <facade>::axum::Provides for Name { type Values = (T, ..); }`
/// (through the facade's `__private`, which has it with the `axum` feature).
fn provides_impl(input: &Input<'_>, p: &TokenStream) -> TokenStream {
    let Some(types) = input.provides.get() else {
        return TokenStream::new();
    };
    let original = input.original;
    let ident = &original.ident;
    let (impl_generics, ty_generics, where_clause) = original.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #p::Provides for #ident #ty_generics #where_clause {
            type Values = (#(#types,)*);
        }
    }
}

/// `type <Name>Service<S, ..> = MiddlewareService<Name<..>, S>;`
fn alias_type(input: &Input<'_>, inner: &Ident, adapter: &TokenStream) -> TokenStream {
    let original = input.original;
    let ident = &original.ident;
    let vis = &original.vis;
    let name = input
        .service
        .get()
        .cloned()
        .unwrap_or_else(|| format_ident!("{}Service", ident.unraw()));
    let (_, ty_generics, _) = original.generics.split_for_impl();
    // Lifetimes first (only in a fallback: they are rejected), then `S`, then the rest.
    let lifetimes = original.generics.lifetimes().map(|param| &param.lifetime);
    let params = original
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Lifetime(_) => None,
            GenericParam::Type(param) => {
                let ident = &param.ident;
                let default = param.default.as_ref().map(|ty| quote!(= #ty));
                Some(quote!(#ident #default))
            }
            GenericParam::Const(param) => {
                let ident = &param.ident;
                let ty = &param.ty;
                let default = param.default.as_ref().map(|expr| quote!(= #expr));
                Some(quote!(const #ident: #ty #default))
            }
        });
    let style = match input.mode() {
        Mode::Around => "around style, `middleware_core::MiddlewareService`",
        Mode::Hook => "hook style, `middleware_core::HookService`",
        Mode::Observe => "observe style, `middleware_core::ObserveService`",
    };
    let doc = format!(
        "The tower service that [`{}`] makes as a layer: it runs `{}` in front of the inner service `{inner}` ({style}).",
        ident.unraw(),
        ident.unraw(),
    );
    quote! {
        #[doc = #doc]
        // Generated for convenience: an application that never names it is not at fault.
        #[allow(dead_code)]
        #vis type #name<#(#lifetimes,)* #inner #(, #params)*> = #adapter<#ident #ty_generics, #inner>;
    }
}

/// `new(required fields)` and one setter per field with a default.
fn constructors(input: &Input<'_>, p: &TokenStream) -> TokenStream {
    if !input.new.get().copied().unwrap_or(true) {
        return TokenStream::new();
    }
    match input.style {
        Style::Named => {}
        Style::Unit => return unit_constructor(input),
        Style::Tuple => return TokenStream::new(),
    }
    let original = input.original;
    let ident = &original.ident;
    let vis = &original.vis;
    let (impl_generics, ty_generics, where_clause) = original.generics.split_for_impl();

    let mut args = Vec::new();
    let mut inits = Vec::new();
    let mut setters = Vec::new();
    let mut defaults = Vec::new();
    for field in &input.fields {
        let name = field.original.ident.as_ref().expect("named field");
        let ty = &field.original.ty;
        let Some(default) = field.default.get() else {
            args.push(quote!(#name: #ty));
            inits.push(quote!(#name));
            continue;
        };
        let (value, shown) = match default {
            DefaultValue::Trait => (
                quote_spanned!(ty_span(ty)=> <#ty as #p::Default>::default()),
                String::from("Default::default()"),
            ),
            DefaultValue::Expr(expr) => (quote!(#expr), tidy(&quote!(#expr).to_string())),
        };
        inits.push(quote!(#name: #value));
        defaults.push(format!("`{}` (`{shown}`)", name.unraw()));
        let doc = format!("Sets `{}` (default: `{shown}`).", name.unraw());
        setters.push(quote! {
            #[doc = #doc]
            #[must_use]
            #vis fn #name(mut self, #name: #ty) -> Self {
                self.#name = #name;
                self
            }
        });
    }
    let mut doc = format!("Creates a [`{}`] from its required fields.", ident.unraw());
    if !defaults.is_empty() {
        doc.push_str(" The others start at their defaults and have setters: ");
        doc.push_str(&defaults.join(", "));
        doc.push('.');
    }
    let no_args = args
        .is_empty()
        .then(|| quote!(#[allow(clippy::new_without_default)]));
    let many_args = (args.len() > 7).then(|| quote!(#[allow(clippy::too_many_arguments)]));
    quote! {
        // Generated for convenience: an application that never calls them is not at fault.
        #[allow(dead_code)]
        impl #impl_generics #ident #ty_generics #where_clause {
            #[doc = #doc]
            #[must_use]
            // Forced by the shape: one argument per field without a default, and a `Default`
            // impl is the user's call (they may derive it).
            #no_args
            #many_args
            #vis fn new(#(#args),*) -> Self {
                Self { #(#inits),* }
            }

            #(#setters)*
        }
    }
}

/// `const fn new() -> Self` for a unit struct, so that every derived layer is built the same way
/// (`Stamp::new()`, as `Limit::new(..)`), as the std layers are.
fn unit_constructor(input: &Input<'_>) -> TokenStream {
    let original = input.original;
    let ident = &original.ident;
    let vis = &original.vis;
    let (impl_generics, ty_generics, where_clause) = original.generics.split_for_impl();
    let doc = format!(
        "Creates a [`{0}`]: the same value as `{0}` itself, spelled as every layer's constructor.",
        ident.unraw()
    );
    quote! {
        // Generated for convenience: an application that never calls it is not at fault.
        #[allow(dead_code)]
        impl #impl_generics #ident #ty_generics #where_clause {
            #[doc = #doc]
            #[must_use]
            // Forced by the shape: a `Default` impl is the user's call (they may derive it).
            #[allow(clippy::new_without_default)]
            #vis const fn new() -> Self {
                Self
            }
        }
    }
}

/// `impl Layer<S> for Name`, bounded by `Self: Clone + Middleware` (or `Hook`, `Observe`) spanned on the
/// struct's name, so a missing impl is reported there with the trait's own note.
fn layer_impl(
    input: &Input<'_>,
    inner: &Ident,
    adapter: &TokenStream,
    alias: &Ident,
    fallback: bool,
) -> TokenStream {
    let p = quote!(#alias);
    let original = input.original;
    let ident = &original.ident;
    let mut generics = original.generics.clone();
    generics
        .params
        .push(GenericParam::Type(syn::TypeParam::from(inner.clone())));
    let (impl_generics, _, _) = generics.split_for_impl();
    let (_, ty_generics, where_clause) = original.generics.split_for_impl();
    let predicates = where_clause.map(|clause| &clause.predicates);
    if fallback {
        return quote! {
            #[automatically_derived]
            impl #impl_generics #p::Layer<#inner> for #ident #ty_generics #where_clause {
                type Service = #adapter<Self, #inner>;

                fn layer(&self, _: #inner) -> Self::Service {
                    #p::unreachable!()
                }
            }
        };
    }
    let span = paths::generated_at(ident.span());
    let checked = paths::alias_at(alias, ident.span());
    let bound = match input.mode() {
        Mode::Around => quote_spanned!(span=> Self: #checked::Clone + #checked::Middleware),
        Mode::Hook => quote_spanned!(span=> Self: #checked::Clone + #checked::Hook),
        Mode::Observe => quote_spanned!(span=> Self: #checked::Clone + #checked::Observe),
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics #p::Layer<#inner> for #ident #ty_generics
        where
            #predicates
            #bound,
        {
            type Service = #adapter<Self, #inner>;

            fn layer(&self, __middleware_inner: #inner) -> Self::Service {
                #adapter::new(__middleware_inner, #p::Clone::clone(self))
            }
        }
    }
}

/// `Debug`, printing `"<redacted>"` for secret fields.
fn debug_impl(input: &Input<'_>, p: &TokenStream, fallback: bool) -> TokenStream {
    let original = input.original;
    let ident = &original.ident;
    let name = ident.unraw().to_string();
    let mut generics = original.generics.clone();
    let params: Vec<Ident> = generics
        .type_params()
        .map(|param| param.ident.clone())
        .collect();
    let where_clause = generics.make_where_clause();
    for param in params {
        where_clause
            .predicates
            .push(syn::parse_quote!(#param: #p::fmt::Debug));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let fields = input.fields.iter().map(|field| {
        let member = &field.member;
        let value = if field.secret.get().is_some() {
            quote!(&"<redacted>")
        } else {
            quote!(&self.#member)
        };
        if let Some(name) = &field.original.ident {
            let name = name.unraw().to_string();
            quote!(.field(#name, #value))
        } else {
            quote!(.field(#value))
        }
    });
    let body = if fallback {
        quote!(__middleware_f.debug_struct(#name).finish_non_exhaustive())
    } else {
        match input.style {
            Style::Named => quote!(__middleware_f.debug_struct(#name) #(#fields)* .finish()),
            Style::Tuple => quote!(__middleware_f.debug_tuple(#name) #(#fields)* .finish()),
            Style::Unit => quote!(__middleware_f.write_str(#name)),
        }
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics #p::fmt::Debug for #ident #ty_generics #where_clause {
            fn fmt(&self, __middleware_f: &mut #p::fmt::Formatter<'_>) -> #p::fmt::Result {
                #body
            }
        }
    }
}

/// The inner service's type parameter: `S`, unless the struct already uses that name.
fn inner_param(generics: &Generics) -> Ident {
    let taken = |name: &str| generics.type_params().any(|param| param.ident == name);
    ["S", "Inner", "MiddlewareInner"]
        .into_iter()
        .find(|name| !taken(name))
        .map_or_else(
            || format_ident!("__MiddlewareInner"),
            |name| format_ident!("{name}"),
        )
}

fn ty_span(ty: &syn::Type) -> Span {
    syn::spanned::Spanned::span(ty)
}

/// `Duration :: from_secs (5)` → `Duration::from_secs(5)`: token-printing spaces, removed
/// where they are noise in a doc line.
fn tidy(tokens: &str) -> String {
    tokens
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" ,", ",")
        .replace(" .", ".")
        .replace(". ", ".")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace("& ", "&")
}
