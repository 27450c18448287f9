//! Tests for the auth layers: hostile-input tables, byte-identical failures, requirements,
//! secrecy, conformance, and a timing check of the credential comparison.

use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use middleware_core::{
    Context, Error, HookLayer, Renderer, RequestExt, RequestId, testing::Conformance,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_layer::Layer;
use tower_service::Service;

use super::*;

// ----- static bearer ---------------------------------------------------------------------------

#[tokio::test]
async fn valid_bearer_reaches_the_handler_with_its_principal() {
    let recorder = Recorder::default();
    let layer = bearer_layer();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let answer = send(
            &layer,
            &recorder,
            request(&[("authorization", format!("{scheme} {TOKEN}").as_bytes())]),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "scheme {scheme:?}");
        assert_eq!(answer.body, "ok");
    }
    let seen = recorder.seen();
    assert_eq!(seen.len(), 4);
    for call in seen {
        let principal = call.principal.expect("principal in the context");
        assert_eq!(principal.id(), "ci");
        assert!(principal.has_role("deploy"));
        assert!(
            call.sensitive,
            "the authorization header is not marked sensitive"
        );
    }
}

#[allow(clippy::too_many_lines)] // a table of hostile inputs, one case per entry
async fn bearer_hostile_table() {
    let long = format!("Bearer {}", "a".repeat(9000));
    let one_byte_too_long = format!("Bearer {}", "a".repeat(MAX + 1 - "Bearer ".len()));
    let cases: Vec<Case<'_>> = vec![
        ("missing", vec![]),
        ("empty", vec![("authorization", b"".to_vec())]),
        ("scheme only", vec![("authorization", b"Bearer".to_vec())]),
        (
            "scheme and space",
            vec![("authorization", b"Bearer ".to_vec())],
        ),
        (
            "two spaces",
            vec![("authorization", format!("Bearer  {TOKEN}").into())],
        ),
        (
            "tab",
            vec![("authorization", format!("Bearer\t{TOKEN}").into())],
        ),
        (
            "trailing space",
            vec![("authorization", format!("Bearer {TOKEN} ").into())],
        ),
        (
            "leading space",
            vec![("authorization", format!(" Bearer {TOKEN}").into())],
        ),
        (
            "no space",
            vec![("authorization", format!("Bearer{TOKEN}").into())],
        ),
        (
            "prefix of the token",
            vec![("authorization", b"Bearer s3cr3".to_vec())],
        ),
        (
            "token plus a byte",
            vec![("authorization", format!("Bearer {TOKEN}x").into())],
        ),
        (
            "token plus padding",
            vec![("authorization", format!("Bearer {TOKEN}=").into())],
        ),
        (
            "other case",
            vec![("authorization", b"Bearer S3CR3T-T0KEN".to_vec())],
        ),
        (
            "padding only",
            vec![("authorization", b"Bearer ===".to_vec())],
        ),
        (
            "wrong scheme",
            vec![("authorization", format!("Basic {TOKEN}").into())],
        ),
        (
            "scheme prefix",
            vec![("authorization", format!("Bear {TOKEN}").into())],
        ),
        (
            "two credentials",
            vec![(
                "authorization",
                format!("Bearer {TOKEN}, Bearer {TOKEN}").into(),
            )],
        ),
        (
            "auth params",
            vec![("authorization", format!("Bearer token=\"{TOKEN}\"").into())],
        ),
        (
            "non-utf8",
            vec![("authorization", b"Bearer \xff\xfe\x80".to_vec())],
        ),
        (
            "non-utf8 scheme",
            vec![("authorization", format!("B\u{e9}arer {TOKEN}").into())],
        ),
        ("9 KiB", vec![("authorization", long.into_bytes())]),
        (
            "just over 8 KiB",
            vec![("authorization", one_byte_too_long.into_bytes())],
        ),
        (
            "two headers, both valid",
            vec![
                ("authorization", format!("Bearer {TOKEN}").into()),
                ("authorization", format!("Bearer {TOKEN}").into()),
            ],
        ),
        (
            "two headers, one valid",
            vec![
                ("authorization", b"Bearer nope".to_vec()),
                ("authorization", format!("Bearer {TOKEN}").into()),
            ],
        ),
        (
            "api key header instead",
            vec![("x-api-key", TOKEN.as_bytes().to_vec())],
        ),
    ];
    assert_all_rejected(&bearer_layer(), &cases, "Bearer realm=\"restricted\"").await;
}

