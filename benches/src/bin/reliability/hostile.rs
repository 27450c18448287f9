//! Hostile input: one checker per parser that sees untrusted bytes, each asserting its
//! properties against an oracle written from the documented grammar (not from the code).
//!
//! The checkers take raw bytes, so the same function serves the cargo-fuzz targets in
//! `benches/fuzz/` (which include this file with `#[path]`) and the generated runs of the
//! `reliability` binary (`--ci` and full mode), which feed them structured cases from a
//! seeded generator. A violated property panics with the offending input, escaped.
//!
//! Every service here answers synchronously (static credentials, id generation), so requests
//! are driven with a no-op waker: no runtime, and a future that is still pending is itself a
//! failure.

use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use middleware_std::{
    RequestExt,
    auth::{AuthLayer, Principal},
    logging::escape,
    request_id::{SetRequestIdLayer, is_valid_request_id},
    timeout::DeadlineFormat,
};
use tower::{Layer, Service, service_fn};

/// The bearer token the checked layer accepts.
pub const TOKEN: &str = "reliability-token_0123456789";
/// The Basic user and password the checked layer accepts, and their canonical encoding.
pub const BASIC_USER: &str = "load-user";
pub const BASIC_PASSWORD: &str = "pass:word";
/// `base64("load-user:pass:word")`, computed with coreutils' `base64`.
pub const BASIC_TOKEN: &str = "bG9hZC11c2VyOnBhc3M6d29yZA==";
/// The longest credentials header the auth layer reads (8 KiB, from its docs).
pub const MAX_CREDENTIALS_LEN: usize = 8 * 1024;

/// Polls `future` once with a no-op waker; these futures must be ready at once.
///
/// # Panics
///
/// When the future is pending.
pub fn ready_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a synchronous path returned Pending"),
    }
}

/// Makes `svc` ready and calls it, all synchronously.
fn call_now<S, R>(svc: &mut S, req: R) -> S::Response
where
    S: Service<R, Error = Infallible>,
{
    let ready = ready_now(std::future::poll_fn(|cx| svc.poll_ready(cx)));
    ready.unwrap_or_else(|e| match e {});
    ready_now(svc.call(req)).unwrap_or_else(|e| match e {})
}

fn shown(bytes: &[u8]) -> String {
    escape(bytes).to_string()
}

