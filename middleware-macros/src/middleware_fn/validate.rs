//! `#[middleware_fn]`: checks the signature against the chosen form and classifies the
//! parameters. No type is rewritten: what the user wrote is what rustc checks, so type errors
//! land on the user's own tokens.

use quote::ToTokens;
use syn::{FnArg, GenericParam, Ident, ReturnType, Type, TypeParam};

use super::parse::Function;
use crate::{
    attr::Errors,
    fn_attr::{self, generic_args, single_arg, token_string},
};

/// What to generate, decided from the function.
pub(crate) struct Plan {
    pub(crate) kind: Kind,
    /// The parameters after the fixed ones, in the order written.
    pub(crate) extras: Vec<Extra>,
}

pub(crate) enum Kind {
    /// `async fn f<N: Next>(req, next, ..) -> Outcome<N>`: implements `Middleware`.
    Around,
    /// `#[middleware_fn(before)] fn f<B>(req: &mut Request<B>, ..) -> ControlFlow<_, T>`:
    /// implements `Hook` with `State = T`.
    Hook { state: Box<Type> },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extra {
    /// `cx: Context`, a handle on the request's context.
    Context,
    /// `cx: &Context`.
    ContextRef,
    /// `state: &T` with `#[middleware_fn(state = T)]`.
    State,
    /// `state: T` with `#[middleware_fn(state = T)]`: a clone per call (for `Copy` or `Arc`
    /// state, where a reference would be the less natural signature).
    StateOwned,
}

const AROUND_FORM: &str = "async fn name<N: Next>(req: Request<N::ReqBody>, next: N) -> Outcome<N>";
const HOOK_FORM: &str = "fn name<B>(req: &mut Request<B>) -> ControlFlow<Response<Bytes>, State>";

pub(crate) fn validate(function: &Function<'_>, errors: &mut Errors) -> Plan {
    let hook = is_hook(function);
    if !qualifiers(function, hook, errors) {
        // The function is of the other form than the attribute says: checking its signature
        // against this form would only repeat that.
        let kind = if hook {
            Kind::Hook {
                state: Box::new(syn::parse_quote!(())),
            }
        } else {
            Kind::Around
        };
        return Plan {
            kind,
            extras: Vec::new(),
        };
    }
    let generic = generics(function, hook, errors);
    let (extras, rejected) = parameters(function, hook, generic.as_ref(), errors);
    let kind = if hook {
        Kind::Hook {
            state: Box::new(hook_state(function, generic.as_ref(), errors)),
        }
    } else {
        around_output(function, generic.as_ref(), errors);
        Kind::Around
    };
    arguments(function, hook, &extras, rejected, errors);
    Plan { kind, extras }
}

/// Whether the function is checked as a hook: `before` says so, or, when the attribute has an
/// entry that could not be read (a misspelled `before`, reported already), a synchronous `fn`.
pub(crate) fn is_hook(function: &Function<'_>) -> bool {
    let args = &function.args;
    args.before.get().is_some() || (args.unreadable && function.original.sig.asyncness.is_none())
}

/// Checks the qualifiers; `false` when `async` does not match the form.
fn qualifiers(function: &Function<'_>, hook: bool, errors: &mut Errors) -> bool {
    let sig = &function.original.sig;
    fn_attr::unsupported_qualifiers(sig, "#[middleware_fn]", errors);
    match (&sig.asyncness, hook) {
        (None, false) => errors.spanned(
            sig.fn_token,
            "`#[middleware_fn]` must be applied to an `async fn`; for a synchronous hook, write `#[middleware_fn(before)]`",
        ),
        (Some(token), true) => errors.spanned(
            token,
            "`#[middleware_fn(before)]` must be applied to a synchronous `fn`: a hook runs inside `Service::call` and cannot await; remove `before` for an around middleware",
        ),
        _ => return true,
    }
    false
}

/// Checks the generics; returns the one type parameter (`N: Next` or the body `B`).
fn generics(function: &Function<'_>, hook: bool, errors: &mut Errors) -> Option<Ident> {
    let sig = &function.original.sig;
    let mut found: Option<&TypeParam> = None;
    for param in &sig.generics.params {
        match param {
            GenericParam::Lifetime(param) => errors.spanned(
                &param.lifetime,
                "`#[middleware_fn]` does not support lifetime parameters: the middleware is shared by every request, so its future is `'static`",
            ),
            GenericParam::Const(param) => errors.spanned(
                &param.ident,
                "`#[middleware_fn]` does not support const parameters",
            ),
            GenericParam::Type(param) if found.is_some() => errors.spanned(
                &param.ident,
                if hook {
                    "unsupported generic parameter: `#[middleware_fn(before)]` is generic over exactly one body type, `<B>`"
                } else {
                    "unsupported generic parameter: `#[middleware_fn]` is generic over exactly one `N: Next`"
                },
            ),
            GenericParam::Type(param) => {
                found = Some(param);
                if let Some(default) = &param.default {
                    errors.spanned(default, "a default is not allowed here");
                }
                if hook {
                    if !param.bounds.is_empty() {
                        errors.spanned(
                            &param.bounds,
                            "the body type must be unbounded: `Hook::before` accepts any request body",
                        );
                    }
                } else if !is_next_bound(param) && sig.generics.where_clause.is_none() {
                    errors.spanned(
                        param,
                        format_args!(
                            "expected `{}: Next`: an around middleware is generic over the rest of the stack, and nothing else",
                            param.ident
                        ),
                    );
                }
            }
        }
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.spanned(
            clause.where_token,
            "`#[middleware_fn]` does not support `where` clauses: the generic parameter takes its bound inline",
        );
    }
    if found.is_none() {
        errors.spanned(
            &sig.ident,
            if hook {
                format!("expected a body type parameter: `{HOOK_FORM}`")
            } else {
                format!("expected a type parameter for the rest of the stack: `{AROUND_FORM}`")
            },
        );
    }
    found.map(|param| param.ident.clone())
}

fn is_next_bound(param: &TypeParam) -> bool {
    let mut bounds = param.bounds.iter();
    matches!(
        (bounds.next(), bounds.next()),
        (Some(syn::TypeParamBound::Trait(bound)), None)
            if bound.lifetimes.is_none() && last_ident_is(&bound.path, "Next")
    )
}

/// Checks the fixed parameters and classifies the rest.
fn parameters(
    function: &Function<'_>,
    hook: bool,
    generic: Option<&Ident>,
    errors: &mut Errors,
) -> (Vec<Extra>, bool) {
    let sig = &function.original.sig;
    let mut typed = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver.self_token,
                "`#[middleware_fn]` takes a free function, not a method: remove `self` (to hold data, use `#[middleware_fn(state = T)]` or implement the trait)",
            ),
            FnArg::Typed(arg) => typed.push(&*arg.ty),
        }
    }
    let fixed = if hook { 1 } else { 2 };
    if typed.len() < fixed && !function.has_receiver() {
        let span = sig.paren_token.span.join();
        if hook {
            errors.error(span, "expected the request: `(req: &mut Request<B>)`");
        } else {
            errors.error(span, "expected `(req: Request<N::ReqBody>, next: N)`");
        }
    }
    let generic_is = |ty: &Type| generic.is_some_and(|generic| is_type_ident(ty, generic));
    if hook {
        if let Some(&ty) = typed.first() {
            check_hook_request(ty, generic, errors);
        }
    } else {
        match (typed.first(), typed.get(1)) {
            (Some(&first), Some(&second)) if generic_is(first) && is_request(second) => {
                errors.spanned(
                    first,
                    "the request comes first: write `(req: Request<N::ReqBody>, next: N, ..)`",
                );
            }
            (first, second) => {
                if let Some(&first) = first {
                    check_around_request(first, generic, errors);
                }
                // Without the generic parameter (reported above), `next` cannot be checked.
                if let (Some(&second), Some(_)) = (second, generic) {
                    if !generic_is(second) {
                        let name = generic.map_or_else(|| String::from("N"), Ident::to_string);
                        errors.spanned(
                            second,
                            format_args!(
                                "expected the rest of the stack, `next: {name}`, as the second parameter"
                            ),
                        );
                    }
                }
            }
        }
    }
    let state = function.args.state.get().map(token_string);
    let mut extras = Vec::new();
    let mut rejected = false;
    for &ty in typed.iter().skip(fixed) {
        let Some(extra) = classify(ty, hook, state.as_deref(), errors) else {
            // A rejected context parameter cannot have been meant as the state.
            rejected |= !mentions_context(ty);
            continue;
        };
        let context = |extra: &Extra| matches!(extra, Extra::Context | Extra::ContextRef);
        let state = |extra: &Extra| matches!(extra, Extra::State | Extra::StateOwned);
        if extras
            .iter()
            .any(|seen| (context(seen) && context(&extra)) || (state(seen) && state(&extra)))
        {
            let what = if context(&extra) {
                "the context"
            } else {
                "the state"
            };
            errors.spanned(ty, format_args!("{what} is already a parameter"));
            continue;
        }
        extras.push(extra);
    }
    (extras, rejected)
}

