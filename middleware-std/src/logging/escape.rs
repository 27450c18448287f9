//! Escaping of logged values: one record per event, never a forged line.

use std::{borrow::Cow, fmt};

/// Escapes untrusted bytes for a log line; see [`escape`].
#[derive(Clone, Copy)]
pub struct Escape<'a>(&'a [u8]);

/// Escapes untrusted bytes (a path, a header value, a body) for a log record.
///
/// The output is printable and unambiguous, and can be turned back into the input:
///
/// - `\` and `"` become `\\` and `\"`; newline, carriage return and tab become `\n`, `\r`,
///   `\t`;
/// - other ASCII control characters (ANSI escape sequences start with one, `ESC`) and each byte
///   of invalid UTF-8 become `\xNN`;
/// - Unicode control characters (C1, such as `NEL`), every Unicode space other than the ASCII
///   space (no-break, ideographic `U+3000`, the line and paragraph separators...), every format
///   character (general category `Cf`: zero-width spaces and joiners, the bidirectional marks,
///   overrides and isolates, the byte order mark, tags), and a few characters that render as
///   nothing or as a blank (Hangul fillers, the braille blank, variation selectors) become
///   `\u{NNNN}`;
/// - everything else, valid non-ASCII text included, is written as it is.
///
/// ```
/// use middleware_std::logging::escape;
///
/// let hostile = b"/a\r\nINFO forged\x1b[31m\xff";
/// assert_eq!(
///     escape(hostile).to_string(),
///     r"/a\r\nINFO forged\x1b[31m\xff",
/// );
/// assert_eq!(escape("héllo".as_bytes()).to_string(), "héllo");
/// // A path that would read as two fields once printed:
/// assert_eq!(
///     escape("/x\u{3000}status=200\u{200b}".as_bytes()).to_string(),
///     r"/x\u{3000}status=200\u{200b}",
/// );
/// ```
#[must_use]
pub const fn escape(bytes: &[u8]) -> Escape<'_> {
    Escape(bytes)
}

/// Whether a non-ASCII char must be escaped: it is invisible, blank, or can reorder or break
/// the line it sits in.
fn is_hostile(c: char) -> bool {
    // Every Unicode space (U+00A0, U+1680, U+2000..U+200A, U+202F, U+205F, U+3000, NEL, the
    // line and paragraph separators): a value must never show a blank that reads as the gap
    // between two fields.
    c.is_whitespace()
        || is_format(c)
        || matches!(c,
        '\u{80}'..='\u{9f}'         // C1 controls (NEL, CSI...)
        // Letters that render as nothing (Hangul fillers) or as a blank (braille blank).
        | '\u{115f}' | '\u{1160}' | '\u{2800}' | '\u{3164}' | '\u{ffa0}'
        // Variation selectors and the combining grapheme joiner: invisible modifiers.
        | '\u{034f}' | '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}')
}

/// The format characters (general category `Cf`, Unicode 16): zero-width spaces and joiners,
/// the bidirectional marks, embeddings, overrides and isolates, the byte order mark, tags,
/// invisible operators and the like.
const fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061c}'
        | '\u{06dd}'
        | '\u{070f}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08e2}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}'
        | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}')
}

/// Whether `c` is written as an escape; in a `bare` value (logged unquoted), the ASCII space
/// too, so that nothing in it can read as the gap between two fields.
fn needs_escape(c: char, bare: bool) -> bool {
    matches!(c, '\\' | '"')
        || c.is_ascii_control()
        || (bare && c == ' ')
        || (!c.is_ascii() && is_hostile(c))
}

