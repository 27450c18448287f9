//! Which header values may be logged, and how: an allow-list of well-known non-credential
//! headers, a deny-list that always wins, the request's declared credentials, and masked URLs.

use std::{borrow::Cow, fmt};

use http::{HeaderMap, HeaderName, HeaderValue};
use middleware_core::Context;

use super::escape::{Bounded, MaskedQuery, REDACTED, write_escaped_bytes, write_escaped_str};

/// The most a logged header list takes (bytes of escaped text, before the cut marker).
pub(crate) const MAX_HEADERS: usize = 4096;
/// The most one logged header value takes (bytes of escaped text).
pub(crate) const MAX_HEADER_VALUE: usize = 256;
/// The most one logged header name takes (bytes).
pub(crate) const MAX_HEADER_NAME: usize = 64;

/// Headers whose values are never logged, even when allowed: credentials and session cookies.
pub(crate) const DENIED_HEADERS: [HeaderName; 10] = [
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
    http::header::SET_COOKIE,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-auth-token"),
    HeaderName::from_static("x-access-token"),
    HeaderName::from_static("x-csrf-token"),
    HeaderName::from_static("x-xsrf-token"),
];

/// Whether `name` is on the built-in allow-list of well-known non-credential headers.
pub(crate) fn is_allowed_by_default(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "accept"
            | "age"
            | "cache-control"
            | "connection"
            | "content-encoding"
            | "content-language"
            | "content-length"
            | "content-location"
            | "content-range"
            | "content-type"
            | "date"
            | "etag"
            | "expect"
            | "expires"
            | "forwarded"
            | "host"
            | "if-match"
            | "if-modified-since"
            | "if-none-match"
            | "if-range"
            | "if-unmodified-since"
            | "last-modified"
            | "location"
            | "origin"
            | "pragma"
            | "range"
            | "referer"
            | "refresh"
            | "retry-after"
            | "server"
            | "te"
            | "traceparent"
            | "tracestate"
            | "transfer-encoding"
            | "upgrade"
            | "user-agent"
            | "vary"
            | "via"
            | "x-real-ip"
            | "x-request-id"
    ) || name.starts_with("accept-")
        || name.starts_with("access-control-")
        || name.starts_with("x-forwarded-")
}

/// Headers whose value is a URL (or holds one): logged with the query, the fragment and the
/// userinfo masked.
fn is_url_valued(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "location" | "content-location" | "refresh" | "referer" | "origin"
    )
}

/// The header policy of one layer.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeaderPolicy {
    /// Added to the allow-list by `LogLayer::log_header_value`.
    pub(crate) allowed: Vec<HeaderName>,
    /// Added to the deny-list by `LogLayer::redact_header`.
    pub(crate) denied: Vec<HeaderName>,
}

impl HeaderPolicy {
    /// Whether the value of `name` may be logged in a request whose context is `cx`.
    pub(crate) fn shows(&self, name: &HeaderName, cx: Option<&Context>) -> bool {
        let allowed = is_allowed_by_default(name) || self.allowed.contains(name);
        allowed
            && !DENIED_HEADERS.contains(name)
            && !self.denied.contains(name)
            && !cx.is_some_and(|cx| cx.is_sensitive_header(name))
    }
}