type Inner = fn(Request<String>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

/// The inner service: `200` with the principal's id (or `-` when there is none) as the body.
#[allow(clippy::needless_pass_by_value)] // a service fn owns its request
fn inner_principal(
    req: Request<String>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let who = req
        .try_context()
        .and_then(|cx| cx.get::<Principal>())
        .map_or_else(|| String::from("-"), |p| p.id().to_owned());
    std::future::ready(Ok(Response::new(Full::new(Bytes::from(who)))))
}

/// A `401` as sent: its headers and body.
type Rejection = (Vec<(String, Vec<u8>)>, Bytes);

/// The `Authorization` checker: a bearer layer and a Basic layer, each asked about the same
/// header values.
#[derive(Debug)]
pub struct AuthChecker {
    bearer: middleware_std::auth::Auth<tower::util::ServiceFn<Inner>, middleware_std::auth::Bearer>,
    basic: middleware_std::auth::Auth<tower::util::ServiceFn<Inner>, middleware_std::auth::Basic>,
    /// The first 401 of each layer: every later one must be byte-identical (no oracle).
    bearer_401: Option<Rejection>,
    basic_401: Option<Rejection>,
    /// Admitted requests, per layer.
    pub admitted: [u64; 2],
    /// Rejected requests, per layer.
    pub rejected: [u64; 2],
}

impl Default for AuthChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthChecker {
    pub fn new() -> Self {
        let inner = service_fn(inner_principal as Inner);
        Self {
            bearer: AuthLayer::bearer(TOKEN, Principal::new("bearer-user"))
                .with_realm("reliability")
                .layer(inner),
            basic: AuthLayer::basic(BASIC_USER, BASIC_PASSWORD)
                .with_realm("reliability")
                .layer(inner),
            bearer_401: None,
            basic_401: None,
            admitted: [0; 2],
            rejected: [0; 2],
        }
    }

    /// Sends a request carrying `values` as its `Authorization` headers (values that are not
    /// valid header values are skipped, as no HTTP stack would deliver them) to both layers and
    /// checks each answer: `200` exactly when the oracle accepts, otherwise the one `401`.
    ///
    /// # Panics
    ///
    /// On a violated property.
    pub fn check(&mut self, values: &[&[u8]]) {
        let headers: Vec<HeaderValue> = values
            .iter()
            .filter_map(|v| HeaderValue::from_bytes(v).ok())
            .collect();
        let single = match headers.as_slice() {
            [one] => Some(one.as_bytes()),
            _ => None,
        };
        let bearer_ok = single.is_some_and(|v| oracle_scheme(v, b"bearer", TOKEN.as_bytes()));
        let basic_ok = single.is_some_and(|v| oracle_scheme(v, b"basic", BASIC_TOKEN.as_bytes()));

        let request = || {
            let mut req = Request::new(String::new());
            for value in &headers {
                req.headers_mut()
                    .append(header::AUTHORIZATION, value.clone());
            }
            req
        };
        let res = call_now(&mut self.bearer, request());
        Self::verdict(res, bearer_ok, "bearer-user", values, &mut self.bearer_401);
        self.count(0, bearer_ok);
        let res = call_now(&mut self.basic, request());
        Self::verdict(res, basic_ok, BASIC_USER, values, &mut self.basic_401);
        self.count(1, basic_ok);
    }

    fn count(&mut self, layer: usize, admitted: bool) {
        if admitted {
            self.admitted[layer] += 1;
        } else {
            self.rejected[layer] += 1;
        }
    }

    fn verdict<B>(
        res: Response<B>,
        accept: bool,
        who: &str,
        values: &[&[u8]],
        reference: &mut Option<Rejection>,
    ) where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Debug,
    {
        let shown_values = || values.iter().map(|v| shown(v)).collect::<Vec<_>>();
        let status = res.status();
        assert!(
            matches!(
                status,
                StatusCode::OK | StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
            ),
            "status {status} for {:?}",
            shown_values()
        );
        if accept {
            assert_eq!(
                status,
                StatusCode::OK,
                "rejected valid credentials {:?}",
                shown_values()
            );
            let body = ready_now(res.into_body().collect())
                .expect("body")
                .to_bytes();
            assert_eq!(
                body,
                who.as_bytes(),
                "wrong principal for {:?}",
                shown_values()
            );
            return;
        }
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "admitted {:?}",
            shown_values()
        );
        let head: Vec<(String, Vec<u8>)> = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        assert!(
            res.headers().contains_key(header::WWW_AUTHENTICATE),
            "401 without a challenge for {:?}",
            shown_values()
        );
        let body = ready_now(res.into_body().collect())
            .expect("body")
            .to_bytes();
        match reference {
            None => *reference = Some((head, body)),
            Some((h, b)) => assert!(
                *h == head && *b == body,
                "this 401 differs from the first one (an oracle) for {:?}",
                shown_values()
            ),
        }
    }
}

/// The documented grammar: `<scheme> SP <credentials>`, scheme without regard to case, exactly
/// one space, credentials byte-equal (a canonical encoding is unique).
fn oracle_scheme(value: &[u8], scheme: &[u8], credentials: &[u8]) -> bool {
    value.len() == scheme.len() + 1 + credentials.len()
        && value.len() <= MAX_CREDENTIALS_LEN
        && value[..scheme.len()].eq_ignore_ascii_case(scheme)
        && value[scheme.len()] == b' '
        && &value[scheme.len() + 1..] == credentials
}