/// Writes the escape of `c` in one piece (a bounded writer keeps or drops it whole).
fn write_char_escape(f: &mut impl fmt::Write, c: char) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match c {
        '\\' => Some(r"\\"),
        '"' => Some("\\\""),
        '\n' => Some(r"\n"),
        '\r' => Some(r"\r"),
        '\t' => Some(r"\t"),
        _ => None,
    };
    if let Some(text) = short {
        return f.write_str(text);
    }
    let code = u32::from(c);
    let mut buf = [0u8; 10];
    let len = if c.is_ascii() {
        buf[..2].copy_from_slice(br"\x");
        buf[2] = HEX[(code >> 4) as usize & 0xf];
        buf[3] = HEX[code as usize & 0xf];
        4
    } else {
        // At least four hex digits, as many as the code point needs (up to six).
        let digits = (1..=6)
            .rev()
            .find(|d| code >> (4 * (d - 1)) != 0)
            .unwrap_or(1)
            .max(4);
        buf[..3].copy_from_slice(br"\u{");
        for i in 0..digits {
            let shift = 4 * (digits - 1 - i);
            buf[3 + i] = HEX[(code >> shift) as usize & 0xf];
        }
        buf[3 + digits] = b'}';
        4 + digits
    };
    f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
}

/// Writes `s` escaped as [`escape`] does.
pub(crate) fn write_escaped_str(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    write_escaped_in(f, s, false)
}

/// Writes `s` escaped for an unquoted field: as [`escape`] does, and the ASCII space as
/// `\x20`.
pub(crate) fn write_bare_str(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    write_escaped_in(f, s, true)
}

fn write_escaped_in(f: &mut impl fmt::Write, s: &str, bare: bool) -> fmt::Result {
    let mut clean = 0;
    for (i, c) in s.char_indices() {
        if !needs_escape(c, bare) {
            continue;
        }
        f.write_str(&s[clean..i])?;
        write_char_escape(f, c)?;
        clean = i + c.len_utf8();
    }
    f.write_str(&s[clean..])
}

fn write_escaped(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        write_escaped_str(f, chunk.valid())?;
        for &b in chunk.invalid() {
            let mut buf = [b'\\', b'x', 0, 0];
            buf[2] = b"0123456789abcdef"[usize::from(b >> 4)];
            buf[3] = b"0123456789abcdef"[usize::from(b & 0xf)];
            f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)?;
        }
    }
    Ok(())
}

impl fmt::Display for Escape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

impl fmt::Debug for Escape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Displays a `Display` value (an error) escaped, without an intermediate `String`.
pub(crate) struct EscapeDisplay<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for EscapeDisplay<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                write_escaped_str(self.0, s)
            }
        }
        fmt::write(&mut Escaping(f), format_args!("{}", self.0))
    }
}

/// The marker that ends a logged value cut at its limit.
pub(crate) const TRUNCATED: &str = "...[truncated]";

/// A writer that takes at most `room` more bytes: what is written past the limit is dropped.
/// An escape sequence is kept or dropped whole (escapes are written in one piece that starts
/// with `\`, and unescaped runs never contain one), and a cut never splits a character.
pub(crate) struct Limited<W> {
    out: W,
    room: usize,
    cut: bool,
}

impl<W> Limited<W> {
    pub(crate) const fn new(out: W, room: usize) -> Self {
        Self {
            out,
            room,
            cut: false,
        }
    }

    /// Whether something was dropped: writing more is useless.
    pub(crate) const fn is_cut(&self) -> bool {
        self.cut
    }
}

impl<W: fmt::Write> fmt::Write for Limited<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Ok(());
        }
        if s.len() <= self.room {
            self.room -= s.len();
            return self.out.write_str(s);
        }
        self.cut = true;
        if !s.starts_with('\\') {
            let mut end = self.room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.room -= end;
            self.out.write_str(&s[..end])?;
        }
        Ok(())
    }
}

/// A string of at most `max` bytes plus [`TRUNCATED`] when cut (see [`Limited`]).
pub(crate) type Bounded = Limited<String>;

impl Limited<String> {
    /// An empty text of at most `max` bytes.
    pub(crate) const fn with_max(max: usize) -> Self {
        Self::new(String::new(), max)
    }

    /// The text, with the marker when it was cut.
    pub(crate) fn finish(mut self) -> String {
        if self.cut {
            self.out.push_str(TRUNCATED);
        }
        self.out
    }
}

