//! `#[handler]`: an async fn handler with per-handler layers becomes a tower `Service`.

mod expand;
mod extractors;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::fn_attr::{self, Steps};

/// Parses, validates and expands `#[handler]` through the shared driver: on an error,
/// the handler value with a stand-in `service` is emitted next to the errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let steps = Steps {
        not_a_fn: "`#[handler]` must be applied to an `async fn`",
        parse: parse::Args::parse,
        validate: validate::validate,
        expand: expand::expand,
    };
    fn_attr::expand(args, item, &steps)
}
