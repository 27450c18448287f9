//! `#[middleware_fn]`: the generated items. `quote!` only; the decisions are in `validate.rs`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::{Ident, ItemFn, ext::IdentExt, spanned::Spanned};

use super::{
    parse::Function,
    validate::{Extra, Kind, Plan},
};
use crate::{
    fn_attr::{self, StateDebug},
    paths,
};

/// The value type (named after the function) and its trait impl. With `fallback`, the impl's
/// bodies are never run and the user's function is only kept for diagnostics, so a signature
/// error is reported once and code that uses the value does not fail a second time.
pub(crate) fn expand(function: &Function<'_>, plan: &Plan, fallback: bool) -> TokenStream {
    let ident = &function.original.sig.ident;
    let (import, alias) = paths::aliased(
        &paths::private(function.args.krate.get(), Span::call_site()),
        ident,
    );
    let p = quote!(#alias);
    // On error the user's function still compiles, nested in the constructor: its body is
    // checked, its imports are used, and the IDE keeps working.
    let kept = fallback.then(|| {
        let nested = kept(function, plan, &p);
        quote! {
            // Kept for diagnostics only: the signature is in error, so nothing calls it.
            #[allow(dead_code)]
            #nested
        }
    });
    let value = value_type(function, &p, kept.as_ref());
    let debug = debug_impl(function, &p);
    let body = if fallback {
        fallback_impl(function, plan, &p)
    } else {
        match &plan.kind {
            Kind::Around => around_impl(function, plan, &p),
            Kind::Hook { state } => hook_impl(function, plan, state, &p),
        }
    };
    let state = function
        .args
        .state
        .get()
        .map(|state| state_impls(ident, state, &alias));
    let bounds = shared_state(function);
    let layer = layer_impl(ident, plan, bounds.as_ref(), &p);
    quote! {
        #import
        #value
        const _: () = {
            #debug
            #body
            #state
            #layer
        };
    }
}

/// `Layer<S>` for the value, so `.layer(stamp())` works as it does for a derived struct: each
/// service gets a copy of the value (a clone of its state).
fn layer_impl(
    ident: &Ident,
    plan: &Plan,
    bounds: Option<&TokenStream>,
    p: &TokenStream,
) -> TokenStream {
    let inner = Ident::new("__MiddlewareInner", Span::call_site());
    let adapter = match plan.kind {
        Kind::Around => quote!(#p::MiddlewareService),
        Kind::Hook { .. } => quote!(#p::HookService),
    };
    quote! {
        #[automatically_derived]
        impl<#inner> #p::Layer<#inner> for #ident
        where
            for<'__m> #ident: #p::Clone,
            #bounds
        {
            type Service = #adapter<Self, #inner>;

            fn layer(&self, __middleware_inner: #inner) -> Self::Service {
                #adapter::new(__middleware_inner, #p::Clone::clone(self))
            }
        }
    }
}

/// For a value with state: `Clone` when the state is `Clone`, and the check that the state can
/// be shared by every request (`Sync + 'static`), on the user's type. The trait impls take the
/// state's bounds as a where clause instead of failing themselves, so a state that is not
/// shareable is reported once, by the check, and not again by each impl and by the future.
/// (`for<'__m>` keeps a bound on a concrete type from being checked where it is written.)
fn state_impls(ident: &Ident, state: &syn::Type, alias: &Ident) -> TokenStream {
    let p = quote!(#alias);
    let check = quote_spanned! {state.span()=>
        #[diagnostic::on_unimplemented(
            message = "`{Self}` cannot be the state of a `#[middleware_fn]`",
            label = "shared by every request, so it must be `Send + Sync + 'static`",
            note = "wrap it (`Arc<Mutex<T>>` for a `RefCell`, `Arc` for an `Rc`) or keep it per request in the context"
        )]
        trait __MiddlewareState {}
        impl<T: ?Sized + ::core::marker::Sync + 'static> __MiddlewareState for T {}
        fn __middleware_check<T: ?Sized + __MiddlewareState>() {}
        fn __middleware_state() {
            __middleware_check::<#state>();
        }
    };
    quote! {
        #check

        #[automatically_derived]
        impl #p::Clone for #ident
        where
            for<'__m> #state: #p::Clone,
        {
            fn clone(&self) -> Self {
                #ident {
                    state: #p::Clone::clone(&self.state),
                }
            }
        }
    }
}

/// `struct name {}` (type namespace only, so the name stays free for local bindings) and
/// `const fn name() -> name`, or with `state = T`, `struct name { state: T }` and
/// `const fn name(state: T) -> name`. The function keeps the user's docs.
fn value_type(function: &Function<'_>, p: &TokenStream, kept: Option<&TokenStream>) -> TokenStream {
    let original = function.original;
    let ident = &original.sig.ident;
    let vis = &original.vis;
    let docs = function.docs();
    let field = Ident::new("state", Span::call_site());
    let type_doc = format!(
        "The middleware value that [`{0}()`](fn@{0}) returns; generated by `#[middleware_fn]`.",
        ident.unraw()
    );
    let (derives, fields, param, init) = match function.args.state.get() {
        Some(state) => (
            TokenStream::new(),
            quote!(#[doc = "The shared state, handed to each call: by reference, or cloned if the function takes it by value."] #vis #field: #state),
            quote!(#field: #state),
            quote!(#field),
        ),
        None => (
            quote!(#[derive(#p::Clone, #p::Copy)]),
            TokenStream::new(),
            TokenStream::new(),
            TokenStream::new(),
        ),
    };
    quote! {
        #[doc = #type_doc]
        // The value type keeps the function's name: `MiddlewareLayer::new(stamp())` reads like
        // the function it came from.
        #[allow(non_camel_case_types)]
        #derives
        #vis struct #ident { #fields }

        #(#docs)*
        #[must_use]
        #vis const fn #ident(#param) -> #ident {
            #kept
            #ident { #init }
        }
    }
}

fn debug_impl(function: &Function<'_>, p: &TokenStream) -> TokenStream {
    let state = function.args.state.get().map(|_| StateDebug::Struct);
    fn_attr::debug_impl(&function.original.sig.ident, &function.name(), state, p)
}

/// The user's function, moved inside the trait method: same signature and body, no docs (they
/// went to the value type) and no visibility.
fn nested(function: &Function<'_>) -> ItemFn {
    fn_attr::nested(function.original, &[])
}

/// The user's function as kept next to an error: for an around middleware, its type parameter
/// also gets the `Next` bound the error asked for, so that `N::ReqBody`, `Outcome<N>` and
/// `next.run(..)` in the signature and body are not reported a second time.
fn kept(function: &Function<'_>, plan: &Plan, p: &TokenStream) -> ItemFn {
    let mut kept = nested(function);
    if matches!(plan.kind, Kind::Around) {
        if let Some(param) = kept.sig.generics.type_params_mut().next() {
            param.bounds.push(syn::parse_quote!(#p::Next));
        }
    }
    kept
}

/// The arguments after the fixed ones, in the order the function declares them.
fn extra_args(plan: &Plan, cx: &Ident, p: &TokenStream) -> Vec<TokenStream> {
    plan.extras
        .iter()
        .map(|extra| match extra {
            Extra::Context => quote!(#cx),
            Extra::ContextRef => quote!(&#cx),
            Extra::State => quote!(&self.state),
            Extra::StateOwned => quote!(#p::Clone::clone(&self.state)),
        })
        .collect()
}

/// The state as the `after` fn receives it: the way `before` takes it.
fn after_state(plan: &Plan, p: &TokenStream) -> Option<TokenStream> {
    plan.extras.iter().find_map(|extra| match extra {
        Extra::State => Some(quote!(, &self.state)),
        Extra::StateOwned => Some(quote!(, #p::Clone::clone(&self.state))),
        Extra::Context | Extra::ContextRef => None,
    })
}

/// With state, the trait impl's bounds on it (see [`state_impls`]).
fn shared_state(function: &Function<'_>) -> Option<TokenStream> {
    function.args.state.get().map(|state| {
        quote! {
            for<'__m> #state: ::core::marker::Send + ::core::marker::Sync + 'static,
        }
    })
}

/// `impl Middleware`: the user's function becomes `handle` itself, with the user's generics,
/// parameter patterns and types, return type and body. Not a nested `async fn` awaited from
/// `handle`: that would add a second state machine to every request's future (measured in
/// the benchmarks: five of them cost 40 % more time and 1.4 KB more per request than the
/// same five written by hand).
///
/// Nor an `async fn handle`: an `async fn` moves each argument into a local of its state
/// machine, and a local that is borrowed before an `.await` (`req.headers()`, then
/// `next.run(req).await`) keeps its slot across that await, beside the captured argument: the
/// request (about 250 bytes) stored twice in every level's future. `handle` binds the user's
/// parameters in its synchronous part and returns an `async move` block over them: the block
/// captures each binding once, and reading a capture copies nothing.
fn around_impl(function: &Function<'_>, plan: &Plan, p: &TokenStream) -> TokenStream {
    let original = function.original;
    let sig = &original.sig;
    let ident = &sig.ident;
    let attrs = original
        .attrs
        .iter()
        .filter(|attr| !attr.path().is_ident("doc"));
    let bounds = shared_state(function);
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let output = &sig.output;
    let block = &original.block;
    let req = Ident::new("__middleware_req", Span::mixed_site());
    let next = Ident::new("__middleware_next", Span::mixed_site());
    let cx = Ident::new("__middleware_cx", Span::mixed_site());
    // The validated signature: `(req, next, extras..)`, each a typed pattern.
    let mut typed = sig.inputs.iter().filter_map(|arg| match arg {
        syn::FnArg::Typed(typed) => Some(typed),
        syn::FnArg::Receiver(_) => None,
    });
    let (Some(req_arg), Some(next_arg)) = (typed.next(), typed.next()) else {
        return fallback_impl(function, plan, p);
    };
    let req_ty = &req_arg.ty;
    let next_ty = &next_arg.ty;
    let wants_context = plan
        .extras
        .iter()
        .any(|extra| matches!(extra, Extra::Context | Extra::ContextRef));
    let context = wants_context.then(|| {
        quote! {
            let mut #req = #req;
            let #cx = #p::Clone::clone(#p::RequestExt::context(&mut #req));
        }
    });
    // A plain name (`req`, `mut req`) is bound before the block, which then captures that
    // binding itself; `let _ = &name;` makes it captured even when the body never uses it, so
    // the request and `next` are dropped with the future, as an `async fn`'s arguments are.
    // Any other pattern (`_`, `ref req`, a destructuring) is bound inside the block, from the
    // captured argument (captured even by `_`), as an `async fn` binds it.
    let (outside, inside): (Vec<_>, Vec<_>) = [req_arg, next_arg]
        .into_iter()
        .zip([&req, &next])
        .map(|(arg, value)| {
            let pat = &arg.pat;
            let ty = &arg.ty;
            match &*arg.pat {
                syn::Pat::Ident(syn::PatIdent {
                    by_ref: None,
                    subpat: None,
                    ident,
                    ..
                }) => (quote!(let #pat: #ty = #value;), quote!(let _ = &#ident;)),
                _ => (
                    TokenStream::new(),
                    quote!(let _ = &#value; let #pat: #ty = #value;),
                ),
            }
        })
        .unzip();
    // Bound inside the block: `&cx` borrows the block's own capture of the context.
    let extras = typed.zip(extra_args(plan, &cx, p)).map(|(arg, value)| {
        let pat = &arg.pat;
        let ty = &arg.ty;
        quote!(let #pat: #ty = #value;)
    });
    // Spanned from the first to the last token of the user's return type, so that a future
    // that is not `Send` is reported on that type, whole.
    let future = match output {
        syn::ReturnType::Type(_, ty) => {
            let mut tokens = ty.to_token_stream().into_iter().map(|token| token.span());
            let first = tokens.next().unwrap_or_else(Span::call_site);
            let last = tokens.last().unwrap_or(first);
            let open = quote_spanned!(first=> impl ::core::future::Future);
            let send = quote_spanned!(last=> ::core::marker::Send);
            quote!(#open<Output = #ty> + #send)
        }
        syn::ReturnType::Default => quote! {
            impl ::core::future::Future<Output = ()> + ::core::marker::Send
        },
    };
    quote! {
        #[automatically_derived]
        impl #p::Middleware for #ident where #bounds {
            #(#attrs)*
            fn handle #generics (
                &self,
                // `mut`, for a `ref mut` pattern bound from it.
                #[allow(unused_mut)] mut #req: #req_ty,
                #[allow(unused_mut)] mut #next: #next_ty,
            ) -> #future #where_clause {
                #context
                #(#outside)*
                async move {
                    #(#inside)*
                    #(#extras)*
                    #block
                }
            }
        }
    }
}

fn hook_impl(
    function: &Function<'_>,
    plan: &Plan,
    state: &syn::Type,
    p: &TokenStream,
) -> TokenStream {
    let ident = &function.original.sig.ident;
    let bounds = shared_state(function);
    let nested = nested(function);
    let req = Ident::new("__middleware_req", Span::mixed_site());
    let res = Ident::new("__middleware_res", Span::mixed_site());
    let value = Ident::new("__middleware_state", Span::mixed_site());
    let cx = Ident::new("__middleware_cx", Span::mixed_site());
    let extras = extra_args(plan, &cx, p);
    let before = quote_spanned!(ident.span()=> #ident(#req #(, #extras)*));
    let after = if let Some(after) = function.args.after.get() {
        let shared = after_state(plan, p);
        let call = quote_spanned!(after.span()=> #after(#value, #res #shared));
        quote! {
            fn after<B>(&self, #value: Self::State, #res: &mut #p::http::Response<#p::ResponseBody<B>>) {
                #call;
            }
        }
    } else {
        quote! {
            fn after<B>(&self, _: Self::State, _: &mut #p::http::Response<#p::ResponseBody<B>>) {}
        }
    };
    quote! {
        #[automatically_derived]
        impl #p::Hook for #ident where #bounds {
            type State = #state;

            fn before<B>(
                &self,
                #req: &mut #p::http::Request<B>,
            ) -> #p::ControlFlow<#p::http::Response<#p::Bytes>, Self::State> {
                #nested
                #before
            }

            #after
        }
    }
}

fn fallback_impl(function: &Function<'_>, plan: &Plan, p: &TokenStream) -> TokenStream {
    let ident = &function.original.sig.ident;
    let bounds = shared_state(function);
    match &plan.kind {
        Kind::Around => quote! {
            #[automatically_derived]
            impl #p::Middleware for #ident where #bounds {
                async fn handle<N: #p::Next>(
                    &self,
                    _: #p::http::Request<N::ReqBody>,
                    _: N,
                ) -> #p::Outcome<N> {
                    #p::unreachable!()
                }
            }
        },
        Kind::Hook { .. } => quote! {
            #[automatically_derived]
            impl #p::Hook for #ident where #bounds {
                type State = ();

                fn before<B>(
                    &self,
                    _: &mut #p::http::Request<B>,
                ) -> #p::ControlFlow<#p::http::Response<#p::Bytes>> {
                    #p::unreachable!()
                }

                fn after<B>(&self, (): (), _: &mut #p::http::Response<#p::ResponseBody<B>>) {}
            }
        },
    }
}