/// What `write` writes, cut to `max` bytes.
pub(crate) fn bounded(max: usize, write: impl FnOnce(&mut Bounded) -> fmt::Result) -> String {
    let mut out = Bounded::with_max(max);
    // A `Bounded` never fails; a `Display` impl that does leaves what it wrote.
    let _ = write(&mut out);
    out.finish()
}

/// Writes untrusted bytes escaped into a bounded text.
pub(crate) fn write_escaped_bytes(f: &mut Bounded, bytes: &[u8]) -> fmt::Result {
    write_escaped(f, bytes)
}

/// Displays `T` cut to `max` bytes, ending in [`TRUNCATED`] when cut; formats lazily, so a
/// field that no subscriber records costs nothing.
pub(crate) struct Limit<T>(pub(crate) T, pub(crate) usize);

impl<T: fmt::Display> fmt::Display for Limit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Limited::new(&mut *f, self.1);
        fmt::write(&mut out, format_args!("{}", self.0))?;
        if out.is_cut() {
            f.write_str(TRUNCATED)?;
        }
        Ok(())
    }
}

/// Text for an unquoted field (method, path, request id), escaped with the ASCII space too
/// (see [`write_bare_str`]).
pub(crate) struct Bare<'a>(pub(crate) &'a str);

impl fmt::Display for Bare<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_bare_str(f, self.0)
    }
}

/// The text that replaces a redacted value.
pub(crate) const REDACTED: &str = "[redacted]";

/// A query string with the values of sensitive keys masked, escaped for an unquoted field
/// (see [`write_bare_str`]).
pub(crate) struct MaskedQuery<'a> {
    pub(crate) query: &'a str,
    pub(crate) keys: &'a [Cow<'static, str>],
}

impl fmt::Display for MaskedQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `;` separates pairs for some parsers; `?` and `#` start a nested URL's query or
        // fragment (`next=/cb?code=...`): mask after any of them.
        let mut rest = self.query;
        loop {
            let end = rest.find(['&', ';', '?', '#']).unwrap_or(rest.len());
            let pair = &rest[..end];
            match pair.split_once('=') {
                Some((key, _)) if self.keys.iter().any(|k| key_matches(key, k)) => {
                    write_bare_str(f, key)?;
                    f.write_str("=")?;
                    f.write_str(REDACTED)?;
                }
                _ => write_bare_str(f, pair)?,
            }
            if end == rest.len() {
                return Ok(());
            }
            f.write_str(&rest[end..=end])?;
            rest = &rest[end + 1..];
        }
    }
}