/// Checks request-id validation against the documented charset, and the layer: a valid
/// incoming id is kept as it is, anything else is replaced by a fresh UUID v7; the handler and
/// the response see the same id.
///
/// # Panics
///
/// On a violated property.
pub fn check_request_id(value: &[u8]) {
    let oracle = (1..=128).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b));
    assert_eq!(
        is_valid_request_id(value),
        oracle,
        "validation of {}",
        shown(value)
    );
    let Ok(header) = HeaderValue::from_bytes(value) else {
        return;
    };
    let svc = SetRequestIdLayer::new().layer(service_fn(|req: Request<String>| {
        let id = req
            .try_context()
            .and_then(|cx| cx.request_id().cloned())
            .expect("the layer set an id");
        std::future::ready(Ok::<_, Infallible>(Response::new(id.as_str().to_owned())))
    }));
    let mut req = Request::new(String::new());
    req.headers_mut().insert("x-request-id", header);
    let res = ready_now(tower::ServiceExt::oneshot(svc, req)).unwrap_or_else(|e| match e {});
    let sent = res.headers()["x-request-id"].as_bytes().to_vec();
    assert_eq!(
        res.body().as_bytes(),
        &sent[..],
        "handler and response disagree"
    );
    if oracle {
        assert_eq!(sent, value, "a valid id was not kept");
    } else {
        assert!(
            is_valid_request_id(&sent),
            "fresh id {} is not valid",
            shown(&sent)
        );
        assert_eq!(sent.len(), 36, "fresh id is not a uuid: {}", shown(&sent));
        assert_eq!(
            sent[14],
            b'7',
            "fresh id is not a uuid v7: {}",
            shown(&sent)
        );
        assert_ne!(sent, value, "an invalid id was kept");
    }
}

/// A deadline format's documented grammar: the budget a header value parses to, if any.
type Oracle = fn(&[u8]) -> Option<Duration>;

/// Checks both deadline formats against the documented grammar, and that a parsed budget
/// survives `encode` then `parse` exactly.
///
/// # Panics
///
/// On a violated property.
pub fn check_deadline(value: &[u8]) {
    let formats: [(DeadlineFormat, &str, Oracle); 2] = [
        (DeadlineFormat::GrpcTimeout, "grpc-timeout", oracle_grpc),
        (DeadlineFormat::Millis, "millis", oracle_millis),
    ];
    for (format, name, oracle) in formats {
        let parsed = oracle(value);
        assert_eq!(format.parse(value), parsed, "{name} {}", shown(value));
        if let Some(budget) = parsed {
            let encoded = format.encode(budget);
            assert_eq!(
                format.parse(encoded.as_bytes()),
                Some(budget),
                "{format:?} round trip of {}",
                shown(value)
            );
        }
    }
}

/// gRPC: 1 to 8 ASCII digits, then one of `H M S m u n`.
fn oracle_grpc(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    match unit {
        b'H' => Some(Duration::from_secs(n * 3600)),
        b'M' => Some(Duration::from_secs(n * 60)),
        b'S' => Some(Duration::from_secs(n)),
        b'm' => Some(Duration::from_millis(n)),
        b'u' => Some(Duration::from_micros(n)),
        b'n' => Some(Duration::from_nanos(n)),
        _ => None,
    }
}

/// Milliseconds: 1 to 12 ASCII digits and nothing else.
fn oracle_millis(value: &[u8]) -> Option<Duration> {
    if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    Some(Duration::from_millis(n))
}

/// Checks log-value escaping: the output is one line with no control character, no
/// bidirectional or line-breaking character, and it decodes back to the input exactly.
///
/// # Panics
///
/// On a violated property.
pub fn check_escape(value: &[u8]) {
    let out = escape(value).to_string();
    for c in out.chars() {
        assert!(
            !c.is_control() && !is_hostile(c),
            "{c:?} survived escaping in {out:?}"
        );
    }
    assert_eq!(
        unescape(&out).as_deref(),
        Some(value),
        "{out:?} does not decode back"
    );
}

/// Characters that reorder or break a displayed line (from the escape docs).
const fn is_hostile(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// The inverse of `escape`: `\\ \" \n \r \t \xNN \u{N..}`; anything else is literal.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next()? {
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
            }
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let c = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Splits fuzz input into header values on NUL (which no header value may contain), at most
/// three of them.
pub fn split_values(data: &[u8]) -> Vec<&[u8]> {
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0).take(3).collect()
}