#[tokio::test]
async fn bearer_failures_are_identical_401s_that_never_reach_the_handler() {
    bearer_hostile_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_failures_are_identical_401s_on_a_multi_thread_runtime() {
    bearer_hostile_table().await;
}

#[tokio::test]
async fn several_tokens_each_grant_their_principal() {
    let layer = bearer_layer().with_token("other-token", Principal::new("bot"));
    let recorder = Recorder::default();
    for (token, id) in [(TOKEN, "ci"), ("other-token", "bot")] {
        let answer = send(
            &layer,
            &recorder,
            request(&[("authorization", format!("Bearer {token}").as_bytes())]),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            recorder
                .seen()
                .last()
                .unwrap()
                .principal
                .as_ref()
                .unwrap()
                .id(),
            id
        );
    }
}

#[tokio::test]
async fn header_of_8_kib_is_read_and_one_byte_more_is_not() {
    let recorder = Recorder::default();
    for (len, status) in [(MAX, StatusCode::OK), (MAX + 1, StatusCode::UNAUTHORIZED)] {
        // The configured token is right; only the header's length differs.
        let token = "t".repeat(len - "Bearer ".len());
        let layer = AuthLayer::bearer(&token, Principal::new("long"));
        let answer = send(
            &layer,
            &recorder,
            request(&[("authorization", format!("Bearer {token}").as_bytes())]),
        )
        .await;
        assert_eq!(answer.status, status, "header of {len} bytes");
    }
    assert_eq!(recorder.calls(), 1);
}

// ----- static basic ----------------------------------------------------------------------------

#[tokio::test]
async fn basic_splits_on_the_first_colon_and_ignores_scheme_case() {
    let layer = AuthLayer::basic("ada", "pa:ss:word").with_user("bob", "");
    let recorder = Recorder::default();
    for value in [
        basic("Basic", "ada", "pa:ss:word"),
        basic("basic", "ada", "pa:ss:word"),
        basic("BASIC", "bob", ""),
    ] {
        let answer = send(
            &layer,
            &recorder,
            request(&[("authorization", value.as_bytes())]),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{value}");
    }
    let ids: Vec<_> = recorder
        .seen()
        .into_iter()
        .map(|call| call.principal.unwrap().id().to_owned())
        .collect();
    assert_eq!(ids, ["ada", "ada", "bob"]);
    assert!(recorder.seen().iter().all(|call| call.sensitive));
}

#[allow(clippy::too_many_lines)] // a table of hostile inputs, one case per entry
async fn basic_hostile_table() {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let good = b64(b"ada:pa:ss:word");
    let cases: Vec<Case<'_>> = vec![
        ("missing", vec![]),
        ("empty", vec![("authorization", b"".to_vec())]),
        ("scheme only", vec![("authorization", b"Basic".to_vec())]),
        (
            "scheme and space",
            vec![("authorization", b"Basic ".to_vec())],
        ),
        (
            "two spaces",
            vec![("authorization", format!("Basic  {good}").into())],
        ),
        (
            "trailing space",
            vec![("authorization", format!("Basic {good} ").into())],
        ),
        (
            "tab",
            vec![("authorization", format!("Basic\t{good}").into())],
        ),
        (
            "not base64",
            vec![("authorization", b"Basic !!!!****".to_vec())],
        ),
        (
            "base64url alphabet",
            vec![(
                "authorization",
                format!(
                    "Basic {}",
                    b64(b"ada:\xfb\xff").replace('+', "-").replace('/', "_")
                )
                .into(),
            )],
        ),
        (
            "missing padding",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada:pw1").trim_end_matches('=')).into(),
            )],
        ),
        (
            "extra padding",
            vec![("authorization", format!("Basic {good}==").into())],
        ),
        (
            "truncated",
            vec![(
                "authorization",
                format!("Basic {}", &good[..good.len() - 2]).into(),
            )],
        ),
        (
            "no colon",
            vec![("authorization", format!("Basic {}", b64(b"adapa")).into())],
        ),
        (
            "only a colon",
            vec![("authorization", format!("Basic {}", b64(b":")).into())],
        ),
        (
            "empty payload",
            vec![("authorization", b"Basic =".to_vec())],
        ),
        (
            "non-utf8 payload",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada:pa:ss:wor\xff")).into(),
            )],
        ),
        (
            "non-utf8 user",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"\xc3\x28:pa:ss:word")).into(),
            )],
        ),
        (
            "wrong password",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada:pa:ss:wore")).into(),
            )],
        ),
        (
            "password prefix",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada:pa:ss")).into(),
            )],
        ),
        (
            "password plus a byte",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada:pa:ss:words")).into(),
            )],
        ),
        (
            "wrong user",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"eve:pa:ss:word")).into(),
            )],
        ),
        (
            "user case",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"Ada:pa:ss:word")).into(),
            )],
        ),
        (
            "padding stripped",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada:pa:ss:word").replace('=', "")).into(),
            )],
        ),
        (
            "nul in payload",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada\0:pa:ss:word")).into(),
            )],
        ),
        (
            "bearer scheme",
            vec![("authorization", format!("Bearer {good}").into())],
        ),
        (
            "9 KiB",
            vec![(
                "authorization",
                format!("Basic {}", b64(&[b'a'; 7000])).into(),
            )],
        ),
        (
            "two headers, both valid",
            vec![
                ("authorization", format!("Basic {good}").into()),
                ("authorization", format!("Basic {good}").into()),
            ],
        ),
    ];
    assert_all_rejected(
        &AuthLayer::basic("ada", "pa:ss:word"),
        &cases,
        "Basic realm=\"restricted\", charset=\"UTF-8\"",
    )
    .await;
}