/// Whether the raw query key `raw` (percent-encoded, `+` for space) names `key`, compared
/// ASCII-case-insensitively after decoding (`form_urlencoded`'s; malformed escapes are taken
/// literally); `key[...]` (array syntax) counts.
fn key_matches(raw: &str, key: &str) -> bool {
    let decoded = form_urlencoded::parse(raw.as_bytes())
        .next()
        .map_or(std::borrow::Cow::Borrowed(""), |(name, _)| name);
    let decoded = decoded.as_bytes();
    decoded.len() >= key.len()
        && decoded[..key.len()].eq_ignore_ascii_case(key.as_bytes())
        && matches!(decoded.get(key.len()), None | Some(b'['))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The inverse of `escape`, to prove it loses nothing.
    fn unescape(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next().unwrap() {
                '\\' => out.push(b'\\'),
                '"' => out.push(b'"'),
                'n' => out.push(b'\n'),
                'r' => out.push(b'\r'),
                't' => out.push(b'\t'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(u8::from_str_radix(&hex, 16).unwrap());
                }
                'u' => {
                    assert_eq!(chars.next(), Some('{'));
                    let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let c = char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap();
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                other => panic!("unknown escape \\{other}"),
            }
        }
        out
    }

    /// The invariant of escaped text: printable, no blank but the ASCII space, nothing
    /// invisible, and every `"` escaped (so quoting the text makes it one field).
    fn is_safe(text: &str) -> bool {
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                // An escape: `\\`, `\"` or a letter; never a dangling backslash, which would
                // escape a closing quote.
                match chars.next() {
                    Some('\\' | '"' | 'n' | 'r' | 't' | 'x' | 'u') => continue,
                    _ => return false,
                }
            }
            let bad = c.is_control()
                || (c.is_whitespace() && c != ' ')
                || is_format(c)
                || (!c.is_ascii() && is_hostile(c))
                || c == '"';
            if bad {
                return false;
            }
        }
        true
    }

    #[test]
    fn hostile_values_are_escaped() {
        let table: &[(&[u8], &str)] = &[
            (b"plain/path", "plain/path"),
            (b"a\r\nb", r"a\r\nb"),
            (
                b"\n2026-01-01T00:00:00Z INFO forged",
                r"\n2026-01-01T00:00:00Z INFO forged",
            ),
            (b"\x1b[2J\x1b[31mred\x1b[0m", r"\x1b[2J\x1b[31mred\x1b[0m"),
            (b"nul\0bell\x07del\x7f", r"nul\x00bell\x07del\x7f"),
            (b"tab\tvt\x0bff\x0c", r"tab\tvt\x0bff\x0c"),
            (b"quote\" back\\", r#"quote\" back\\"#),
            (b"\xff\xfe", r"\xff\xfe"),
            (b"\xe2\x82", r"\xe2\x82"), // a cut multi-byte char
            ("nel\u{85}".as_bytes(), r"nel\u{0085}"),
            ("csi\u{9b}31m".as_bytes(), r"csi\u{009b}31m"),
            ("ls\u{2028}ps\u{2029}".as_bytes(), r"ls\u{2028}ps\u{2029}"),
            ("rlo\u{202e}txt.exe".as_bytes(), r"rlo\u{202e}txt.exe"),
            ("iso\u{2066}x\u{2069}".as_bytes(), r"iso\u{2066}x\u{2069}"),
            ("héllo wörld ✓ 日本".as_bytes(), "héllo wörld ✓ 日本"),
            (
                "/x\u{3000}http.response.status_code=200".as_bytes(),
                r"/x\u{3000}http.response.status_code=200",
            ),
            (
                "nb\u{a0}sp\u{2009}thin\u{205f}".as_bytes(),
                r"nb\u{00a0}sp\u{2009}thin\u{205f}",
            ),
            (
                "zw\u{200b}j\u{200d}wj\u{2060}".as_bytes(),
                r"zw\u{200b}j\u{200d}wj\u{2060}",
            ),
            (
                "shy\u{ad}tag\u{e0041}".as_bytes(),
                r"shy\u{00ad}tag\u{e0041}",
            ),
            (
                "ogham\u{1680}fill\u{3164}".as_bytes(),
                r"ogham\u{1680}fill\u{3164}",
            ),
            (b"", ""),
        ];
        for (input, expected) in table {
            let out = escape(input).to_string();
            assert_eq!(out, *expected, "{input:?}");
            assert!(is_safe(&out), "{out:?}");
            assert_eq!(unescape(&out), *input);
        }
    }

    #[test]
    fn errors_are_escaped_without_a_string() {
        let err = std::io::Error::other("line one\nline two \u{1b}[31m");
        assert_eq!(
            EscapeDisplay(&err).to_string(),
            r"line one\nline two \x1b[31m"
        );
    }

    #[test]
    fn sensitive_query_values_are_masked() {
        let keys: Vec<Cow<'static, str>> = vec!["token".into(), "api_key".into()];
        let table = [
            ("a=1&b=2", "a=1&b=2"),
            ("token=s3cret", "token=[redacted]"),
            ("a=1&token=s3cret&b=2", "a=1&token=[redacted]&b=2"),
            ("token=a&token=b", "token=[redacted]&token=[redacted]"),
            ("TOKEN=s3cret", "TOKEN=[redacted]"),
            ("tok%65n=s3cret", "tok%65n=[redacted]"),
            ("%74%6F%6B%65%6E=s3cret", "%74%6F%6B%65%6E=[redacted]"),
            ("api+key=x&api_key=s3cret", "api+key=x&api_key=[redacted]"),
            ("token[]=s3cret", "token[]=[redacted]"),
            ("a=1;token=s3cret", "a=1;token=[redacted]"),
            ("tokens=public", "tokens=public"),
            ("token", "token"),
            ("token=", "token=[redacted]"),
            ("x=%0d%0a", "x=%0d%0a"),
            ("x=\u{1b}", r"x=\x1b"),
            ("%=token&token%=x", "%=token&token%=x"),
            ("&&=&", "&&=&"),
            ("next=/cb?token=s3cret", "next=/cb?token=[redacted]"),
            ("next=/cb#token=s3cret", "next=/cb#token=[redacted]"),
        ];
        for (query, expected) in table {
            let out = MaskedQuery { query, keys: &keys }.to_string();
            assert_eq!(out, expected, "{query:?}");
        }
    }

    proptest! {
        #[test]
        fn escaped_bytes_have_no_raw_control_characters(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let out = escape(&input).to_string();
            prop_assert!(is_safe(&out), "{:?}", out);
            prop_assert_eq!(unescape(&out), input);
        }

        #[test]
        fn escaped_text_has_no_raw_control_characters(input in any::<String>()) {
            let out = escape(input.as_bytes()).to_string();
            prop_assert!(is_safe(&out), "{:?}", out);
            prop_assert_eq!(unescape(&out), input.as_bytes());
        }

        #[test]
        fn escaped_hostile_text_has_no_blank_or_invisible_character_and_loses_nothing(
            input in proptest::collection::vec(prop_oneof![
                any::<char>(),
                Just(' '), Just('='), Just('"'), Just('\\'), Just('\u{85}'), Just('\u{a0}'),
                Just('\u{1680}'), Just('\u{2000}'), Just('\u{200a}'), Just('\u{200b}'),
                Just('\u{200d}'), Just('\u{2028}'), Just('\u{2029}'), Just('\u{202f}'),
                Just('\u{205f}'), Just('\u{2060}'), Just('\u{3000}'), Just('\u{feff}'),
                Just('\u{ad}'), Just('\u{e0041}'), Just('\u{3164}'), Just('\u{fe0f}'),
            ], 0..32).prop_map(|chars| chars.into_iter().collect::<String>()),
        ) {
            let out = escape(input.as_bytes()).to_string();
            prop_assert!(is_safe(&out), "{:?}", out);
            prop_assert_eq!(unescape(&out), input.as_bytes());
        }

        #[test]
        fn a_bounded_escape_is_a_prefix_of_the_escape_within_its_limit(
            input in any::<String>(),
            max in 0usize..48,
        ) {
            let full = escape(input.as_bytes()).to_string();
            let out = Limit(escape(input.as_bytes()), max).to_string();
            match out.strip_suffix(TRUNCATED) {
                Some(cut) if full.len() > max => {
                    prop_assert!(cut.len() <= max, "{:?}", out);
                    prop_assert!(full.starts_with(cut), "{:?} / {:?}", cut, full);
                    prop_assert!(is_safe(cut), "{:?}", cut);
                }
                _ => prop_assert_eq!(out, full),
            }
        }

        #[test]
        fn masked_queries_are_safe_and_hide_the_secret(
            prefix in "[a-z=&;%]{0,12}",
            secret in "[a-zA-Z0-9]{8,16}",
            suffix in any::<String>(),
        ) {
            let keys: Vec<Cow<'static, str>> = vec!["token".into()];
            let query = format!("{prefix}&token={secret}&{suffix}");
            let out = MaskedQuery { query: &query, keys: &keys }.to_string();
            prop_assert!(is_safe(&out), "{:?}", out);
            prop_assert!(out.contains("&token=[redacted]"), "{:?}", out);
        }
    }
}