/// A header map as `name: "value", ...`: values escaped (URLs masked), every value of a header
/// whose value may not be shown written `[redacted]` unquoted (repeated headers included), and
/// the whole bounded.
pub(crate) fn format(
    map: &HeaderMap,
    policy: &HeaderPolicy,
    query_keys: &[Cow<'static, str>],
    cx: Option<&Context>,
) -> String {
    let mut out = Bounded::with_max(MAX_HEADERS);
    // A `Bounded` never fails.
    let _ = write_headers(&mut out, map, policy, query_keys, cx);
    out.finish()
}

fn write_headers(
    out: &mut Bounded,
    map: &HeaderMap,
    policy: &HeaderPolicy,
    query_keys: &[Cow<'static, str>],
    cx: Option<&Context>,
) -> fmt::Result {
    use fmt::Write;
    let mut last: Option<(&HeaderName, bool)> = None;
    for (i, (name, value)) in map.iter().enumerate() {
        if out.is_cut() {
            break;
        }
        if i > 0 {
            out.write_str(", ")?;
        }
        let name_text = name.as_str();
        let cut = name_text.len() > MAX_HEADER_NAME;
        // A header name is a token: nothing to escape.
        out.write_str(&name_text[..name_text.len().min(MAX_HEADER_NAME)])?;
        if cut {
            out.write_str(super::escape::TRUNCATED)?;
        }
        // One look at the policy per name, not per value of a repeated header.
        let shown = match last {
            Some((prev, shown)) if prev == name => shown,
            _ => policy.shows(name, cx),
        };
        last = Some((name, shown));
        if value.is_sensitive() || !shown {
            write!(out, ": {REDACTED}")?;
        } else {
            out.write_str(": \"")?;
            let text = value_text(name, value, query_keys);
            out.write_str(&text)?;
            out.write_str("\"")?;
        }
    }
    Ok(())
}

/// One shown header value, escaped, masked when it is a URL, bounded.
fn value_text(name: &HeaderName, value: &HeaderValue, query_keys: &[Cow<'static, str>]) -> String {
    let mut out = Bounded::with_max(MAX_HEADER_VALUE);
    // A `Bounded` never fails.
    let _ = if is_url_valued(name) {
        let text = String::from_utf8_lossy(value.as_bytes());
        write_masked_url(&mut out, &text, query_keys)
    } else {
        write_escaped_bytes(&mut out, value.as_bytes())
    };
    out.finish()
}

/// Writes a URL (or a value that holds one, as `Refresh: 0; url=...`) escaped, with the
/// userinfo (`user:pass@`) redacted and the query and fragment masked by the query rules.
pub(crate) fn write_masked_url(
    f: &mut impl fmt::Write,
    url: &str,
    keys: &[Cow<'static, str>],
) -> fmt::Result {
    let mut rest = url;
    // Userinfo: between `://` (or a leading `//`) and the last `@` of the authority.
    let authority_start = match rest.find("://") {
        Some(scheme_end) => Some(scheme_end + 3),
        None => rest.starts_with("//").then_some(2),
    };
    if let Some(authority_start) = authority_start {
        let authority_len = rest[authority_start..]
            .find(['/', '?', '#'])
            .unwrap_or(rest.len() - authority_start);
        let authority = &rest[authority_start..authority_start + authority_len];
        if let Some(at) = authority.rfind('@') {
            write_escaped_str(f, &rest[..authority_start])?;
            f.write_str(REDACTED)?;
            rest = &rest[authority_start + at..];
        }
    }
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (rest, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            write_escaped_str(f, path)?;
            f.write_str("?")?;
            write!(f, "{}", MaskedQuery { query, keys })?;
        }
        None => write_escaped_str(f, before_fragment)?,
    }
    if let Some(fragment) = fragment {
        // OAuth's implicit flow returns tokens in the fragment, as `key=value` pairs.
        f.write_str("#")?;
        write!(
            f,
            "{}",
            MaskedQuery {
                query: fragment,
                keys
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Cow<'static, str>> {
        super::super::layer::SENSITIVE_QUERY_KEYS
            .iter()
            .map(|k| Cow::Borrowed(*k))
            .collect()
    }

    fn masked(url: &str) -> String {
        let mut out = String::new();
        write_masked_url(&mut out, url, &keys()).unwrap();
        out
    }

    #[test]
    fn urls_have_their_secrets_masked() {
        let table = [
            ("/next?page=2", "/next?page=2"),
            (
                "https://app.example/cb?code=s3cret&state=xyz",
                "https://app.example/cb?code=[redacted]&state=xyz",
            ),
            (
                "https://user:s3cret@example.com/path?x=1",
                "https://[redacted]@example.com/path?x=1",
            ),
            ("https://example.com/a@b", "https://example.com/a@b"),
            (
                "https://app.example/cb#access_token=s3cret&token_type=bearer",
                "https://app.example/cb#access_token=[redacted]&token_type=bearer",
            ),
            ("0; url=/login?sig=s3cret", "0; url=/login?sig=[redacted]"),
            (
                "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=s3cret",
                "https://b.s3.amazonaws.com/k?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]",
            ),
            ("/x\u{3000}y?a=\"", r#"/x\u{3000}y?a=\""#),
            ("//bob:s3cret@cdn.example/x", "//[redacted]@cdn.example/x"),
            (
                "/login?next=/cb?code=s3cret#state=1",
                "/login?next=/cb?code=[redacted]#state=1",
            ),
            ("/cb#?token=s3cret", "/cb#?token=[redacted]"),
        ];
        for (url, expected) in table {
            assert_eq!(masked(url), expected, "{url:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_masked_url_never_shows_a_secret_and_stays_escaped(
            prefix in "[a-z:/@?#&;=%.]{0,16}",
            key in proptest::sample::select(super::super::layer::SENSITIVE_QUERY_KEYS),
            secret in "[a-zA-Z0-9]{12,16}",
            suffix in proptest::prelude::any::<String>(),
            separator in proptest::sample::select(&["?", "#", "?a=1&", "?a=1;", "#x=1&"][..]),
        ) {
            let url = format!("https://host/{prefix}{separator}{key}={secret}&{suffix}");
            let out = masked(&url);
            proptest::prop_assert!(!out.contains(&secret), "{:?}", out);
            proptest::prop_assert!(
                !out.chars().any(|c| c.is_control() || (c.is_whitespace() && c != ' ')),
                "{:?}", out
            );
        }

        #[test]
        fn userinfo_is_always_redacted(
            user in "[a-z]{1,8}",
            password in "[a-zA-Z0-9]{12,16}",
            rest in "[a-z/?=&#]{0,16}",
        ) {
            let out = masked(&format!("https://{user}:{password}@example.com/{rest}"));
            proptest::prop_assert!(!out.contains(&password), "{:?}", out);
            proptest::prop_assert!(out.starts_with("https://[redacted]@example.com/"), "{:?}", out);
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_allowed_values_are_shown_and_the_deny_list_wins() {
        let map = headers(&[
            ("accept-language", "en"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-auth-token", "s3cret-1"),
            ("x-auth-token", "s3cret-2"),
            ("x-custom", "s3cret-3"),
            ("authorization", "s3cret-4"),
            ("x-tenant", "acme"),
        ]);
        let policy = HeaderPolicy {
            allowed: vec![
                HeaderName::from_static("x-tenant"),
                HeaderName::from_static("authorization"),
            ],
            denied: Vec::new(),
        };
        assert_eq!(
            format(&map, &policy, &keys(), None),
            "accept-language: \"en\", x-forwarded-for: \"10.0.0.1\", x-auth-token: [redacted], \
             x-auth-token: [redacted], x-custom: [redacted], authorization: [redacted], \
             x-tenant: \"acme\""
        );
    }

    #[test]
    fn headers_declared_sensitive_in_the_context_are_redacted() {
        let map = headers(&[("user-agent", "curl"), ("x-tenant", "acme")]);
        let policy = HeaderPolicy {
            allowed: vec![HeaderName::from_static("x-tenant")],
            denied: vec![HeaderName::from_static("user-agent")],
        };
        let cx = Context::new();
        cx.mark_sensitive_header(HeaderName::from_static("x-tenant"));
        assert_eq!(
            format(&map, &policy, &keys(), Some(&cx)),
            "user-agent: [redacted], x-tenant: [redacted]"
        );
    }

    #[test]
    fn a_huge_header_map_is_bounded() {
        let mut map = HeaderMap::new();
        let long = "\u{3000}".repeat(4000);
        for i in 0..200 {
            map.append(
                HeaderName::from_bytes(format!("accept-{}{i}", "n".repeat(100)).as_bytes())
                    .unwrap(),
                HeaderValue::from_str(&long).unwrap(),
            );
        }
        let out = format(&map, &HeaderPolicy::default(), &keys(), None);
        assert!(out.len() <= MAX_HEADERS + 14, "{}", out.len());
        assert!(out.ends_with("...[truncated]"), "{out}");
        assert!(!out.contains('\u{3000}'));
    }
}
