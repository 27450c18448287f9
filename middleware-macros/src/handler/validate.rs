//! `#[handler]`: checks the signature, classifies the parameters, and checks what the layers
//! provide against what the parameters need (the context values and the layer order).

use syn::{FnArg, Type};

use super::{
    extractors,
    parse::{Function, LayerKind},
};
use crate::{
    attr::Errors,
    fn_attr::{self, single_arg, token_string},
};

/// What to generate, decided from the function and the attribute.
pub(crate) struct Plan {
    /// One entry per parameter, in the order written.
    pub(crate) params: Vec<Param>,
    /// The request body type, when a parameter fixes it (`Request<B>`, `#[body] b: B`).
    pub(crate) body: Option<Type>,
    /// The `T` of each `Ctx<T>` parameter (without `#[from_outer]`): a layer of the handler
    /// must provide it, checked on the types.
    pub(crate) provided: Vec<Type>,
}

impl Plan {
    /// The `T` of each `State<T>` parameter.
    pub(crate) fn router_states(&self) -> impl Iterator<Item = &Type> {
        self.params.iter().filter_map(|param| match param {
            Param::RouterState(ty) => Some(&**ty),
            _ => None,
        })
    }
}

pub(crate) enum Param {
    /// `req: Request<B>`.
    Request,
    /// `parts: Parts`.
    Parts,
    /// `#[body] body: B`.
    Body,
    /// `cx: Context`.
    Context,
    /// `cx: &Context`.
    ContextRef,
    /// `Principal`, `RequestId` or the deadline `Instant`.
    Value { value: Value, presence: Presence },
    /// `&T` with `state = T`.
    State,
    /// `T` with `state = T`: cloned per request.
    StateOwned,
    /// `State<T>`: the router's state (or a `FromRef` part of it), which the axum `Handler`
    /// impl hands over.
    RouterState(Box<Type>),
    /// Anything else: a `FromHandlerParts` extractor (axum's, with the `axum` feature).
    Extractor(Box<Type>),
    /// Anything else as the last parameter of a handler that takes neither the request nor
    /// its parts: a `FromHandlerRequest` extractor, which may consume the body (`Json<T>`).
    BodyExtractor(Box<Type>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    Principal,
    RequestId,
    Deadline,
}

impl Value {
    pub(crate) const fn type_name(self) -> &'static str {
        match self {
            Self::Principal => "Principal",
            Self::RequestId => "RequestId",
            Self::Deadline => "Instant",
        }
    }

    const fn provider_form(self) -> &'static str {
        match self {
            Self::Principal => "auth = <AuthLayer>",
            Self::RequestId => "request_id",
            Self::Deadline => "timeout = \"<duration>\"",
        }
    }

    fn provided_by(self, kind: &LayerKind) -> bool {
        matches!(
            (self, kind),
            (Self::Principal, LayerKind::Auth(_))
                | (Self::RequestId, LayerKind::RequestId(_))
                | (
                    Self::Deadline,
                    LayerKind::Timeout(_) | LayerKind::TimeoutLayer(_)
                )
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// A layer of this handler provides it (or `#[from_outer]`: a `500` when absent).
    Required,
    /// `Option<T>`: `None` when absent.
    Optional,
}

pub(crate) fn validate(function: &Function<'_>, errors: &mut Errors) -> Plan {
    signature(function, errors);
    let plan = parameters(function, errors);
    associated(function, &plan, errors);
    order(function, errors);
    plan
}

fn signature(function: &Function<'_>, errors: &mut Errors) {
    let sig = &function.original.sig;
    fn_attr::unsupported_qualifiers(sig, "#[handler]", errors);
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "`#[handler]` must be applied to an `async fn`",
        );
    }
    if let Some(param) = sig.generics.params.first() {
        errors.spanned(
            param,
            "`#[handler]` does not support generic parameters: the handler becomes one concrete service",
        );
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.spanned(
            clause.where_token,
            "`#[handler]` does not support `where` clauses",
        );
    }
}