#[tokio::test]
async fn basic_failures_are_identical_401s_that_never_reach_the_handler() {
    basic_hostile_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_failures_are_identical_401s_on_a_multi_thread_runtime() {
    basic_hostile_table().await;
}

// ----- static api key --------------------------------------------------------------------------

#[tokio::test]
async fn api_key_is_read_from_the_configured_header_and_marked_sensitive() {
    let layer = api_key_layer();
    let recorder = Recorder::default();
    let answer = send(
        &layer,
        &recorder,
        request(&[("x-api-key", TOKEN.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let call = recorder.seen().pop().unwrap();
    assert_eq!(call.principal.unwrap().id(), "partner");
    assert!(call.api_key_sensitive);
}

async fn api_key_hostile_table() {
    let cases: Vec<Case<'_>> = vec![
        ("missing", vec![]),
        ("empty", vec![("x-api-key", b"".to_vec())]),
        (
            "wrong",
            vec![("x-api-key", b"s3cr3t-t0ken-but-no".to_vec())],
        ),
        ("prefix", vec![("x-api-key", b"s3cr3t".to_vec())]),
        (
            "with a scheme",
            vec![("x-api-key", format!("Bearer {TOKEN}").into())],
        ),
        (
            "trailing space",
            vec![("x-api-key", format!("{TOKEN} ").into())],
        ),
        (
            "inner tab",
            vec![("x-api-key", format!("{TOKEN}\tx").into())],
        ),
        (
            "non-ascii",
            vec![("x-api-key", format!("{TOKEN}\u{e9}").into())],
        ),
        ("9 KiB", vec![("x-api-key", "k".repeat(9000).into())]),
        (
            "two headers",
            vec![("x-api-key", TOKEN.into()), ("x-api-key", TOKEN.into())],
        ),
        (
            "authorization instead",
            vec![("authorization", format!("Bearer {TOKEN}").into())],
        ),
        ("other header", vec![("x-api-keys", TOKEN.into())]),
    ];
    assert_all_rejected(
        &api_key_layer(),
        &cases,
        "ApiKey realm=\"restricted\", header=\"x-api-key\"",
    )
    .await;
}

#[tokio::test]
async fn api_key_failures_are_identical_401s_that_never_reach_the_handler() {
    api_key_hostile_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_failures_are_identical_401s_on_a_multi_thread_runtime() {
    api_key_hostile_table().await;
}

// ----- requirements ----------------------------------------------------------------------------

async fn missing_role_or_scope_is_403() {
    let header = format!("Bearer {TOKEN}");
    let principal = Principal::new("ci").with_role("deploy").with_scope("read");
    let cases = [
        (
            AuthLayer::bearer(TOKEN, principal.clone())
                .require_role("deploy")
                .require_scope("read"),
            StatusCode::OK,
        ),
        (
            AuthLayer::bearer(TOKEN, principal.clone()).require_role("admin"),
            StatusCode::FORBIDDEN,
        ),
        (
            AuthLayer::bearer(TOKEN, principal.clone())
                .require_role("deploy")
                .require_role("admin"),
            StatusCode::FORBIDDEN,
        ),
        (
            AuthLayer::bearer(TOKEN, principal.clone()).require_scope("write"),
            StatusCode::FORBIDDEN,
        ),
        (
            AuthLayer::bearer(TOKEN, principal.clone()).require_role("Deploy"),
            StatusCode::FORBIDDEN,
        ),
        (
            AuthLayer::bearer(TOKEN, principal).require_role("read"),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (i, (layer, status)) in cases.into_iter().enumerate() {
        let recorder = Recorder::default();
        let answer = send(
            &layer,
            &recorder,
            request(&[("authorization", header.as_bytes())]),
        )
        .await;
        assert_eq!(answer.status, status, "case {i}");
        let called = usize::from(status == StatusCode::OK);
        assert_eq!(
            recorder.calls(),
            called,
            "case {i}: the handler ran for a forbidden request"
        );
        if status == StatusCode::FORBIDDEN {
            assert!(answer.headers.get(header::WWW_AUTHENTICATE).is_none());
            assert_eq!(
                answer.body,
                r#"{"type":"about:blank","title":"Forbidden","status":403}"#
            );
        }
    }
}

#[tokio::test]
async fn missing_role_or_scope_is_forbidden() {
    missing_role_or_scope_is_403().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_role_or_scope_is_forbidden_on_a_multi_thread_runtime() {
    missing_role_or_scope_is_403().await;
}

// ----- validators ------------------------------------------------------------------------------

/// A validator that takes a while (paused clock) and counts its calls.
fn slow_validator(
    calls: Arc<AtomicUsize>,
    delay: Option<Duration>,
) -> impl Validator<Future = impl Future<Output = Result<Principal, Rejection>> + Send>
+ Send
+ Sync
+ 'static {
    move |credentials: Credentials| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            // Paused-clock tests wait on a timer; multi-thread ones just yield (no real sleeps).
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => tokio::task::yield_now().await,
            }
            match credentials {
                Credentials::Basic { username, password }
                    if username == "ada" && password.matches("pa:ss") =>
                {
                    Ok(Principal::new(username).with_role("admin"))
                }
                Credentials::Bearer { token } if token.matches(TOKEN) => Ok(Principal::new("ci")),
                Credentials::ApiKey { key } if key.matches(TOKEN) => Ok(Principal::new("partner")),
                _ => Err(Rejection::new()),
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn async_validator_grants_after_its_future_completes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let recorder = Recorder::default();
    let cases = [
        (
            Scheme::Basic,
            "authorization",
            basic("Basic", "ada", "pa:ss"),
            "ada",
        ),
        (
            Scheme::Bearer,
            "authorization",
            format!("bearer {TOKEN}"),
            "ci",
        ),
        (
            Scheme::ApiKey(HeaderName::from_static("x-api-key")),
            "x-api-key",
            TOKEN.to_owned(),
            "partner",
        ),
    ];
    for (scheme, name, value, id) in cases {
        let layer = AuthLayer::validator(
            scheme,
            slow_validator(Arc::clone(&calls), Some(Duration::from_secs(2))),
        );
        let started = tokio::time::Instant::now();
        let answer = send(&layer, &recorder, request(&[(name, value.as_bytes())])).await;
        assert_eq!(answer.status, StatusCode::OK, "{id}");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        let call = recorder.seen().pop().unwrap();
        assert_eq!(call.principal.unwrap().id(), id);
        assert!(call.sensitive || call.api_key_sensitive);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

async fn validator_rejections_match_static_rejections(delay: Option<Duration>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = AuthLayer::validator(Scheme::Basic, slow_validator(Arc::clone(&calls), delay));
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    // Well-formed but wrong: the validator runs and rejects.
    let wrong: Vec<Case<'_>> = vec![
        (
            "wrong password",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada:pa:sss")).into(),
            )],
        ),
        (
            "wrong user",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"bob:pa:ss")).into(),
            )],
        ),
        (
            "empty user and password",
            vec![("authorization", format!("Basic {}", b64(b":")).into())],
        ),
    ];
    assert_all_rejected(
        &layer,
        &wrong,
        "Basic realm=\"restricted\", charset=\"UTF-8\"",
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), wrong.len());
    // Malformed: rejected before the validator is asked.
    let malformed: Vec<Case<'_>> = vec![
        (
            "no colon",
            vec![("authorization", format!("Basic {}", b64(b"adapass")).into())],
        ),
        ("bad base64", vec![("authorization", b"Basic ***".to_vec())]),
        (
            "non-utf8",
            vec![(
                "authorization",
                format!("Basic {}", b64(b"ada:\xff")).into(),
            )],
        ),
        (
            "bearer",
            vec![("authorization", format!("Bearer {TOKEN}").into())],
        ),
    ];
    assert_all_rejected(
        &layer,
        &malformed,
        "Basic realm=\"restricted\", charset=\"UTF-8\"",
    )
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        wrong.len(),
        "the validator saw malformed credentials"
    );
}