/// Whether the parameter's type is `Context`, `&Context` or `&mut Context`.
fn mentions_context(ty: &Type) -> bool {
    let ty = match ty {
        Type::Reference(reference) => &*reference.elem,
        other => other,
    };
    matches!(ty, Type::Path(path) if path.qself.is_none() && last_ident_is(&path.path, "Context"))
}

fn classify(ty: &Type, hook: bool, state: Option<&str>, errors: &mut Errors) -> Option<Extra> {
    let context = |ty: &Type| matches!(ty, Type::Path(path) if path.qself.is_none() && last_ident_is(&path.path, "Context") && path.path.segments.last().is_some_and(|last| last.arguments.is_none()));
    let (referent, mutable) = match ty {
        Type::Reference(reference) => (Some(&*reference.elem), reference.mutability),
        _ => (None, None),
    };
    if context(ty) || referent.is_some_and(context) {
        if hook {
            errors.spanned(
                ty,
                "a hook gets no context parameter: call `req.context()` (creates it) or `req.try_context()` (never creates it)",
            );
            return None;
        }
        if let Some(mutable) = mutable {
            errors.spanned(
                mutable,
                "`&mut Context` would change a copy: insert values through `req.context()`, which later layers and the handler see; take `cx: &Context` or `cx: Context`",
            );
            return None;
        }
        return Some(if referent.is_some() {
            Extra::ContextRef
        } else {
            Extra::Context
        });
    }
    if let Some(state) = state {
        if token_string(ty) == state {
            return Some(Extra::StateOwned);
        }
    }
    if let (Some(referent), Some(mutable), Some(state)) = (referent, mutable, state) {
        if token_string(referent) == state {
            errors.spanned(
                mutable,
                format_args!(
                    "the state is shared by every request, so it is borrowed immutably: take `&{state}` (for changes, put an atomic or a `Mutex` inside)"
                ),
            );
            return Some(Extra::State);
        }
    }
    if let (Some(referent), None) = (referent, mutable) {
        let written = token_string(referent);
        match state {
            Some(state) if state == written => return Some(Extra::State),
            None => {
                errors.spanned(
                    referent,
                    format_args!(
                        "missing `state = {written}`: write `#[middleware_fn(state = {written})]` to receive shared state as `&{written}`"
                    ),
                );
                return None;
            }
            Some(_) => {}
        }
    }
    let expected = match (hook, state) {
        (false, Some(state)) => {
            format!(
                "expected the context (`cx: &Context` or `cx: Context`) or the state (`&{state}`)"
            )
        }
        (false, None) => String::from(
            "expected the context (`cx: &Context` or `cx: Context`) or shared state (`state: &T` with `#[middleware_fn(state = T)]`)",
        ),
        (true, Some(state)) => format!("expected the state (`&{state}`)"),
        (true, None) => String::from(
            "a hook takes the request and, with `#[middleware_fn(state = T)]`, `state: &T`; nothing else",
        ),
    };
    errors.spanned(ty, expected);
    None
}