/// An `associated` handler is `Type::name()`, a service: no handler value to hold state, no
/// axum `Handler` impl to hand over the router's.
fn associated(function: &Function<'_>, plan: &Plan, errors: &mut Errors) {
    let Some(key) = &function.args.associated else {
        return;
    };
    if function.args.state.get().is_some() {
        errors.spanned(
            key,
            "an `associated` handler has no handler value to hold `state = T`: keep the state in the type or a `static`, or make the handler a free function",
        );
    } else if let Some(state) = plan.router_states().next() {
        errors.spanned(
            state,
            "`State<..>` reaches handlers mounted with `get(name)`, and an `associated` handler mounts as a service (`route_service(path, Type::name())`), which gets no router state: make it a free function",
        );
    }
}

fn parameters(function: &Function<'_>, errors: &mut Errors) -> Plan {
    let mut seen = Seen {
        state: function.args.state.get().map(token_string),
        body: None,
        request: None,
        context: false,
        state_taken: false,
        provided: Vec::new(),
    };
    let mut params = Vec::new();
    for arg in &function.original.sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver.self_token,
                "`#[handler]` takes a function without `self`: remove `self` (for shared data, use `#[handler(state = T)]`; in an `impl` block, `#[handler(associated)]`)",
            ),
            FnArg::Typed(arg) => params.extend(seen.classify(function, arg, errors)),
        }
    }
    if let (Some(state), false) = (function.args.state.get(), seen.state_taken) {
        if !function.has_receiver() {
            let written = token_string(state);
            errors.spanned(
                state,
                format_args!(
                    "`state = {written}` is declared, but no parameter takes `&{written}` (or `{written}`)"
                ),
            );
        }
    }
    let taken = extractors::Taken {
        state: seen.state.as_deref(),
        request: seen.request,
        body: seen.body.is_some(),
    };
    extractors::body_extractors(function, &taken, errors);
    // The last extractor may take the body, unless a parameter already holds the request.
    if seen.request.is_none() && seen.body.is_none() {
        if let Some(last) = params.pop() {
            params.push(match last {
                Param::Extractor(ty) => Param::BodyExtractor(ty),
                other => other,
            });
        }
    }
    Plan {
        params,
        body: seen.body,
        provided: seen.provided,
    }
}

/// What the parameters so far have taken.
struct Seen {
    /// `state = T`, as written.
    state: Option<String>,
    /// The body type, once `Request<B>` or `#[body]` fixed it.
    body: Option<Type>,
    /// `"request"` or `"request's `Parts`"`.
    request: Option<&'static str>,
    context: bool,
    state_taken: bool,
    /// The `T` of each checked `Ctx<T>`.
    provided: Vec<Type>,
}