#[tokio::test(start_paused = true)]
async fn validator_rejections_are_identical_401s() {
    validator_rejections_match_static_rejections(Some(Duration::from_secs(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_rejections_are_identical_401s_on_a_multi_thread_runtime() {
    validator_rejections_match_static_rejections(None).await;
}

#[tokio::test(start_paused = true)]
async fn validator_principal_without_the_required_role_is_forbidden() {
    let calls = Arc::new(AtomicUsize::new(0));
    let recorder = Recorder::default();
    let layer = AuthLayer::validator(
        Scheme::Basic,
        slow_validator(calls, Some(Duration::from_secs(2))),
    )
    .require_role("root");
    let answer = send(
        &layer,
        &recorder,
        request(&[("authorization", basic("Basic", "ada", "pa:ss").as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_pending_validation_never_calls_the_handler() {
    let recorder = Recorder::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = AuthLayer::validator(
        Scheme::Bearer,
        slow_validator(calls, Some(Duration::from_secs(2))),
    );
    let svc = layer.layer(recorder.clone());
    let req = request(&[("authorization", format!("Bearer {TOKEN}").as_bytes())]);
    let outcome = tokio::time::timeout(Duration::from_secs(1), svc.oneshot(req)).await;
    assert!(
        outcome.is_err(),
        "the validation should still be pending after 1s"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(recorder.calls(), 0);
}

// ----- error model, secrecy, conformance -------------------------------------------------------

#[tokio::test]
async fn rejections_use_the_installed_renderer_and_request_id() {
    let recorder = Recorder::default();
    let svc = ServiceBuilder::new()
        .layer(HookLayer::new(Renderer::new(
            |err: &Error, cx: &Context| {
                let id = cx.request_id().map_or("-", RequestId::as_str);
                let mut res = Response::new(Bytes::from(format!("denied {id}")));
                *res.status_mut() = err.status();
                for (name, value) in err.headers() {
                    res.headers_mut().append(name, value.clone());
                }
                res
            },
        )))
        .layer(bearer_layer())
        .service(recorder.clone());
    let mut req = request(&[("authorization", b"Bearer wrong")]);
    req.context()
        .set_request_id(RequestId::try_from("req-7").unwrap())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"restricted\""
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "denied req-7");
}

#[tokio::test]
async fn realm_is_configurable_and_escaped() {
    let layer = bearer_layer().with_realm(r#"the "inner" \ sanctum"#);
    let answer = send(&layer, &Recorder::default(), request(&[])).await;
    assert_eq!(
        answer.headers[header::WWW_AUTHENTICATE],
        r#"Bearer realm="the \"inner\" \\ sanctum""#
    );
}

#[test]
fn debug_output_never_shows_a_secret() {
    let layer = bearer_layer().with_token("second-secret-token", Principal::new("bot"));
    let basic = AuthLayer::basic("ada", "basic-secret-password");
    let api_key = api_key_layer();
    let service = layer.layer(Recorder::default());
    let credentials = [
        Credentials::Basic {
            username: "ada".into(),
            password: Secret::new("basic-secret-password"),
        },
        Credentials::Bearer {
            token: Secret::new(TOKEN),
        },
        Credentials::ApiKey {
            key: Secret::new(TOKEN),
        },
    ];
    let outputs = [
        format!("{layer:?}"),
        format!("{layer:#?}"),
        format!("{basic:?}"),
        format!("{api_key:?}"),
        format!("{service:?}"),
        format!("{credentials:?}"),
        format!("{:?}", Secret::new(TOKEN)),
        format!("{:?}", Basic::new("ada", "basic-secret-password")),
        format!("{:?}", Bearer::new(TOKEN, Principal::new("ci"))),
        format!(
            "{:?}",
            Custom::new(Scheme::Bearer, slow_validator(Arc::default(), None))
        ),
    ];
    for output in &outputs {
        for secret in [
            TOKEN,
            "second-secret-token",
            "basic-secret-password",
            "s3cr3t",
        ] {
            assert!(!output.contains(secret), "{output} shows {secret}");
        }
    }
    assert!(outputs[5].contains("ada"), "{}", outputs[5]);
    assert!(outputs[5].contains("[redacted]"), "{}", outputs[5]);
    assert!(outputs[3].contains("x-api-key"), "{}", outputs[3]);
}

#[test]
fn secret_matches_only_the_same_bytes() {
    let secret = Secret::new("abc");
    assert!(secret.matches("abc"));
    assert!(secret.matches(b"abc"));
    for other in ["", "ab", "abcd", "abC", "xbc"] {
        assert!(!secret.matches(other), "{other}");
    }
    assert_eq!(secret.expose(), "abc");
}

/// Whether `$t: PartialEq`, decided at compile time by method resolution (autoref
/// specialization): the by-value candidate [`ViaEq`] applies only when the bound holds.
macro_rules! implements_eq {
    ($t:ty) => {
        (&EqProbe::<$t>(std::marker::PhantomData)).has_eq()
    };
}

struct EqProbe<T>(std::marker::PhantomData<T>);

trait ViaEq {
    fn has_eq(&self) -> bool {
        true
    }
}

impl<T: PartialEq> ViaEq for EqProbe<T> {}

trait ViaAny {
    fn has_eq(&self) -> bool {
        false
    }
}

impl<T> ViaAny for &EqProbe<T> {}

#[test]
fn secrets_and_credentials_cannot_be_compared_in_variable_time() {
    assert!(
        !implements_eq!(Secret),
        "`Secret == Secret` is variable time"
    );
    assert!(
        !implements_eq!(Credentials),
        "`Credentials ==` is variable time"
    );
    // The probe itself tells the two cases apart.
    assert!(implements_eq!(Principal));
    assert!(implements_eq!(String));
}

#[tokio::test]
async fn every_layer_passes_the_conformance_kit() {
    Conformance::new(bearer_layer())
        .with_request(|| request(&[("authorization", format!("Bearer {TOKEN}").as_bytes())]))
        .run()
        .await;
    Conformance::new(AuthLayer::basic("ada", "pa:ss"))
        .with_request(|| request(&[("authorization", basic("Basic", "ada", "pa:ss").as_bytes())]))
        .run()
        .await;
    Conformance::new(api_key_layer())
        .with_request(|| request(&[("x-api-key", TOKEN.as_bytes())]))
        .run()
        .await;
    Conformance::new(AuthLayer::validator(
        Scheme::Bearer,
        |credentials: Credentials| async move {
            match credentials {
                Credentials::Bearer { token } if token.matches(TOKEN) => Ok(Principal::new("ci")),
                _ => Err(Rejection::new()),
            }
        },
    ))
    .with_request(|| request(&[("authorization", format!("Bearer {TOKEN}").as_bytes())]))
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_kit_passes_on_a_multi_thread_runtime() {
    Conformance::new(bearer_layer().require_role("deploy"))
        .with_request(|| request(&[("authorization", format!("Bearer {TOKEN}").as_bytes())]))
        .run()
        .await;
}

// ----- credential headers stay out of logs ------------------------------------------------------

/// Sends `req` through `layer` and returns the handle an access log outside the auth layer
/// holds: taken before the auth layer ran.
async fn outer_handle_after<A: Authenticate>(
    layer: &AuthLayer<A>,
    mut req: Request<String>,
) -> (Context, StatusCode) {
    let outer = req.context().clone();
    let answer = send(layer, &Recorder::default(), req).await;
    (outer, answer.status)
}

/// Valid, invalid and malformed values for an API key header `name`.
fn api_key_values(name: &'static str) -> Vec<Case<'static>> {
    vec![
        ("valid", vec![(name, TOKEN.into())]),
        ("wrong", vec![(name, b"not-the-key".to_vec())]),
        (
            "with a scheme",
            vec![(name, format!("Bearer {TOKEN}").into())],
        ),
        ("empty", vec![(name, Vec::new())]),
        ("non-ascii", vec![(name, format!("{TOKEN}\u{e9}").into())]),
        ("9 KiB", vec![(name, "k".repeat(9000).into())]),
        (
            "two headers",
            vec![(name, TOKEN.into()), (name, TOKEN.into())],
        ),
    ]
}

#[tokio::test]
async fn api_key_header_is_declared_sensitive_for_valid_invalid_and_malformed_values() {
    let name = HeaderName::from_static("x-auth-token");
    let layer = AuthLayer::api_key(name.clone(), TOKEN, Principal::new("partner"));
    for (case, headers) in api_key_values("x-auth-token") {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let (outer, status) = outer_handle_after(&layer, request(&headers)).await;
        let expected = if case == "valid" {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, expected, "{case}");
        assert!(outer.is_sensitive_header(&name), "{case}: not declared");
        assert!(
            !outer.is_sensitive_header(&header::AUTHORIZATION),
            "{case}: declared a header it does not read"
        );
    }
}

#[tokio::test]
async fn validator_api_key_header_is_declared_sensitive_on_every_path() {
    let name = HeaderName::from_static("api-key");
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = AuthLayer::validator(
        Scheme::ApiKey(name.clone()),
        slow_validator(Arc::clone(&calls), None),
    );
    for (case, headers) in api_key_values("api-key") {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let (outer, _) = outer_handle_after(&layer, request(&headers)).await;
        assert!(outer.is_sensitive_header(&name), "{case}: not declared");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "valid and wrong reach the validator"
    );
}

#[tokio::test]
async fn api_key_accepted_without_a_context_is_declared_on_the_context_it_gets() {
    let recorder = Recorder::default();
    let answer = send(
        &api_key_layer(),
        &recorder,
        request(&[("x-api-key", TOKEN.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let call = recorder.seen().pop().unwrap();
    assert!(call.api_key_declared);
    assert!(call.api_key_sensitive);
}

#[tokio::test]
async fn authorization_is_flagged_but_not_declared_since_every_logger_redacts_it() {
    let bearer = format!("Bearer {TOKEN}");
    let recorder = Recorder::default();
    let answer = send(
        &bearer_layer(),
        &recorder,
        request(&[("authorization", bearer.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(recorder.seen().pop().unwrap().sensitive);
    for value in [bearer.as_str(), "Bearer wrong", TOKEN, "Basic Og=="] {
        let req = request(&[("authorization", value.as_bytes())]);
        let (outer, _) = outer_handle_after(&bearer_layer(), req).await;
        assert!(
            !outer.is_sensitive_header(&header::AUTHORIZATION),
            "{value}: declared (an allocation per request for nothing)"
        );
    }
}

// ----- per-layer time --------------------------------------------------------------------------

fn mark_names(cx: &Context) -> Vec<String> {
    cx.marks().iter().map(|m| m.name().to_owned()).collect()
}

#[tokio::test]
async fn auth_reports_its_own_time_once_when_a_timing_layer_asks() {
    let good = format!("Bearer {TOKEN}");
    let layers = [
        bearer_layer(),
        bearer_layer().require_role("root"), // 403
    ];
    for layer in &layers {
        for value in [good.as_str(), "Bearer wrong", "garbage"] {
            let mut req = request(&[("authorization", value.as_bytes())]);
            req.context().request_layer_times();
            let (outer, status) = outer_handle_after(layer, req).await;
            assert_eq!(mark_names(&outer), ["mw.auth"], "{value} ({status})");
        }
    }
    let validator = AuthLayer::validator(Scheme::Bearer, slow_validator(Arc::default(), None));
    let mut req = request(&[("authorization", good.as_bytes())]);
    req.context().request_layer_times();
    let (outer, status) = outer_handle_after(&validator, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mark_names(&outer), ["mw.auth"]);
}

#[tokio::test]
async fn auth_reports_no_time_unless_asked() {
    let req = request(&[("authorization", format!("Bearer {TOKEN}").as_bytes())]);
    let (outer, status) = outer_handle_after(&bearer_layer(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(outer.marks().is_empty());
}

// ----- synchronous and allocation-free static checks -------------------------------------------

#[test]
fn static_checks_answer_in_call_without_allocating() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    headers.insert("x-api-key", HeaderValue::from_static(TOKEN));
    let mut extensions = http::Extensions::new();
    let bearer =
        Bearer::new(TOKEN, Principal::new("ci")).with_token("other", Principal::new("bot"));
    let api_key = ApiKey::new(
        HeaderName::from_static("x-api-key"),
        TOKEN,
        Principal::new("partner"),
    );
    let mut verdicts = Vec::with_capacity(3);
    let info = middleware_core::testing::measure(|| {
        verdicts.push(bearer.authenticate(headers.get(header::AUTHORIZATION), &mut extensions));
        verdicts.push(api_key.authenticate(headers.get("x-api-key"), &mut extensions));
    });
    assert_eq!(info.count_total, 0, "static checks allocated: {info:?}");
    assert!(
        verdicts
            .iter()
            .all(|v| matches!(v, authenticate::Verdict::Granted(_)))
    );

    let basic = Basic::new("ada", "pa:ss").with_user("bob", "x");
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&basic_value("ada", "pa:ss")).unwrap(),
    );
    let info = middleware_core::testing::measure(|| {
        verdicts.push(basic.authenticate(headers.get(header::AUTHORIZATION), &mut extensions));
    });
    assert_eq!(info.count_total, 0, "basic check allocated: {info:?}");
    assert!(matches!(verdicts.pop(), Some(authenticate::Verdict::Granted(p)) if p.id() == "ada"));
}

#[test]
fn static_checks_decide_in_call_and_complete_on_the_first_poll() {
    let recorder = Recorder::default();
    let mut svc = bearer_layer().layer(recorder.clone());
    let mut cx = TaskContext::from_waker(Waker::noop());

    let future = svc.call(request(&[("authorization", b"Bearer nope")]));
    match pin!(future).poll(&mut cx) {
        Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::UNAUTHORIZED),
        other => panic!("not ready on the first poll: {other:?}"),
    }
    assert_eq!(recorder.calls(), 0);

    let future = svc.call(request(&[(
        "authorization",
        format!("Bearer {TOKEN}").as_bytes(),
    )]));
    assert_eq!(recorder.calls(), 1, "the inner service is called in `call`");
    match pin!(future).poll(&mut cx) {
        Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::OK),
        other => panic!("not ready on the first poll: {other:?}"),
    }
}

// ----- property tests --------------------------------------------------------------------------

/// Polls a static-check service once: its futures never wait.
fn status_now<A: Authenticate>(
    layer: &AuthLayer<A>,
    name: &str,
    value: &[u8],
) -> Option<StatusCode> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut req = Request::new(String::new());
    req.headers_mut()
        .insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
    let mut svc = layer.layer(Recorder::default());
    let future = svc.call(req);
    let mut cx = TaskContext::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(Ok(res)) => Some(res.status()),
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => panic!("a static check did not answer on the first poll"),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_authorization_bytes_get_200_400_or_401(
        prefix in proptest::sample::select(vec!["", "Basic ", "Bearer ", "basic ", "bearer  ", "Basic\t"]),
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
    ) {
        let mut value = prefix.as_bytes().to_vec();
        value.extend_from_slice(&bytes);
        for status in [
            status_now(&bearer_layer(), "authorization", &value),
            status_now(&AuthLayer::basic("ada", "pa:ss"), "authorization", &value),
            status_now(&api_key_layer(), "x-api-key", &value),
        ]
        .into_iter()
        .flatten()
        {
            proptest::prop_assert!(
                matches!(status, StatusCode::OK | StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED),
                "{status}"
            );
        }
    }

    #[test]
    fn arbitrary_basic_payloads_pass_only_when_exact(
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
    ) {
        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&payload));
        let status = status_now(&AuthLayer::basic("ada", "pa:ss"), "authorization", value.as_bytes());
        let expected = if payload == b"ada:pa:ss" { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        proptest::prop_assert_eq!(status, Some(expected));
    }
}

#[test]
fn exact_credentials_pass_the_property_oracle() {
    let value = basic_value("ada", "pa:ss");
    assert_eq!(
        status_now(
            &AuthLayer::basic("ada", "pa:ss"),
            "authorization",
            value.as_bytes()
        ),
        Some(StatusCode::OK)
    );
}

// ----- timing ----------------------------------------------------------------------------------

/// dudect-style check: times the bearer check for a presented token that shares a long prefix
/// with the real one against one that differs in the first byte (same length), interleaved at
/// random, and computes Welch's t over the two samples after cropping outliers. |t| above 4.5
/// is dudect's evidence of a leak. The test runs several rounds and judges the median t, so a
/// burst of load from another process does not decide the outcome. A deliberately leaky
/// early-exit comparison is measured the same way, to show that the harness sees a leak.
#[test]
#[ignore = "timing check: run with --ignored --release, not a CI gate"]
#[allow(clippy::print_stdout)] // the check reports its statistic
fn comparison_time_does_not_depend_on_a_common_prefix() {
    const ROUNDS: usize = 9;
    const SAMPLES: usize = 40_000;
    let secret = "k".repeat(512);
    let mut near = secret.clone();
    near.replace_range(511.., "x");
    let mut far = secret.clone();
    far.replace_range(..1, "x");
    let presented = |class: bool| if class { near.as_str() } else { far.as_str() };

    let bearer = Bearer::new(&secret, Principal::new("ci"));
    let mut extensions = http::Extensions::new();
    let t = median_t(ROUNDS, || {
        welch_t(
            SAMPLES,
            |class| {
                let mut headers = HeaderMap::new();
                let value = format!("Bearer {}", presented(class));
                headers.insert(header::AUTHORIZATION, value.parse().unwrap());
                headers
            },
            |headers| {
                matches!(
                    bearer.authenticate(
                        std::hint::black_box(headers).get(header::AUTHORIZATION),
                        &mut extensions,
                    ),
                    authenticate::Verdict::Granted(_)
                )
            },
        )
    });
    let leaky = median_t(ROUNDS, || {
        welch_t(
            SAMPLES,
            |class| presented(class).as_bytes().to_vec(),
            |bytes| leaky_eq(std::hint::black_box(bytes), secret.as_bytes()),
        )
    });
    println!(
        "median Welch t over {ROUNDS} rounds of {SAMPLES}: constant-time check {t:.2}, \
         leaky reference {leaky:.2} (|t| > 4.5 suggests a leak)"
    );
    assert!(
        leaky.abs() > 4.5,
        "the harness cannot see an obvious leak: t = {leaky:.2}"
    );
    assert!(
        t.abs() < 4.5,
        "the credential comparison leaks timing: t = {t:.2}"
    );
}

/// Byte-by-byte comparison with early exit: the leak the real check must not have.
fn leaky_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return false;
        }
    }
    true
}

fn median_t(rounds: usize, mut round: impl FnMut() -> f64) -> f64 {
    let mut ts: Vec<f64> = (0..rounds).map(|_| round()).collect();
    ts.sort_by(f64::total_cmp);
    ts[rounds / 2]
}

/// Welch's t between the times of `run` on inputs of class `true` and `false`.
///
/// As in dudect, the classes are drawn at random and every input is prepared before timing
/// starts, in its own allocation, so memory layout and allocation do not differ by class.
#[allow(clippy::cast_precision_loss)] // nanosecond timings and sample counts fit f64 well enough
fn welch_t<I>(samples: usize, prepare: impl Fn(bool) -> I, mut run: impl FnMut(&I) -> bool) -> f64 {
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    let inputs: Vec<(bool, I)> = (0..samples)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let class = rng & 1 == 1;
            (class, prepare(class))
        })
        .collect();
    let mut times: [Vec<f64>; 2] = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
    for (class, input) in &inputs {
        let start = std::time::Instant::now();
        let granted = run(input);
        let elapsed = start.elapsed().as_nanos() as f64;
        assert!(!granted);
        times[usize::from(*class)].push(elapsed);
    }
    let stats = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t.truncate(t.len() * 9 / 10); // crop the slowest 10%: interrupts, not the code
        let n = t.len() as f64;
        let mean = t.iter().sum::<f64>() / n;
        let var = t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var, n)
    });
    let [(m0, v0, n0), (m1, v1, n1)] = stats;
    (m0 - m1) / (v0 / n0 + v1 / n1).sqrt()
}

// ----- jwt (feature `jwt`) --------------------------------------------------------------------

#[cfg(feature = "jwt")]
mod jwt;

// ----- fixtures --------------------------------------------------------------------------------

const TOKEN: &str = "s3cr3t-t0ken";
const MAX: usize = 8 * 1024;

fn bearer_layer() -> AuthLayer<Bearer> {
    AuthLayer::bearer(TOKEN, Principal::new("ci").with_role("deploy"))
}

fn api_key_layer() -> AuthLayer<ApiKey> {
    AuthLayer::api_key(
        HeaderName::from_static("x-api-key"),
        TOKEN,
        Principal::new("partner"),
    )
}

fn basic_value(user: &str, password: &str) -> String {
    basic("Basic", user, password)
}

fn basic(scheme: &str, user: &str, password: &str) -> String {
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("{scheme} {payload}")
}

fn request(headers: &[(&str, &[u8])]) -> Request<String> {
    let mut req = Request::new(String::new());
    for (name, value) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    req
}

/// A table row: a case name and the headers to send.
type Case<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>);

/// A response reduced to what a client can observe.
#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn send<A: Authenticate>(
    layer: &AuthLayer<A>,
    recorder: &Recorder,
    req: Request<String>,
) -> Answer {
    let res = layer.layer(recorder.clone()).oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Sends every case and checks each answer is the same `401` with `challenge`, byte for byte,
/// and that the handler never ran.
async fn assert_all_rejected<A: Authenticate>(
    layer: &AuthLayer<A>,
    cases: &[Case<'_>],
    challenge: &str,
) {
    let recorder = Recorder::default();
    let reference = send(layer, &recorder, request(&[])).await;
    assert_eq!(reference.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reference.headers[header::WWW_AUTHENTICATE], challenge);
    assert_eq!(
        reference.body,
        r#"{"type":"about:blank","title":"Unauthorized","status":401}"#
    );
    for (name, headers) in cases {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let answer = send(layer, &recorder, request(&headers)).await;
        assert_eq!(answer, reference, "case {name:?} answered differently");
    }
    assert_eq!(
        recorder.calls(),
        0,
        "the handler ran for a rejected request"
    );
}

/// What the handler saw on one call.
#[derive(Clone, Debug)]
struct Seen {
    principal: Option<Principal>,
    #[cfg(feature = "jwt")]
    claims: Option<Claims>,
    sensitive: bool,
    api_key_sensitive: bool,
    api_key_declared: bool,
}

/// The inner service: answers `200 ok` and records what it saw.
#[derive(Clone, Debug, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Service<Request<String>> for Recorder {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        let sensitive = |name: &str| {
            req.headers()
                .get(name)
                .is_some_and(HeaderValue::is_sensitive)
        };
        self.seen.lock().unwrap().push(Seen {
            principal: req
                .try_context()
                .and_then(|cx| cx.get::<Principal>())
                .cloned(),
            #[cfg(feature = "jwt")]
            claims: req.try_context().and_then(|cx| cx.get::<Claims>()).cloned(),
            sensitive: sensitive("authorization"),
            api_key_sensitive: sensitive("x-api-key"),
            api_key_declared: req
                .try_context()
                .is_some_and(|cx| cx.is_sensitive_header(&HeaderName::from_static("x-api-key"))),
        });
        std::future::ready(Ok(Response::new(String::from("ok"))))
    }
}
