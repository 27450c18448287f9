//! `#[middleware_fn]`: an async fn becomes an around-style middleware value, a synchronous fn a
//! zero-allocation hook.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::fn_attr::{self, Steps};

/// Parses, validates and expands `#[middleware_fn]` through the shared driver: on an error,
/// a fallback value type is emitted next to the errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let steps = Steps {
        not_a_fn: "`#[middleware_fn]` must be applied to an `async fn` (or, with `before`, a synchronous `fn`)",
        parse: parse::Args::parse,
        validate: validate::validate,
        expand: expand::expand,
    };
    fn_attr::expand(args, item, &steps)
}