impl Seen {
    fn classify(
        &mut self,
        function: &Function<'_>,
        arg: &syn::PatType,
        errors: &mut Errors,
    ) -> Option<Param> {
        let from_outer = arg
            .attrs
            .iter()
            .find(|attr| attr.path().is_ident("from_outer"));
        let body_attr = arg.attrs.iter().find(|attr| attr.path().is_ident("body"));
        for attr in [from_outer, body_attr].into_iter().flatten() {
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                errors.spanned(&attr.meta, "expected no arguments");
            }
        }
        let ty = &*arg.ty;
        if body_attr.is_some() {
            return self.body(ty, errors);
        }
        let value = value_of(ty);
        let ctx = single_arg(ty, "Ctx");
        if let Some(attr) = from_outer.filter(|_| value.is_none() && ctx.is_none()) {
            let optional = single_arg(ty, "Option");
            let message = if optional
                .is_some_and(|ty| value_of(ty).is_some() || single_arg(ty, "Ctx").is_some())
            {
                "`Option<..>` already says the value may be absent: remove `#[from_outer]`"
            } else {
                "`#[from_outer]` applies to `Ctx<T>`, `Principal`, `RequestId` and the deadline `Instant`"
            };
            errors.spanned(attr, message);
            return None;
        }
        if let Some(provided) = ctx {
            // An extractor; without `#[from_outer]`, a layer of the handler must provide it.
            if from_outer.is_none() {
                self.provided.push(provided.clone());
            }
            return Some(Param::Extractor(Box::new(ty.clone())));
        }
        if let Some(body) = single_arg(ty, "Request") {
            return self.request(ty, Some(body), errors);
        }
        if is_plain(ty, "Parts") {
            return self.request(ty, None, errors);
        }
        if let Some(value) = value {
            return provided(function, ty, value, from_outer.is_some(), errors);
        }
        if let Some(state) = single_arg(ty, "State") {
            return self.router_state(function, ty, state, errors);
        }
        if let Some(value) = single_arg(ty, "Option").and_then(value_of) {
            return Some(Param::Value {
                value,
                presence: Presence::Optional,
            });
        }
        self.other(ty, errors)
    }

    /// `State<T>`: from the router, so not with `state = ..`, which the handler value holds.
    fn router_state(
        &mut self,
        function: &Function<'_>,
        ty: &Type,
        state: &Type,
        errors: &mut Errors,
    ) -> Option<Param> {
        if let Some(declared) = function.args.state.get() {
            let written = token_string(declared);
            errors.spanned(
                ty,
                format_args!(
                    "`State<..>` is the router's state, and `state = {written}` the handler's own: take `&{written}` for the handler's, or remove `state = {written}` and mount with `get(name)` on a `Router` with state"
                ),
            );
            // Reported once: not also as a `state = ..` that no parameter takes.
            self.state_taken = true;
            return None;
        }
        Some(Param::RouterState(Box::new(state.clone())))
    }

    fn body(&mut self, ty: &Type, errors: &mut Errors) -> Option<Param> {
        if self.request == Some("request") {
            errors.spanned(ty, "the request already holds the body");
            return None;
        }
        if self.body.is_some() {
            errors.spanned(ty, "the body is already a parameter");
            return None;
        }
        self.body = Some(ty.clone());
        Some(Param::Body)
    }

    /// `Request<B>` (with `body`) or `Parts`.
    fn request(&mut self, ty: &Type, body: Option<&Type>, errors: &mut Errors) -> Option<Param> {
        if let Some(what) = self.request {
            errors.spanned(ty, format_args!("the {what} is already a parameter"));
            return None;
        }
        let Some(body) = body else {
            self.request = Some("request's `Parts`");
            return Some(Param::Parts);
        };
        if self.body.is_some() {
            errors.spanned(
                ty,
                "the body is already a parameter: take `Parts` with `#[body]`, or the whole `Request<B>`",
            );
            return None;
        }
        self.request = Some("request");
        self.body = Some(body.clone());
        Some(Param::Request)
    }

    /// The context, the state, or an extractor.
    fn other(&mut self, ty: &Type, errors: &mut Errors) -> Option<Param> {
        let (referent, mutable) = match ty {
            Type::Reference(reference) => (Some(&*reference.elem), reference.mutability),
            _ => (None, None),
        };
        if is_plain(ty, "Context") || referent.is_some_and(|ty| is_plain(ty, "Context")) {
            if let Some(mutable) = mutable {
                errors.spanned(
                    mutable,
                    "`&mut Context` would change a copy: take `cx: &Context` or `cx: Context`",
                );
                return None;
            }
            if self.context {
                errors.spanned(ty, "the context is already a parameter");
                return None;
            }
            self.context = true;
            return Some(if referent.is_some() {
                Param::ContextRef
            } else {
                Param::Context
            });
        }
        if let Some(state) = &self.state {
            let owned = token_string(ty) == *state;
            let borrowed =
                mutable.is_none() && referent.is_some_and(|ty| token_string(ty) == *state);
            if owned || borrowed {
                if self.state_taken {
                    errors.spanned(ty, "the state is already a parameter");
                    return None;
                }
                self.state_taken = true;
                return Some(if owned {
                    Param::StateOwned
                } else {
                    Param::State
                });
            }
        } else if let (Some(referent), None) = (referent, mutable) {
            let written = token_string(referent);
            errors.spanned(
                referent,
                format_args!(
                    "missing `state = {written}`: write `#[handler(state = {written})]` to receive shared state as `&{written}`"
                ),
            );
            return None;
        }
        Some(Param::Extractor(Box::new(ty.clone())))
    }
}

