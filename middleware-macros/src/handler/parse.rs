//! `#[handler]`: the attribute arguments (layers in written order, `state`, `allow`, `crate`),
//! human duration literals, and the borrowing view of the function.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::{
    Expr, Ident, Lit, LitStr, Token, ext::IdentExt, parse::Parse, parse::ParseStream,
    parse::Parser, punctuated::Punctuated,
};

use crate::{
    attr::{self, Errors, Once, kw},
    paths,
};

/// Keys accepted by `#[handler(...)]`.
pub(crate) const KEYS: &[&str] = &[
    "timeout",
    "auth",
    "log",
    "timing",
    "catch_panic",
    "request_id",
    "layer",
    "state",
    "allow",
    "associated",
    "crate",
];

/// Order rules that `allow(...)` can switch off.
pub(crate) const RULES: &[&str] = &[
    "request_id_inside_log",
    "request_id_inside_catch_panic",
    "catch_panic_inside_timing",
];

/// One layer of the handler's stack, in the order written (the first is the outermost).
pub(crate) struct LayerEntry {
    /// The key, for spans: `timeout`, `auth`, ..., `layer`.
    pub(crate) key: Ident,
    pub(crate) kind: LayerKind,
}

pub(crate) enum LayerKind {
    /// `timeout = "250ms"`: the parsed duration.
    Timeout(Duration),
    /// `timeout = <Duration or TimeoutLayer expr>`.
    TimeoutLayer(Expr),
    /// `auth = <AuthLayer expr>`.
    Auth(Expr),
    /// `log` or `log = <expr>`.
    Log(Option<Expr>),
    /// `timing` or `timing = <expr>`.
    Timing(Option<Expr>),
    /// `catch_panic` or `catch_panic = <expr>`.
    CatchPanic(Option<Expr>),
    /// `request_id` or `request_id = <expr>`.
    RequestId(Option<Expr>),
    /// `layer(<expr>)`: any tower layer.
    Custom(Expr),
}

