//! `#[handler]`: the generated items. `quote!` only; the decisions are in `validate.rs`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{Ident, ItemFn, ReturnType, spanned::Spanned};

use super::{
    parse::{Function, LayerKind},
    validate::{Param, Plan, Presence, Value},
};
use crate::{
    fn_attr::{self, StateDebug},
    paths,
};

/// The handler value (named after the function), its `service` method, and (for a handler
/// without state) axum's `Handler` through `middleware_std`'s hidden macro. With `fallback`,
/// `service` is a stand-in that never runs: the errors were reported, and code that mounts
/// the handler does not fail a second time.
pub(crate) fn expand(function: &Function<'_>, plan: &Plan, fallback: bool) -> TokenStream {
    let p = paths::private_std(function.args.krate.get(), Span::call_site());
    if function.args.associated.is_some() {
        return if fallback {
            fallback_service(function, &p)
        } else {
            service(function, plan, &p)
        };
    }
    let value = value_type(function, &p);
    let debug = debug_impl(function, &p);
    let service = if fallback {
        fallback_service(function, &p)
    } else {
        service(function, plan, &p)
    };
    let ident = &function.original.sig.ident;
    // Mounts with `get(name)`, the fallback too: code that mounts it does not fail a second
    // time. `State<T>` parameters are handed over by the `Handler` impl.
    let states = plan.router_states().filter(|_| !fallback);
    let axum = (function.args.state.get().is_none() && (plan.body.is_none() || fallback))
        .then(|| quote!(#p::axum_handler!(#ident #(, #states)*);));
    quote! {
        #value
        const _: () = {
            #debug
            #service
            #axum
        };
    }
}

/// `struct name;` (a unit struct: `get(name)` and `name.service()` read like the function), or
/// with `state = T`, `struct name(pub T);` (`name(state).service()`). Keeps the function's docs.
fn value_type(function: &Function<'_>, p: &TokenStream) -> TokenStream {
    let original = function.original;
    let ident = &original.sig.ident;
    let vis = &original.vis;
    let docs = function.docs();
    if let Some(state) = function.args.state.get() {
        quote! {
            #(#docs)*
            // The handler value keeps the function's name.
            #[allow(non_camel_case_types)]
            #[derive(#p::Clone)]
            #vis struct #ident(
                #[doc = "The shared state, handed to each call: by reference, or cloned if the handler takes it by value."]
                #vis #state,
            );
        }
    } else {
        quote! {
            #(#docs)*
            // The handler value keeps the function's name.
            #[allow(non_camel_case_types)]
            #[derive(#p::Clone, #p::Copy)]
            #vis struct #ident;
        }
    }
}

fn debug_impl(function: &Function<'_>, p: &TokenStream) -> TokenStream {
    let state = function.args.state.get().map(|_| StateDebug::Tuple);
    fn_attr::debug_impl(&function.original.sig.ident, &function.name(), state, p)
}

/// The user's function, moved inside `service`: same signature and body, without docs,
/// visibility, or our parameter attributes.
fn nested(function: &Function<'_>) -> ItemFn {
    fn_attr::nested(function.original, &["from_outer", "body"])
}

/// The user's function as an associated function of an `associated` handler: renamed
/// `__middleware_<name>`, hidden, without our parameter attributes. In the same `impl` block,
/// it may use `Self`.
fn associated_original(function: &Function<'_>) -> ItemFn {
    let mut original = nested(function);
    original.sig.ident = hidden_ident(function);
    original
}

fn hidden_ident(function: &Function<'_>) -> Ident {
    format_ident!(
        "__middleware_{}",
        function.name(),
        span = function.original.sig.ident.span()
    )
}

/// The signature of `service` (for an `associated` handler: of the function itself, named and
/// documented like the user's): generic over the request body unless a parameter fixes it.
fn service_signature(
    function: &Function<'_>,
    plan: Option<&Plan>,
    p: &TokenStream,
) -> (TokenStream, TokenStream) {
    let generic = Ident::new("__MiddlewareB", Span::call_site());
    // An extractor that may consume the body reads it as an `http_body::Body`; a `layer(..)`
    // may need one too (an around-style middleware is generic over `B: Body`), and says so
    // only once it is applied, too late for an `impl Service` signature: ask for a body.
    let readable = plan.is_some_and(|plan| {
        plan.params
            .iter()
            .any(|param| matches!(param, Param::BodyExtractor(_)))
    }) || function
        .args
        .layers
        .iter()
        .any(|layer| matches!(layer.kind, LayerKind::Custom(_)));
    let readable =
        readable.then(|| quote!(+ #p::Body<Data = #p::Bytes, Error: #p::Into<#p::BoxError>>));
    let (params, body, bounds) = match plan.and_then(|plan| plan.body.as_ref()) {
        Some(body) => (TokenStream::new(), quote!(#body), TokenStream::new()),
        None => (
            quote!(<#generic>),
            quote!(#generic),
            quote!(where #generic: #p::Send + 'static #readable),
        ),
    };
    let vis = &function.original.vis;
    let head = if function.args.associated.is_some() {
        let docs = function.docs();
        let ident = &function.original.sig.ident;
        quote!(#(#docs)* #[must_use] #vis fn #ident #params())
    } else {
        let doc = format!(
            "The handler [`{0}`] with its layers, as a tower `Service` (built once: call it once and clone the service).",
            function.name(),
        );
        quote!(#[doc = #doc] #[must_use] #vis fn service #params(self))
    };
    let signature = quote! {
        #head -> impl #p::Service<
            #p::http::Request<#body>,
            Response = #p::http::Response<
                impl #p::Body<Data = #p::Bytes, Error: #p::Into<#p::BoxError>> + #p::Send + 'static,
            >,
            Error = #p::Infallible,
            Future: #p::Send + 'static,
        > + #p::Clone + #p::Send + 'static
        #bounds
    };
    (signature, body)
}

fn service(function: &Function<'_>, plan: &Plan, p: &TokenStream) -> TokenStream {
    let ident = &function.original.sig.ident;
    let (signature, body) = service_signature(function, Some(plan), p);
    let nested = nested(function);
    let name = function.name();

    let req = Ident::new("__middleware_req", Span::mixed_site());
    let parts = Ident::new("__middleware_parts", Span::mixed_site());
    let body_local = Ident::new("__middleware_body", Span::mixed_site());
    let this = Ident::new("__middleware_this", Span::mixed_site());
    let cx = Ident::new("__middleware_cx", Span::mixed_site());
    let Arguments { lets, last, args } = arguments(plan, &name, p);
    let takes_state = plan
        .params
        .iter()
        .any(|param| matches!(param, Param::State | Param::StateOwned));
    let capture = takes_state.then(|| quote!(let #this = #p::Clone::clone(&self);));
    let output_span = match &function.original.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => ident.span(),
    };
    let call = if function.args.associated.is_some() {
        let hidden = hidden_ident(function);
        quote_spanned!(ident.span()=> Self::#hidden(#(#args),*).await)
    } else {
        quote_spanned!(ident.span()=> #ident(#(#args),*).await)
    };
    // The conversion is picked from the answer's type (ours, then axum's `IntoResponse`);
    // a type with none gets one error, on the return type.
    let respond = quote_spanned! {output_span=>
        {
            #[allow(unused_imports, clippy::wildcard_imports)]
            use #p::kind::traits::*;
            (&&&&#p::kind::wrap(&__middleware_out))
                .handler_kind()
                .respond(__middleware_out, #p::Option::as_ref(&#cx))
        }
    };
    let handler = quote! {
        #p::HandlerFn(move |#req: #p::http::Request<#body>| {
            #capture
            // Split before the block: the block captures the parts and the body, not the
            // request as well (a captured value keeps its slot for the whole future).
            let (mut #parts, #body_local) = #req.into_parts();
            async move {
                // Captured even when no parameter takes it: the body is dropped with the
                // future, not before the handler runs.
                let _ = &#body_local;
                #(#lets)*
                let #cx = #p::try_context(&#parts);
                #(#last)*
                let __middleware_out = #call;
                #respond
            }
        })
    };
    let layers = layers(function, p);
    let checks = provided_checks(function, plan, p);
    let svc = Ident::new("__middleware_svc", Span::mixed_site());
    if function.args.associated.is_some() {
        let original = associated_original(function);
        return quote! {
            // `#[handler]` requires an `async fn`, awaiting or not.
            #[allow(clippy::unused_async)]
            #[doc(hidden)]
            #original
            #signature
            {
                let #svc = #handler;
                #(#layers)*
                #checks
                #svc
            }
        };
    }
    quote! {
        #[automatically_derived]
        impl #ident {
            #signature
            {
                // `#[handler]` requires an `async fn`, awaiting or not.
                #[allow(clippy::unused_async)]
                #nested
                let #svc = #handler;
                #(#layers)*
                #checks
                #svc
            }
        }
    }
}

/// The name of the `index`th layer written.
fn layer_ident(index: usize) -> Ident {
    format_ident!("__middleware_layer{}", index, span = Span::mixed_site())
}

/// For each `Ctx<T>` parameter, a check (on the types, nothing runs) that a layer of the
/// handler declares it provides `T`, its error on the parameter.
fn provided_checks(function: &Function<'_>, plan: &Plan, p: &TokenStream) -> TokenStream {
    if plan.provided.is_empty() {
        return TokenStream::new();
    }
    let checks = plan.provided.iter().map(|ty| {
        let answers = (0..function.args.layers.len())
            .rev()
            .fold(quote!(()), |rest, index| {
                let layer = layer_ident(index);
                quote! {
                    (
                        (&&#p::provides::probe::<#ty, _, _>(&#layer)).provided(),
                        #rest,
                    )
                }
            });
        quote_spanned!(ty.span()=> #p::provides::check::<#ty, _>(&#answers);)
    });
    quote! {
        {
            #[allow(unused_imports, clippy::wildcard_imports)]
            use #p::provides::traits::*;
            #(#checks)*
        }
    }
}

/// `let layerN = <layer>; let svc = Layer::layer(&layerN, svc);` for each layer, innermost
/// (the last written) first.
fn layers(function: &Function<'_>, p: &TokenStream) -> Vec<TokenStream> {
    function
        .args
        .layers
        .iter()
        .enumerate()
        .rev()
        .map(|(index, layer)| {
            let span = layer.key.span();
            let expr = match &layer.kind {
                LayerKind::Timeout(duration) => {
                    let secs = duration.as_secs();
                    let nanos = duration.subsec_nanos();
                    quote_spanned!(span=> #p::TimeoutLayer::new(#p::Duration::new(#secs, #nanos)))
                }
                LayerKind::TimeoutLayer(expr) => quote_spanned!(span=> #p::timeout_layer(#expr)),
                LayerKind::Auth(expr) => quote_spanned!(span=> #p::auth_layer(#expr)),
                LayerKind::Log(None) => quote_spanned!(span=> #p::LogLayer::new()),
                LayerKind::Timing(None) => quote_spanned!(span=> #p::ServerTimingLayer::new()),
                LayerKind::CatchPanic(None) => quote_spanned!(span=> #p::CatchPanicLayer::new()),
                LayerKind::RequestId(None) => quote_spanned!(span=> #p::SetRequestIdLayer::new()),
                LayerKind::RequestId(Some(expr)) => {
                    quote_spanned!(span=> #p::request_id_layer(#expr))
                }
                LayerKind::Log(Some(expr))
                | LayerKind::Timing(Some(expr))
                | LayerKind::CatchPanic(Some(expr))
                | LayerKind::Custom(expr) => quote!(#expr),
            };
            let svc = Ident::new("__middleware_svc", Span::mixed_site());
            let ident = layer_ident(index);
            quote_spanned! {span=>
                let #ident = #expr;
                let #svc = #p::Layer::layer(&#ident, #svc);
            }
        })
        .collect()
}

/// How each parameter is obtained: `lets` read the parts (in parameter order), `last` take the
/// parts and the body apart (after every read), `args` are the call's arguments.
struct Arguments {
    lets: Vec<TokenStream>,
    last: Vec<TokenStream>,
    args: Vec<TokenStream>,
}

fn arguments(plan: &Plan, name: &str, p: &TokenStream) -> Arguments {
    let parts = Ident::new("__middleware_parts", Span::mixed_site());
    let body_local = Ident::new("__middleware_body", Span::mixed_site());
    let this = Ident::new("__middleware_this", Span::mixed_site());
    let mut lets = Vec::new();
    let mut last = Vec::new();
    let mut args = Vec::new();
    for (index, param) in plan.params.iter().enumerate() {
        let arg = format_ident!("__middleware_arg{}", index, span = Span::mixed_site());
        match param {
            Param::Request => {
                last.push(quote!(let #arg = #p::http::Request::from_parts(#parts, #body_local);));
                args.push(quote!(#arg));
            }
            Param::Parts => {
                last.push(quote!(let #arg = #parts;));
                args.push(quote!(#arg));
            }
            Param::Body => {
                last.push(quote!(let #arg = #body_local;));
                args.push(quote!(#arg));
            }
            Param::Context => {
                lets.push(quote!(let #arg = #p::context(&mut #parts);));
                args.push(quote!(#arg));
            }
            Param::ContextRef => {
                lets.push(quote!(let #arg = #p::context(&mut #parts);));
                args.push(quote!(&#arg));
            }
            Param::Value { value, presence } => {
                let read = match value {
                    Value::Principal => quote!(#p::value::<#p::Principal>(&#parts)),
                    Value::RequestId => quote!(#p::request_id(&#parts)),
                    Value::Deadline => quote!(#p::deadline(&#parts)),
                };
                let what = value.type_name();
                lets.push(match presence {
                    Presence::Optional => quote!(let #arg = #read;),
                    Presence::Required => quote! {
                        let #p::Option::Some(#arg) = #read else {
                            return #p::rejection(#p::missing(&#parts, #what, #name));
                        };
                    },
                });
                args.push(quote!(#arg));
            }
            Param::RouterState(ty) => {
                let what = format!("State<{}>", ty.to_token_stream());
                lets.push(quote! {
                    let #p::Option::Some(#arg) = #p::router_state::<#ty>(&#parts) else {
                        return #p::rejection(#p::missing(&#parts, #what, #name));
                    };
                });
                args.push(quote!(#p::__axum::extract::State(#arg)));
            }
            Param::State => args.push(quote!(&#this.0)),
            Param::StateOwned => args.push(quote!(#p::Clone::clone(&#this.0))),
            Param::BodyExtractor(ty) => {
                let extract = quote_spanned! {ty.span()=>
                    <#ty as #p::FromHandlerRequest<_>>::from_handler_request(
                        #p::http::Request::from_parts(#parts, #body_local),
                    )
                };
                last.push(quote! {
                    let #arg = match #extract.await {
                        #p::Result::Ok(value) => value,
                        #p::Result::Err(rejection) => return #p::rejection(rejection),
                    };
                });
                args.push(quote!(#arg));
            }
            Param::Extractor(ty) => {
                let extract = quote_spanned! {ty.span()=>
                    <#ty as #p::FromHandlerParts>::from_handler_parts(&mut #parts)
                };
                lets.push(quote! {
                    let #arg = match #extract.await {
                        #p::Result::Ok(value) => value,
                        #p::Result::Err(rejection) => return #p::rejection(rejection),
                    };
                });
                args.push(quote!(#arg));
            }
        }
    }
    Arguments { lets, last, args }
}

/// On error: a `service` with the same signature that answers `200` and is never run (the
/// build fails on the errors next to it). The user's function is kept for diagnostics.
fn fallback_service(function: &Function<'_>, p: &TokenStream) -> TokenStream {
    let ident = &function.original.sig.ident;
    let (signature, body) = service_signature(function, None, p);
    let nested = nested(function);
    // The layer expressions stay too, never evaluated: their names are used and their own
    // errors reported.
    let exprs = function
        .args
        .layers
        .iter()
        .filter_map(|layer| match &layer.kind {
            LayerKind::TimeoutLayer(expr)
            | LayerKind::Auth(expr)
            | LayerKind::Log(Some(expr))
            | LayerKind::Timing(Some(expr))
            | LayerKind::CatchPanic(Some(expr))
            | LayerKind::RequestId(Some(expr))
            | LayerKind::Custom(expr) => Some(expr),
            _ => None,
        });
    let stand_in = quote! {
        let _ = || { #(let _ = #exprs;)* };
        #p::HandlerFn(|_: #p::http::Request<#body>| async {
            #p::IntoHandlerResponse::into_handler_response((), #p::Option::None)
        })
    };
    if function.args.associated.is_some() {
        let original = associated_original(function);
        return quote! {
            // Kept for diagnostics only: the attribute is in error, so nothing calls it.
            #[allow(dead_code, clippy::unused_async)]
            #[doc(hidden)]
            #original
            #signature
            {
                #stand_in
            }
        };
    }
    quote! {
        #[automatically_derived]
        impl #ident {
            #signature
            {
                // Kept for diagnostics only: the attribute is in error, so nothing calls it.
                #[allow(dead_code)]
                #nested
                #stand_in
            }
        }
    }
}