/// A context value: a layer of this handler must provide it, unless `#[from_outer]`.
fn provided(
    function: &Function<'_>,
    ty: &Type,
    value: Value,
    from_outer: bool,
    errors: &mut Errors,
) -> Option<Param> {
    let provided = function
        .args
        .layers
        .iter()
        .any(|layer| value.provided_by(&layer.kind));
    if !provided && !from_outer {
        let name = value.type_name();
        errors.spanned(
            ty,
            format_args!(
                "no layer of this handler provides the `{name}`: add `{}` to `#[handler(..)]`, or, if an outer layer provides it, take `Option<{name}>` or mark the parameter `#[from_outer]` (a `500` when absent)",
                value.provider_form()
            ),
        );
        return None;
    }
    Some(Param::Value {
        value,
        presence: Presence::Required,
    })
}

/// Order mistakes the macro can see. The first key is the outermost layer.
fn order(function: &Function<'_>, errors: &mut Errors) {
    let args = &function.args;
    let position = |name: &str| {
        args.layers.iter().position(|layer| {
            matches!(
                (&layer.kind, name),
                (LayerKind::Log(_), "log")
                    | (LayerKind::Timing(_), "timing")
                    | (LayerKind::CatchPanic(_), "catch_panic")
                    | (LayerKind::RequestId(_), "request_id")
            )
        })
    };
    let allowed = |rule: &str| args.allow.iter().any(|allowed| allowed == rule);
    // (inner, outer, rule, why)
    let rules = [
        (
            "request_id",
            "log",
            "request_id_inside_log",
            "the access log would have no request id",
        ),
        (
            "request_id",
            "catch_panic",
            "request_id_inside_catch_panic",
            "a caught panic's log line and `500` would have no request id",
        ),
        (
            "catch_panic",
            "timing",
            "catch_panic_inside_timing",
            "a panic in the timing layer or its body hook would escape",
        ),
    ];
    if args.allow_unknown {
        return;
    }
    for (inner, outer, rule, why) in rules {
        let (Some(inner_at), Some(outer_at)) = (position(inner), position(outer)) else {
            continue;
        };
        if inner_at > outer_at && !allowed(rule) {
            errors.spanned(
                &args.layers[inner_at].key,
                format_args!(
                    "`{inner}` is inside `{outer}`, so {why}: write `{inner}` before `{outer}` (the first key is the outermost layer), or add `allow({rule})` to keep this order"
                ),
            );
        }
    }
    for rule in &args.allow {
        let (inner, outer) = match rule.to_string().as_str() {
            "request_id_inside_log" => ("request_id", "log"),
            "request_id_inside_catch_panic" => ("request_id", "catch_panic"),
            _ => ("catch_panic", "timing"),
        };
        let applies = matches!((position(inner), position(outer)), (Some(a), Some(b)) if a > b);
        if !applies {
            errors.spanned(
                rule,
                format_args!(
                    "`allow({rule})` is not needed: `{inner}` is not inside `{outer}` here"
                ),
            );
        }
    }
}

fn value_of(ty: &Type) -> Option<Value> {
    if is_plain(ty, "Principal") {
        Some(Value::Principal)
    } else if is_plain(ty, "RequestId") {
        Some(Value::RequestId)
    } else if is_plain(ty, "Instant") {
        Some(Value::Deadline)
    } else {
        None
    }
}

/// A path type ending in `name`, without generic arguments.
fn is_plain(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|last| last.ident == name && last.arguments.is_none()))
}