/// The attribute arguments.
pub(crate) struct Args {
    pub(crate) layers: Vec<LayerEntry>,
    /// `state = Type`: shared state the handler value holds.
    pub(crate) state: Once<syn::Type>,
    /// `allow(rule, ..)`: order rules switched off.
    pub(crate) allow: Vec<Ident>,
    /// An `allow(..)` named an unknown rule (reported): the order rules are not checked, so
    /// that the rule it meant to switch off does not fail a second time.
    pub(crate) allow_unknown: bool,
    /// `associated`: the function is an associated function in an `impl` block; it becomes
    /// `Type::name()`, returning the service (no handler value).
    pub(crate) associated: Option<Ident>,
    /// `crate = "path"`: the crate that re-exports `middleware_std`'s `__private`.
    pub(crate) krate: Once<syn::Path>,
    seen: Vec<(&'static str, Span)>,
}

impl Args {
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = Self {
            layers: Vec::new(),
            state: Once::new("state"),
            allow: Vec::new(),
            allow_unknown: false,
            associated: None,
            krate: Once::new("crate"),
            seen: Vec::new(),
        };
        let parser = |input: ParseStream<'_>| {
            attr::parse_list(input, errors, |input, errors| args.entry(input, errors))
        };
        if let Err(error) = parser.parse2(tokens) {
            errors.push(error);
        }
        args
    }

    /// Records a layer key; a second one of the same kind is an error (only `layer(..)` may
    /// repeat).
    fn once(&mut self, name: &'static str, span: Span, errors: &mut Errors) -> bool {
        if self.seen.iter().any(|(seen, _)| *seen == name) {
            errors.error(span, format_args!("`{name}` specified more than once"));
            return false;
        }
        self.seen.push((name, span));
        true
    }

    fn push(&mut self, key: Ident, kind: LayerKind) {
        self.layers.push(LayerEntry { key, kind });
    }

    fn entry(&mut self, input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<()> {
        if input.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            attr::expect_eq(input, key.span, "crate = \"<path>\"")?;
            let lit: LitStr = input.parse()?;
            self.krate.set(key.span, paths::parse_crate(&lit)?, errors);
            return Ok(());
        }
        if input.peek(kw::state) {
            let key: kw::state = input.parse()?;
            attr::expect_eq(input, key.span, "state = <Type>")?;
            self.state.set(key.span, input.parse()?, errors);
            return Ok(());
        }
        if !input.peek(Ident::peek_any) {
            return attr::unknown_key(input, "#[handler]", KEYS, errors);
        }
        let key = input.fork().call(Ident::parse_any)?;
        match key.to_string().as_str() {
            "timeout" => self.timeout(key, input, errors),
            "auth" => {
                input.call(Ident::parse_any)?;
                attr::expect_eq(input, key.span(), "auth = <AuthLayer>")?;
                let expr = input.parse()?;
                if self.once("auth", key.span(), errors) {
                    self.push(key, LayerKind::Auth(expr));
                }
                Ok(())
            }
            "log" => self.optional_layer(key, input, errors, "log", LayerKind::Log),
            "timing" => self.optional_layer(key, input, errors, "timing", LayerKind::Timing),
            "catch_panic" => {
                self.optional_layer(key, input, errors, "catch_panic", LayerKind::CatchPanic)
            }
            "request_id" => {
                self.optional_layer(key, input, errors, "request_id", LayerKind::RequestId)
            }
            "layer" => self.custom_layer(&key, input, errors),
            "allow" => self.allow_rules(&key, input, errors),
            "associated" => {
                input.call(Ident::parse_any)?;
                if self.associated.is_some() {
                    errors.error(key.span(), "`associated` specified more than once");
                } else {
                    self.associated = Some(key);
                }
                Ok(())
            }
            _ => attr::unknown_key(input, "#[handler]", KEYS, errors),
        }
    }

    /// `timeout = "<duration>"`, `timeout = <Duration>` or `timeout = <TimeoutLayer>`.
    fn timeout(
        &mut self,
        key: Ident,
        input: ParseStream<'_>,
        errors: &mut Errors,
    ) -> syn::Result<()> {
        input.call(Ident::parse_any)?;
        attr::expect_eq(input, key.span(), "timeout = \"<duration>\"")?;
        let kind = if input.peek(Lit) {
            let lit: Lit = input.parse()?;
            let Lit::Str(lit) = lit else {
                return Err(syn::Error::new_spanned(
                    lit,
                    "expected a duration string, like `timeout = \"250ms\"`, or a `Duration` or `TimeoutLayer` expression",
                ));
            };
            LayerKind::Timeout(parse_duration(&lit)?)
        } else {
            LayerKind::TimeoutLayer(input.parse()?)
        };
        if self.once("timeout", key.span(), errors) {
            self.push(key, kind);
        }
        Ok(())
    }

    /// `log`, `timing`, `catch_panic`, `request_id`: bare (the default layer) or `= <expr>`.
    fn optional_layer(
        &mut self,
        key: Ident,
        input: ParseStream<'_>,
        errors: &mut Errors,
        name: &'static str,
        kind: fn(Option<Expr>) -> LayerKind,
    ) -> syn::Result<()> {
        input.call(Ident::parse_any)?;
        let expr = if input.peek(Token![=]) {
            attr::expect_eq(input, key.span(), &format!("{name} = <layer>"))?;
            Some(input.parse()?)
        } else {
            None
        };
        if self.once(name, key.span(), errors) {
            self.push(key, kind(expr));
        }
        Ok(())
    }

    /// `layer(<expr>)`. Several layers in one `layer(..)` are an error; each is kept, so the
    /// fallback still uses what they name.
    fn custom_layer(
        &mut self,
        key: &Ident,
        input: ParseStream<'_>,
        errors: &mut Errors,
    ) -> syn::Result<()> {
        let missing = || {
            syn::Error::new(
                key.span(),
                "expected a tower layer: `layer(<expr>)`, e.g. `layer(ConcurrencyLimitLayer::new(64))`",
            )
        };
        let exprs = parenthesized_list::<Expr>(input, missing)?;
        if exprs.is_empty() {
            return Err(missing());
        }
        if let Some(comma) = exprs.pairs().next().and_then(|pair| pair.punct().copied()) {
            if exprs.len() > 1 {
                errors.spanned(
                    comma,
                    "expected one layer per `layer(..)`: write `layer(a), layer(b)`",
                );
            }
        }
        for expr in exprs {
            self.push(key.clone(), LayerKind::Custom(expr));
        }
        Ok(())
    }

    /// `allow(<rule>, ..)`.
    fn allow_rules(
        &mut self,
        key: &Ident,
        input: ParseStream<'_>,
        errors: &mut Errors,
    ) -> syn::Result<()> {
        let rules = parenthesized_list::<Ident>(input, || {
            syn::Error::new(
                key.span(),
                format_args!("expected `allow(<rule>)`, with {}", attr::one_of(RULES)),
            )
        })?;
        for rule in rules {
            let name = rule.to_string();
            if RULES.contains(&name.as_str()) {
                self.allow.push(rule);
                continue;
            }
            self.allow_unknown = true;
            let message = match attr::closest(&name, RULES) {
                Some(suggestion) => {
                    format!("unknown order rule `{name}`, did you mean `{suggestion}`?")
                }
                None => format!(
                    "unknown order rule `{name}`, expected {}",
                    attr::one_of(RULES)
                ),
            };
            errors.error(rule.span(), message);
        }
        Ok(())
    }
}

