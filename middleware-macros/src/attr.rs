//! Attribute grammar shared by every macro: keywords, the error collector, the "specified more
//! than once" check, unknown-key recovery with a closest-key suggestion.
//!
//! Every attribute is a comma-separated list of `key`, `key = value` or (for the handler
//! attribute to come) `key(...)` entries. A macro's `parse.rs` peeks its keys with the keywords
//! below; anything else goes through [`unknown_key`], which names the closest known key. Errors
//! are collected (serde's `Ctxt`) so one compile reports every independent problem.

use proc_macro2::{Span, TokenTree};
use syn::{Ident, Token, ext::IdentExt, parse::ParseStream};

/// The attribute keys, as custom keywords (`crate` is the real keyword `Token![crate]`).
pub(crate) mod kw {
    syn::custom_keyword!(after);
    syn::custom_keyword!(around);
    syn::custom_keyword!(before);
    syn::custom_keyword!(default);
    syn::custom_keyword!(hook);
    syn::custom_keyword!(new);
    syn::custom_keyword!(observe);
    syn::custom_keyword!(provides);
    syn::custom_keyword!(secret);
    syn::custom_keyword!(service);
    syn::custom_keyword!(state);
}

/// Collects independent errors and combines them into one `syn::Error`.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn error(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn spanned(
        &mut self,
        tokens: impl quote::ToTokens,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.0
    }
}

/// A key that may be given once; a second occurrence is reported and ignored.
pub(crate) struct Once<T> {
    name: &'static str,
    value: Option<(Span, T)>,
}

impl<T> Once<T> {
    pub(crate) const fn new(name: &'static str) -> Self {
        Self { name, value: None }
    }

    pub(crate) fn set(&mut self, span: Span, value: T, errors: &mut Errors) {
        if self.value.is_some() {
            errors.error(
                span,
                format_args!("`{}` specified more than once", self.name),
            );
        } else {
            self.value = Some((span, value));
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, value)| value)
    }

    pub(crate) fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(span, _)| *span)
    }
}

/// Parses a comma-separated list, calling `entry` for each entry. An entry that fails is
/// recorded and skipped up to the next comma, so later entries are still checked.
pub(crate) fn parse_list(
    input: ParseStream<'_>,
    errors: &mut Errors,
    mut entry: impl FnMut(ParseStream<'_>, &mut Errors) -> syn::Result<()>,
) -> syn::Result<()> {
    while !input.is_empty() {
        if let Err(error) = entry(input, errors) {
            errors.push(error);
            skip_entry(input)?;
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

/// Skips the rest of the current entry: everything up to the next top-level comma.
pub(crate) fn skip_entry(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// Parses the `=` after `key`, or fails with "expected `<form>`" on the key.
pub(crate) fn expect_eq(input: ParseStream<'_>, key: Span, form: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        if !input.is_empty() && !input.peek(Token![,]) {
            return Ok(());
        }
    }
    Err(syn::Error::new(key, format_args!("expected `{form}`")))
}

/// Reports the key at the head of `input` as unknown (suggesting the closest of `known`) and
/// skips its entry. Fails with the usual "expected ..." error if the head is not an identifier.
pub(crate) fn unknown_key(
    input: ParseStream<'_>,
    attribute: &str,
    known: &[&str],
    errors: &mut Errors,
) -> syn::Result<()> {
    if !input.peek(Ident::peek_any) {
        let list = one_of(known);
        return Err(input.error(format_args!("expected {list}")));
    }
    let key = Ident::parse_any(input)?;
    let name = key.unraw().to_string();
    let message = match closest(&name, known) {
        Some(suggestion) => {
            format!("unknown `{attribute}` key `{name}`, did you mean `{suggestion}`?")
        }
        None => format!(
            "unknown `{attribute}` key `{name}`, expected {}",
            one_of(known)
        ),
    };
    errors.error(key.span(), message);
    skip_entry(input)
}

/// "`a`, `b` or `c`".
pub(crate) fn one_of(known: &[&str]) -> String {
    match known {
        [] => String::new(),
        [only] => format!("`{only}`"),
        [rest @ .., last] => {
            let rest: Vec<String> = rest.iter().map(|key| format!("`{key}`")).collect();
            format!("{} or `{last}`", rest.join(", "))
        }
    }
}

/// The known key closest to `name`, if it is close enough to be a typo.
pub(crate) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = match name.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, with a transposition of neighbours counting as one edit
/// (optimal string alignment), so `hoko` and `hook` are one apart.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j]
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_inserts_deletes_substitutions_and_swaps() {
        assert_eq!(edit_distance("hook", "hook"), 0);
        assert_eq!(edit_distance("hok", "hook"), 1);
        assert_eq!(edit_distance("hooks", "hook"), 1);
        assert_eq!(edit_distance("hoik", "hook"), 1);
        assert_eq!(edit_distance("hoko", "hook"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("secert", "secret"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_suggests_only_plausible_typos() {
        let known = ["around", "hook", "crate", "service", "new"];
        assert_eq!(closest("hok", &known), Some("hook"));
        assert_eq!(closest("arond", &known), Some("around"));
        assert_eq!(closest("crat", &known), Some("crate"));
        assert_eq!(closest("servise", &known), Some("service"));
        assert_eq!(closest("timeout", &known), None);
        assert_eq!(closest("x", &known), None);
    }

    #[test]
    fn one_of_lists_keys_in_prose() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
