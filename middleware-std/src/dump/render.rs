//! Rendering a head in HTTP/1.1 wire format, with redaction and escaping.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode, Uri, Version};
use middleware_core::{Context, RequestExt};

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// The most of one header value (or query value) a dump shows, in bytes of the original.
const MAX_VALUE: usize = 1024;

/// Headers whose values never appear in a dump: credentials, session cookies and API keys.
const SENSITIVE_HEADERS: [&str; 12] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-csrf-token",
    "x-xsrf-token",
    "x-amz-security-token",
    "x-goog-api-key",
];

/// Query keys whose values never appear in a dump (compared ignoring ASCII case).
const SENSITIVE_QUERY_KEYS: [&str; 13] = [
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "client_secret",
    "code",
    "key",
    "password",
    "refresh_token",
    "secret",
    "sig",
    "signature",
    "token",
];

/// What a dump redacts beyond the built-in lists. See the [module docs](super) for an example.
///
/// Always redacted: the values of credential headers (`authorization`, `proxy-authorization`,
/// `cookie`, `set-cookie`, API-key and token headers), of every header the request's
/// [`Context`] declared sensitive ([`Context::mark_sensitive_header`]), of well-known secret
/// query keys (`token`, `access_token`, `api_key`, `password`, `sig`, ...), the user info of a
/// URI (`user:pass@`), and any value that looks like a credential: an HTTP auth scheme
/// followed by a value (`Bearer ...`, `Basic ...`) or a long high-entropy token (24 or more
/// token characters mixing upper case, lower case and digits, as API keys and JWTs do).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Redaction {
    headers: Vec<HeaderName>,
    query_keys: Vec<String>,
}

impl Redaction {
    /// The built-in lists only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also redacts the values of header `name`.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.headers.push(name);
        self
    }

    /// Also redacts the values of query key `key` (compared ignoring ASCII case, after
    /// percent-decoding).
    pub fn query_key(mut self, key: impl Into<String>) -> Self {
        self.query_keys.push(key.into());
        self
    }

    fn is_sensitive_header(&self, name: &HeaderName, cx: Option<&Context>) -> bool {
        SENSITIVE_HEADERS.contains(&name.as_str())
            || self.headers.contains(name)
            || cx.is_some_and(|cx| cx.is_sensitive_header(name))
    }

    fn is_sensitive_query_key(&self, key: &[u8]) -> bool {
        SENSITIVE_QUERY_KEYS
            .iter()
            .any(|k| k.as_bytes().eq_ignore_ascii_case(key))
            || self
                .query_keys
                .iter()
                .any(|k| k.as_bytes().eq_ignore_ascii_case(key))
    }
}

/// Renders a request's head in HTTP/1.1 wire format (request line, one line per header, no
/// trailing blank line), redacted and escaped as [`Redaction`] and the module docs say. The
/// request's context, if any, supplies the headers it declared sensitive.
///
/// See the [module docs](super) for an example.
pub fn request_head<B>(req: &Request<B>, redaction: &Redaction) -> String {
    let cx = req.extensions().try_context();
    let mut out = String::with_capacity(128);
    write_method(&mut out, req.method());
    out.push(' ');
    write_target(&mut out, req.uri(), redaction);
    out.push(' ');
    write_version(&mut out, req.version());
    if !req.headers().contains_key(http::header::HOST) {
        if let Some(authority) = req.uri().authority() {
            // What an HTTP/1.1 client sends; never the user info.
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            out.push_str("\nhost: ");
            write_value(&mut out, host.as_bytes());
        }
    }
    write_headers(&mut out, req.headers(), redaction, cx);
    out
}

/// Renders a response's head in HTTP/1.1 wire format (status line, one line per header, no
/// trailing blank line). `cx` is the context of the request it answers, if any: headers it
/// declared sensitive are redacted too.
///
/// See the [module docs](super) for an example.
pub fn response_head<B>(res: &Response<B>, cx: Option<&Context>, redaction: &Redaction) -> String {
    let mut out = String::with_capacity(96);
    write_version(&mut out, res.version());
    out.push(' ');
    write_status(&mut out, res.status());
    write_headers(&mut out, res.headers(), redaction, cx);
    out
}

/// Escapes the first body bytes a dump shows: printable ASCII, tab, CR-LF and LF stay as they
/// are (a body's own lines), everything else becomes `\xNN`, a bare CR `\r`, a backslash `\\`;
/// credential-looking words are redacted.
pub(crate) fn write_body(out: &mut String, bytes: &[u8]) {
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Body lines are indented, so a body can never pass for the next head's lines.
        out.push_str("  ");
        write_words(out, line);
    }
}

fn write_method(out: &mut String, method: &Method) {
    // Extension methods are tokens (`http` checks), but escape anyway: a dump trusts nothing.
    write_escaped(out, method.as_str().as_bytes());
}