/// `<key>(<T>, ..)`: skips the key, then parses a parenthesized, comma-separated list. Without
/// the parentheses, the error is `missing()`.
fn parenthesized_list<T: Parse>(
    input: ParseStream<'_>,
    missing: impl FnOnce() -> syn::Error,
) -> syn::Result<Punctuated<T, Token![,]>> {
    input.call(Ident::parse_any)?;
    if !input.peek(syn::token::Paren) {
        return Err(missing());
    }
    let content;
    syn::parenthesized!(content in input);
    Punctuated::parse_terminated(&content)
}

/// Duration units and their length in nanoseconds, in the order they may appear.
const UNITS: [(&str, u64); 5] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
];

/// Parses a human duration: one or more `<number><unit>` parts, units `h`, `m`, `s`, `ms`,
/// `us`, largest first, each at most once (`"250ms"`, `"5s"`, `"1m30s"`). A number may have a
/// fraction (`"1.5s"`, `"0.25ms"`), as long as the total is a whole number of nanoseconds.
/// Zero is refused: a zero budget answers every request that waits at all with a timeout.
pub(crate) fn parse_duration(lit: &LitStr) -> syn::Result<Duration> {
    let text = lit.value();
    let error = |why: &str| {
        syn::Error::new(
            lit.span(),
            format_args!(
                "invalid duration `{text}`: {why}; expected a number and a unit (`h`, `m`, `s`, `ms`, `us`), largest first, like `\"250ms\"`, `\"1.5s\"` or `\"1m30s\"`"
            ),
        )
    };
    if text.is_empty() {
        return Err(error("it is empty"));
    }
    let mut rest = text.as_str();
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(error("a number is missing"));
        }
        let (whole, tail) = rest.split_at(digits);
        let (fraction, tail) = match tail.strip_prefix('.') {
            Some(tail) => {
                let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return Err(error(&format!("`{whole}.` has no digits after the point")));
                }
                tail.split_at(digits)
            }
            None => ("", tail),
        };
        let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(letters);
        let number = &rest[..rest.len() - tail.len() - unit.len()];
        if unit.is_empty() {
            return Err(error(&format!("`{number}` has no unit")));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(error(&format!("unknown unit `{unit}`")));
        };
        if index < next_unit {
            return Err(error(&format!("`{unit}` is out of order or repeated")));
        }
        next_unit = index + 1;
        let scale = UNITS[index].1;
        let too_large = || error("it is too large");
        let whole = whole
            .parse::<u64>()
            .ok()
            .and_then(|whole| whole.checked_mul(scale))
            .ok_or_else(too_large)?;
        let fraction = fraction_nanos(fraction, scale)
            .ok_or_else(|| error(&format!("`{number}{unit}` is finer than a nanosecond")))?;
        total = whole
            .checked_add(fraction)
            .and_then(|nanos| total.checked_add(nanos))
            .ok_or_else(too_large)?;
        rest = tail;
    }
    if total == 0 {
        return Err(error("a zero budget times out every request that waits"));
    }
    Ok(Duration::from_nanos(total))
}