fn check_around_request(ty: &Type, generic: Option<&Ident>, errors: &mut Errors) {
    let Some(arg) = request_body(ty) else {
        errors.spanned(
            ty,
            "expected the request, `req: Request<N::ReqBody>`, as the first parameter",
        );
        return;
    };
    let body_ok = match (arg, generic) {
        (Type::Path(path), Some(generic)) => {
            let segments: Vec<String> = path
                .path
                .segments
                .iter()
                .map(|segment| segment.ident.to_string())
                .collect();
            let qself_ok = path
                .qself
                .as_ref()
                .is_none_or(|qself| is_type_ident(&qself.ty, generic));
            qself_ok
                && match path.qself {
                    Some(_) => segments.last().is_some_and(|last| last == "ReqBody"),
                    None => segments == [generic.to_string(), String::from("ReqBody")],
                }
        }
        _ => generic.is_none(),
    };
    if !body_ok {
        let name = generic.map_or_else(|| String::from("N"), Ident::to_string);
        errors.spanned(
            arg,
            format_args!(
                "expected `Request<{name}::ReqBody>`: a middleware accepts any request body"
            ),
        );
    }
}

fn check_hook_request(ty: &Type, generic: Option<&Ident>, errors: &mut Errors) {
    let (inner, ok_ref) = match ty {
        Type::Reference(reference) => (&*reference.elem, reference.mutability.is_some()),
        other => (other, false),
    };
    let Some(arg) = request_body(inner) else {
        errors.spanned(
            ty,
            "expected the request, `req: &mut Request<B>`, as the first parameter",
        );
        return;
    };
    if !ok_ref {
        errors.spanned(
            ty,
            "expected `&mut Request<B>`: `before` borrows the request, the inner service gets it next",
        );
    }
    if let Some(generic) = generic {
        if !is_type_ident(arg, generic) {
            errors.spanned(
                arg,
                format_args!("expected `Request<{generic}>`: a hook accepts any request body"),
            );
        }
    }
}

