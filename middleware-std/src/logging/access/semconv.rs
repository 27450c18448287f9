//! The HTTP semantic conventions' derived values, shared by the access span, the client span
//! (`otel`) and the metrics attributes.

use std::fmt;

use http::Request;
use tracing::Span;

use crate::logging::escape::{Bare, Limit, bounded, write_escaped_bytes, write_escaped_str};

/// `http.request.method`: the method when the conventions know it, `_OTHER` otherwise.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Method<'a>(pub(crate) &'a http::Method);

impl Method<'_> {
    /// One of the nine methods of RFC 9110 and PATCH.
    pub(crate) fn is_known(self) -> bool {
        matches!(
            *self.0,
            http::Method::GET
                | http::Method::HEAD
                | http::Method::POST
                | http::Method::PUT
                | http::Method::DELETE
                | http::Method::CONNECT
                | http::Method::OPTIONS
                | http::Method::TRACE
                | http::Method::PATCH
        )
    }

    /// The attribute value: the method, or `_OTHER`.
    pub(crate) fn as_str(self) -> &'static str {
        if self.is_known() {
            // A known method's text is a static string in `http`; match it back.
            match *self.0 {
                http::Method::GET => "GET",
                http::Method::HEAD => "HEAD",
                http::Method::POST => "POST",
                http::Method::PUT => "PUT",
                http::Method::DELETE => "DELETE",
                http::Method::CONNECT => "CONNECT",
                http::Method::OPTIONS => "OPTIONS",
                http::Method::TRACE => "TRACE",
                _ => "PATCH",
            }
        } else {
            "_OTHER"
        }
    }

    /// The span name's method part: the method, or `HTTP` for an unknown one.
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) fn span_name(self) -> &'static str {
        if self.is_known() {
            self.as_str()
        } else {
            "HTTP"
        }
    }

    /// The span name: `{method} {route}`, or `{method}` without a route.
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) fn span_name_with(self, route: Option<&str>) -> SpanName<'_> {
        SpanName {
            method: self.span_name(),
            route,
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span name, written without an intermediate `String`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpanName<'a> {
    method: &'static str,
    route: Option<&'a str>,
}

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.method)?;
        if let Some(route) = self.route {
            write!(f, " {}", Limit(Bare(route), super::MAX_PATH))?;
        }
        Ok(())
    }
}

/// `server.address` and `server.port`: the URI's authority (HTTP/2, absolute form), else
/// the `Host` header. Client-chosen: escaped and bounded where recorded.
pub(crate) fn server_address<B>(req: &Request<B>) -> Option<(&str, Option<u16>)> {
    if let Some(authority) = req.uri().authority() {
        return Some((authority.host(), authority.port_u16()));
    }
    let host = req.headers().get(http::header::HOST)?.to_str().ok()?;
    let (name, port) = match host.rfind(':') {
        Some(i)
            if host.len() > i + 1
                && host[i + 1..].bytes().all(|b| b.is_ascii_digit())
                && (!host.starts_with('[') || host[..i].ends_with(']')) =>
        {
            (&host[..i], host[i + 1..].parse().ok())
        }
        _ => (host, None),
    };
    (!name.is_empty()).then_some((name, port))
}

/// Writes `value` escaped for a bare field (no blank at all), bounded.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) fn bare(value: &str, max: usize) -> impl fmt::Display + '_ {
    Limit(Bare(value), max)
}

/// Records client text that may hold spaces (a user agent) as a string: as it is when it
/// needs neither escaping nor cutting, else escaped and cut into a new string.
pub(crate) fn record_text(span: &Span, field: &str, value: &[u8], max: usize) {
    match std::str::from_utf8(value) {
        Ok(text) if text.len() <= max && is_clean(text) => {
            span.record(field, text);
        }
        _ => {
            let text = bounded(max, |f| write_escaped_bytes(f, value));
            span.record(field, text.as_str());
        }
    }
}

/// Whether escaping leaves `text` as it is, checked without allocating.
fn is_clean(text: &str) -> bool {
    struct Same<'a>(&'a str);
    impl fmt::Write for Same<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match self.0.strip_prefix(s) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(())
                }
                None => Err(fmt::Error),
            }
        }
    }
    let mut same = Same(text);
    write_escaped_str(&mut same, text).is_ok() && same.0.is_empty()
}