/// The nanoseconds of `0.<digits>` units of `scale` nanoseconds, if a whole number.
fn fraction_nanos(digits: &str, scale: u64) -> Option<u64> {
    // Trailing zeros add nothing; past 18 significant digits no unit here is exact.
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    if digits.len() > 18 {
        return None;
    }
    let numerator = u128::from(digits.parse::<u64>().ok()?) * u128::from(scale);
    let denominator = 10u128.pow(u32::try_from(digits.len()).ok()?);
    (numerator % denominator == 0).then(|| u64::try_from(numerator / denominator).ok())?
}

/// The annotated function with its arguments.
pub(crate) type Function<'a> = crate::fn_attr::Function<'a, Args>;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, String> {
        parse_duration(&LitStr::new(text, Span::call_site())).map_err(|error| error.to_string())
    }

    #[test]
    fn durations_accept_human_literals() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("750us"), Ok(Duration::from_micros(750)));
    }

    #[test]
    fn durations_accept_fractions_that_are_whole_nanoseconds() {
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0.25ms"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1m0.5s"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("2.000s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("0.001us"), Ok(Duration::from_nanos(1)));
        assert!(
            parse("0.0001us")
                .unwrap_err()
                .contains("finer than a nanosecond")
        );
        assert!(
            parse("1.s")
                .unwrap_err()
                .contains("no digits after the point")
        );
        assert!(parse(".5s").unwrap_err().contains("a number is missing"));
        assert!(parse("0.0s").unwrap_err().contains("zero budget"));
    }

    #[test]
    fn durations_refuse_malformed_literals() {
        for bad in [
            "",
            "5",
            "ms",
            "5 s",
            "5sec",
            "1.5.5s",
            "1,5s",
            "-1s",
            "30s1m",
            "1s1s",
            "0s",
            "0ms0s",
            "99999999999999h",
            "5S",
            "1m 30s",
            "１s",
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(error.starts_with("invalid duration"), "{bad}: {error}");
        }
        assert!(parse("5").unwrap_err().contains("`5` has no unit"));
        assert!(parse("5sec").unwrap_err().contains("unknown unit `sec`"));
        assert!(parse("30s1m").unwrap_err().contains("`m` is out of order"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any text: an answer (never a panic), and an accepted one is positive.
        #[test]
        fn any_text_parses_or_is_refused_with_the_expected_message(text in "\\PC{0,24}") {
            match parse(&text) {
                Ok(duration) => proptest::prop_assert!(duration > Duration::ZERO),
                Err(error) => proptest::prop_assert!(error.starts_with("invalid duration"), "{}", error),
            }
        }

        /// Well-formed literals: units largest first, each at most once, parse to their sum.
        #[test]
        fn generated_literals_parse_to_their_sum(
            parts in proptest::collection::vec(proptest::option::of(0u64..100_000), 5),
        ) {
            let mut text = String::new();
            let mut nanos = 0u64;
            for ((unit, scale), value) in UNITS.iter().zip(&parts) {
                if let Some(value) = value {
                    std::fmt::Write::write_fmt(&mut text, format_args!("{value}{unit}")).unwrap();
                    nanos += value * scale;
                }
            }
            match parse(&text) {
                Ok(duration) => proptest::prop_assert_eq!(duration, Duration::from_nanos(nanos)),
                Err(_) => proptest::prop_assert!(text.is_empty() || nanos == 0, "{} refused", text),
            }
        }

        /// Fractions with up to three digits are exact in every unit.
        #[test]
        fn fractional_literals_parse_to_their_exact_value(whole in 0u64..1000, fraction in 0u64..1000, unit in 0usize..5) {
            let (name, scale) = UNITS[unit];
            let text = format!("{whole}.{fraction:03}{name}");
            let nanos = whole * scale + fraction * scale / 1000;
            match parse(&text) {
                Ok(duration) => proptest::prop_assert_eq!(duration, Duration::from_nanos(nanos)),
                Err(error) => proptest::prop_assert!(nanos == 0 && error.contains("zero budget"), "{} refused: {}", text, error),
            }
        }

        /// Units out of order, or repeated, are always refused.
        #[test]
        fn units_out_of_order_are_refused(i in 0usize..5, j in 0usize..5, x in 1u64..1000, y in 1u64..1000) {
            let (a, b) = (i.max(j), i.min(j));
            let text = format!("{x}{}{y}{}", UNITS[a].0, UNITS[b].0);
            proptest::prop_assert!(parse(&text).is_err(), "{} accepted", text);
        }
    }
}