fn around_output(function: &Function<'_>, generic: Option<&Ident>, errors: &mut Errors) {
    let sig = &function.original.sig;
    let name = generic.map_or_else(|| String::from("N"), Ident::to_string);
    let ReturnType::Type(_, ty) = &sig.output else {
        errors.spanned(
            &sig.ident,
            format_args!("expected a return type, `-> Outcome<{name}>`"),
        );
        return;
    };
    let ok = single_arg(ty, "Outcome")
        .is_some_and(|arg| generic.is_none_or(|generic| is_type_ident(arg, generic)));
    if !ok {
        errors.spanned(
            ty,
            format_args!(
                "expected `Outcome<{name}>`: the response (with a `ResponseBody`) or the inner error"
            ),
        );
    }
}

/// The `State` of the hook: the `Continue` type of the return type.
fn hook_state(function: &Function<'_>, generic: Option<&Ident>, errors: &mut Errors) -> Type {
    let sig = &function.original.sig;
    let unit: Type = syn::parse_quote!(());
    let expected = "expected `ControlFlow<Response<Bytes>, State>`: break with a response, or continue with what `after` receives";
    let ReturnType::Type(_, ty) = &sig.output else {
        errors.spanned(&sig.ident, expected);
        return unit;
    };
    let args = generic_args(ty, "ControlFlow");
    let Some(args) = args.filter(|args| (1..=2).contains(&args.len())) else {
        errors.spanned(ty, expected);
        return unit;
    };
    if !single_arg(args[0], "Response")
        .is_some_and(|body| matches!(body, Type::Path(path) if last_ident_is(&path.path, "Bytes")))
    {
        errors.spanned(
            args[0],
            "expected `Response<Bytes>`: a hook short-circuits with a fixed body",
        );
    }
    let state = args.get(1).map_or(unit, |&state| state.clone());
    if let Some(generic) = generic {
        if mentions(&state, generic) {
            errors.spanned(
                &state,
                format_args!("the state cannot depend on the body type `{generic}`"),
            );
        }
    }
    state
}

/// Cross-checks of the attribute arguments against the function. With a `rejected` parameter
/// (reported already, and maybe the state misspelled), an unused `state` is not reported again.
fn arguments(
    function: &Function<'_>,
    hook: bool,
    extras: &[Extra],
    rejected: bool,
    errors: &mut Errors,
) {
    let args = &function.args;
    if let (Some(span), false) = (args.after.span(), hook) {
        errors.error(
            span,
            "`after` pairs with `before`: write `#[middleware_fn(before, after = ..)]` on a synchronous `fn`",
        );
    }
    if let Some(state) = args.state.get() {
        let taken = extras
            .iter()
            .any(|extra| matches!(extra, Extra::State | Extra::StateOwned));
        if !taken && !rejected && !function.has_receiver() {
            let written = token_string(state);
            errors.spanned(
                state,
                format_args!(
                    "`state = {written}` is declared, but no parameter takes `&{written}` (or `{written}`)"
                ),
            );
        }
    }
}

// ----- syntax helpers -------------------------------------------------------------------------

fn last_ident_is(path: &syn::Path, name: &str) -> bool {
    path.segments.last().is_some_and(|last| last.ident == name)
}

fn is_type_ident(ty: &Type, ident: &Ident) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none() && path.path.is_ident(ident))
}

fn is_request(ty: &Type) -> bool {
    request_body(ty).is_some()
}

/// `B` in `Request<B>` (any path ending in `Request`).
fn request_body(ty: &Type) -> Option<&Type> {
    single_arg(ty, "Request")
}

fn mentions(ty: &Type, ident: &Ident) -> bool {
    nested_mentions(ty.to_token_stream(), ident)
}

fn nested_mentions(tokens: proc_macro2::TokenStream, ident: &Ident) -> bool {
    tokens.into_iter().any(|token| match token {
        proc_macro2::TokenTree::Ident(found) => &found == ident,
        proc_macro2::TokenTree::Group(group) => nested_mentions(group.stream(), ident),
        _ => false,
    })
}
