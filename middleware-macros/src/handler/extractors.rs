//! `#[handler]`'s checks of axum's extractors that consume the request body, worded as
//! axum's `#[debug_handler]` words them.

use syn::{FnArg, Type};

use super::parse::Function;
use crate::{attr::Errors, fn_attr::token_string};

/// What the other parameters took, as the body checks need it.
pub(super) struct Taken<'a> {
    /// `state = T`, as written.
    pub(super) state: Option<&'a str>,
    /// `"request"` or `"request's `Parts`"`, when one is a parameter.
    pub(super) request: Option<&'static str>,
    /// Whether a `Request<B>` or `#[body]` parameter takes the body.
    pub(super) body: bool,
}

/// Mistakes with axum's extractors that consume the request body, as `#[debug_handler]`
/// words them; only the first is reported (the others are the same mistake).
pub(super) fn body_extractors(function: &Function<'_>, seen: &Taken<'_>, errors: &mut Errors) {
    let inputs = &function.original.sig.inputs;
    let consuming: Vec<(usize, &Type, &str)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(index, arg)| match arg {
            // `#[body] b: String` and the handler's own `state = String` are not extractors.
            FnArg::Typed(arg)
                if !arg.attrs.iter().any(|attr| attr.path().is_ident("body"))
                    && seen.state != Some(token_string(&arg.ty).as_str()) =>
            {
                consuming_name(&arg.ty).map(|name| (index, &*arg.ty, name))
            }
            _ => None,
        })
        .collect();
    let Some(&(index, ty, name)) = consuming.first() else {
        return;
    };
    if let Some(what) = seen.request {
        let fix = if seen.body {
            "take one of them"
        } else {
            "take the body with `#[body] body: B` next to `Parts`, or drop `Parts`"
        };
        errors.spanned(
            ty,
            format_args!(
                "`{name}` consumes the request body, but the {what} is a parameter: {fix}"
            ),
        );
    } else if seen.body {
        errors.spanned(
            ty,
            format_args!(
                "`{name}` consumes the request body, which the `#[body]` parameter takes: take one of them"
            ),
        );
    } else if let Some(&(_, second, other)) = consuming.get(1) {
        errors.spanned(
            second,
            format_args!(
                "can't have two extractors that consume the request body: `{name}` and `{other}` both do that"
            ),
        );
    } else if index + 1 != inputs.len() {
        errors.spanned(
            ty,
            format_args!(
                "`{name}` consumes the request body and thus must be the last argument to the handler function"
            ),
        );
    }
}

/// axum's extractors that consume the request body, named as `#[debug_handler]` names them.
fn consuming_name(ty: &Type) -> Option<&'static str> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    Some(match last.ident.to_string().as_str() {
        // axum's `Request` alias (`Request<Body>`) is an extractor; `Request<B>` is the
        // handler's own request parameter.
        "Request" if last.arguments.is_empty() => "Request<_>",
        "Json" => "Json<_>",
        "Form" => "Form<_>",
        "RawForm" => "RawForm",
        "Multipart" => "Multipart",
        "Bytes" => "Bytes",
        "String" => "String",
        "JsonLines" => "JsonLines<_>",
        "Protobuf" => "Protobuf<_>",
        "RawBody" => "RawBody<_>",
        _ => return None,
    })
}
