//! Escaping of logged values: one record per event, never a forged line.

use std::{borrow::Cow, fmt};

use http::{HeaderMap, HeaderName};

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
/// - Unicode control characters (C1, such as `NEL`), the line and paragraph separators and the
///   bidirectional overrides and isolates (which can make a log line display reordered)
///   become `\u{NNNN}`;
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
/// ```
#[must_use]
pub const fn escape(bytes: &[u8]) -> Escape<'_> {
    Escape(bytes)
}

/// Whether a non-ASCII char must be escaped.
const fn is_hostile(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'         // C1 controls (NEL, CSI...)
        | '\u{061c}'                // arabic letter mark
        | '\u{200e}' | '\u{200f}'   // LRM, RLM
        | '\u{2028}' | '\u{2029}'   // line and paragraph separators
        | '\u{202a}'..='\u{202e}'   // bidi embeddings and overrides
        | '\u{2066}'..='\u{2069}'   // bidi isolates
        | '\u{feff}') // zero-width no-break space (BOM)
}

pub(crate) fn write_escaped_str(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let mut clean = 0;
    for (i, c) in s.char_indices() {
        let escaped: Option<&'static str> = match c {
            '\\' => Some(r"\\"),
            '"' => Some("\\\""),
            '\n' => Some(r"\n"),
            '\r' => Some(r"\r"),
            '\t' => Some(r"\t"),
            c if c.is_ascii_control() => None,
            c if is_hostile(c) => None,
            _ => continue,
        };
        f.write_str(&s[clean..i])?;
        match escaped {
            Some(text) => f.write_str(text)?,
            None if c.is_ascii() => write!(f, "\\x{:02x}", u32::from(c))?,
            None => write!(f, "\\u{{{:04x}}}", u32::from(c))?,
        }
        clean = i + c.len_utf8();
    }
    f.write_str(&s[clean..])
}

fn write_escaped(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        write_escaped_str(f, chunk.valid())?;
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
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

/// The text that replaces a redacted value.
pub(crate) const REDACTED: &str = "[redacted]";

/// A query string with the values of sensitive keys masked, escaped.
pub(crate) struct MaskedQuery<'a> {
    pub(crate) query: &'a str,
    pub(crate) keys: &'a [Cow<'static, str>],
}

impl fmt::Display for MaskedQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `;` separates pairs for some parsers: mask after either separator.
        let mut rest = self.query;
        loop {
            let end = rest.find(['&', ';']).unwrap_or(rest.len());
            let pair = &rest[..end];
            match pair.split_once('=') {
                Some((key, _)) if self.keys.iter().any(|k| key_matches(key, k)) => {
                    write_escaped_str(f, key)?;
                    f.write_str("=")?;
                    f.write_str(REDACTED)?;
                }
                _ => write_escaped_str(f, pair)?,
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
/// ASCII-case-insensitively; `key[...]` (array syntax) counts.
fn key_matches(raw: &str, key: &str) -> bool {
    let mut decoded = Decode(raw.as_bytes());
    for expected in key.bytes() {
        match decoded.next() {
            Some(b) if b.eq_ignore_ascii_case(&expected) => {}
            _ => return false,
        }
    }
    matches!(decoded.next(), None | Some(b'['))
}

/// Percent-decoding iterator; malformed escapes are taken literally.
struct Decode<'a>(&'a [u8]);

impl Iterator for Decode<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        match first {
            b'+' => Some(b' '),
            b'%' => {
                let hex = |b: u8| char::from(b).to_digit(16);
                if let [hi, lo, tail @ ..] = self.0 {
                    if let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo)) {
                        self.0 = tail;
                        return u8::try_from(hi * 16 + lo).ok();
                    }
                }
                Some(b'%')
            }
            b => Some(b),
        }
    }
}

/// The headers that are redacted unless the user opts out: credentials and session cookies.
pub(crate) const SENSITIVE_HEADERS: [HeaderName; 5] = [
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
    http::header::SET_COOKIE,
    HeaderName::from_static("x-api-key"),
];

/// A header map as `name: "value", ...`, every value of a sensitive header redacted (repeated
/// headers included), values escaped. A redacted value is written unquoted, so it cannot be
/// confused with a real value.
pub(crate) struct Headers<'a> {
    pub(crate) map: &'a HeaderMap,
    pub(crate) redacted: &'a [HeaderName],
}

impl fmt::Display for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.map.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name.as_str())?;
            if value.is_sensitive() || self.redacted.contains(name) {
                write!(f, ": {REDACTED}")?;
            } else {
                write!(f, ": \"{}\"", escape(value.as_bytes()))?;
            }
        }
        Ok(())
    }
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

    fn is_safe(text: &str) -> bool {
        !text.chars().any(|c| c.is_control() || is_hostile(c))
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
        ];
        for (query, expected) in table {
            let out = MaskedQuery { query, keys: &keys }.to_string();
            assert_eq!(out, expected, "{query:?}");
        }
    }

    #[test]
    fn every_value_of_a_sensitive_header_is_redacted() {
        let mut map = HeaderMap::new();
        map.append("cookie", "a=1".parse().unwrap());
        map.append("cookie", "b=2".parse().unwrap());
        map.append("x-custom", "secret".parse().unwrap());
        map.append("host", "example.com".parse().unwrap());
        let mut marked = http::HeaderValue::from_static("hidden");
        marked.set_sensitive(true);
        map.append("x-marked", marked);
        map.append(
            "x-evil",
            http::HeaderValue::from_bytes(b"a\"b\xff").unwrap(),
        );
        let mut redacted = SENSITIVE_HEADERS.to_vec();
        redacted.push(HeaderName::from_static("x-custom"));
        let out = Headers {
            map: &map,
            redacted: &redacted,
        }
        .to_string();
        assert_eq!(
            out,
            r#"cookie: [redacted], cookie: [redacted], x-custom: [redacted], host: "example.com", x-marked: [redacted], x-evil: "a\"b\xff""#
        );
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