fn write_version(out: &mut String, version: Version) {
    out.push_str(match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    });
}

fn write_status(out: &mut String, status: StatusCode) {
    let _ = write!(out, "{}", status.as_u16());
    if let Some(reason) = status.canonical_reason() {
        out.push(' ');
        out.push_str(reason);
    }
}

/// The origin-form target: path and query, with credential-looking path segments and
/// sensitive query values redacted.
fn write_target(out: &mut String, uri: &Uri, redaction: &Redaction) {
    let path = uri.path();
    if path.is_empty() {
        out.push('/');
    }
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if looks_like_token(segment.as_bytes()) {
            out.push_str(REDACTED);
        } else {
            write_escaped(out, segment.as_bytes());
        }
    }
    if let Some(query) = uri.query() {
        out.push('?');
        write_query(out, query, redaction);
    }
}

fn write_query(out: &mut String, query: &str, redaction: &Redaction) {
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (key, value) = match pair.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (pair, None),
        };
        write_escaped(out, key.as_bytes());
        let Some(value) = value else { continue };
        out.push('=');
        let decoded_key = percent_decode(key.as_bytes());
        let decoded_value = percent_decode(value.as_bytes());
        if redaction.is_sensitive_query_key(&decoded_key) || looks_like_credential(&decoded_value) {
            out.push_str(REDACTED);
        } else {
            write_escaped(out, value.as_bytes());
        }
    }
}

fn write_headers(
    out: &mut String,
    headers: &HeaderMap,
    redaction: &Redaction,
    cx: Option<&Context>,
) {
    for (name, value) in headers {
        out.push('\n');
        // Header names are lowercase tokens (`http` checks); escaped all the same.
        write_escaped(out, name.as_str().as_bytes());
        out.push_str(": ");
        if redaction.is_sensitive_header(name, cx) {
            out.push_str(REDACTED);
        } else {
            write_value(out, value.as_bytes());
        }
    }
}

/// A header value: redacted whole when it looks like a credential, else escaped word by word
/// with credential-looking words redacted.
fn write_value(out: &mut String, value: &[u8]) {
    if looks_like_credential(value) {
        out.push_str(REDACTED);
        return;
    }
    let cut = value.len() > MAX_VALUE;
    write_words(out, &value[..value.len().min(MAX_VALUE)]);
    if cut {
        let _ = write!(out, "...({} bytes)", value.len());
    }
}

/// Escapes `bytes`, redacting each whitespace- or punctuation-separated word that looks like a
/// token.
fn write_words(out: &mut String, bytes: &[u8]) {
    let mut start = 0;
    for end in 0..=bytes.len() {
        if end == bytes.len() || !is_token_byte(bytes[end]) {
            let word = &bytes[start..end];
            if looks_like_token(word) {
                out.push_str(REDACTED);
            } else {
                write_escaped(out, word);
            }
            if end < bytes.len() {
                write_escaped(out, &bytes[end..=end]);
            }
            start = end + 1;
        }
    }
}

/// Printable ASCII stays, a backslash doubles, everything else (controls, DEL, non-ASCII)
/// becomes `\xNN`: no byte of a dump can end a line, move the cursor or fake a character.
fn write_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// An HTTP auth scheme followed by a value (`Bearer abc`, `basic abc`), or a long high-entropy
/// token anywhere in the value.
pub(crate) fn looks_like_credential(value: &[u8]) -> bool {
    const SCHEMES: [&[u8]; 10] = [
        b"basic",
        b"bearer",
        b"digest",
        b"token",
        b"negotiate",
        b"ntlm",
        b"hoba",
        b"mutual",
        b"aws4-hmac-sha256",
        b"dpop",
    ];
    let trimmed = value.trim_ascii_start();
    let scheme_len = trimmed
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(trimmed.len());
    let (scheme, rest) = trimmed.split_at(scheme_len);
    if SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) && !rest.trim_ascii().is_empty() {
        return true;
    }
    value.split(|&b| !is_token_byte(b)).any(looks_like_token)
}

/// Characters API keys, base64 and JWTs are made of.
const fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'/' | b'=' | b'~')
}

/// 24 or more token characters mixing upper case, lower case and digits: API keys, session
/// ids, JWTs. Lowercase hex (UUIDs, hashes in paths) and words are not.
fn looks_like_token(word: &[u8]) -> bool {
    word.len() >= 24
        && word.iter().all(|&b| is_token_byte(b))
        && word.iter().any(u8::is_ascii_uppercase)
        && word.iter().any(u8::is_ascii_lowercase)
        && word.iter().any(u8::is_ascii_digit)
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    // Both digits are below 16.
                    #[allow(clippy::cast_possible_truncation)]
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}
