//! `#[derive(Layer)]`: rules that span several parts of the input.

use syn::GenericParam;

use super::parse::{Input, Style};
use crate::attr::Errors;

pub(crate) fn validate(input: &Input<'_>, errors: &mut Errors) {
    for param in &input.original.generics.params {
        if let GenericParam::Lifetime(lifetime) = param {
            errors.spanned(
                &lifetime.lifetime,
                "`#[derive(Layer)]` does not support lifetime parameters: a middleware is shared by every request, so it must be `'static`",
            );
        }
    }
    let new = input.new.get().copied().unwrap_or(true);
    for field in &input.fields {
        let Some(span) = field.default.span() else {
            continue;
        };
        if input.style != Style::Named {
            errors.error(
                span,
                "`default` needs a named field: it generates a setter named after the field",
            );
        } else if !new {
            errors.error(
                span,
                "`default` has no effect with `new = false`: the generated `new` is what applies defaults",
            );
        }
    }
    if let (Some(span), true) = (input.new.span(), input.style == Style::Tuple) {
        errors.error(
            span,
            "`new` applies to structs with named fields and unit structs: a tuple struct has its own constructor, `Name(..)`",
        );
    }
}
