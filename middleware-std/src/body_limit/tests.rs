use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use middleware_core::{RequestExt, testing::Conformance};
use proptest::prelude::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use super::*;
use crate::BoxError;

#[tokio::test]
async fn declared_length_over_the_limit_is_413_before_the_handler_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let req = Request::builder()
        .header(header::CONTENT_LENGTH, "11")
        .body(Chunks::new(&[b"hello world"]))
        .unwrap();
    let res = echo(10, Arc::clone(&calls)).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()[header::CONNECTION], "close");
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn declared_length_at_the_limit_passes() {
    let req = Request::builder()
        .header(header::CONTENT_LENGTH, "10")
        .body(Chunks::new(&[b"hello", b"world"]))
        .unwrap();
    let res = echo(10, counter()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "helloworld");
}

#[tokio::test]
async fn content_length_too_long_for_a_u64_is_413() {
    for value in [
        "18446744073709551616",
        "99999999999999999999999999999999999999",
    ] {
        let req = Request::builder()
            .header(header::CONTENT_LENGTH, value)
            .body(Chunks::new(&[b"x"]))
            .unwrap();
        let res = echo(u64::MAX, counter()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{value}");
    }
}

#[tokio::test]
async fn any_content_length_value_over_the_limit_is_413() {
    let mut req = Request::new(Chunks::new(&[b"abc"]));
    req.headers_mut()
        .append(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    req.headers_mut()
        .append(header::CONTENT_LENGTH, HeaderValue::from_static("4000"));
    let res = echo(100, counter()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn malformed_content_length_leaves_the_streaming_limit_in_charge() {
    for value in ["", "-1", "+5", "1e9", "0x10", "5, 5", " 7 x"] {
        let mut req = Request::new(Chunks::new(&[b"abc"]));
        req.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from_str(value).unwrap(),
        );
        let res = echo(5, counter()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{value:?}");
        let mut req = Request::new(Chunks::new(&[b"abc", b"def"]));
        req.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from_str(value).unwrap(),
        );
        let res = echo(5, counter()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{value:?}");
    }
}

#[tokio::test]
async fn chunked_body_past_the_limit_is_cut_and_answered_413() {
    let calls = counter();
    let req = Request::new(Chunks::new(&[b"0123", b"4567", b"89ab"]));
    let res = echo(10, Arc::clone(&calls)).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()[header::CONNECTION], "close");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran and read");
}

#[tokio::test]
async fn body_of_exactly_the_limit_passes_and_one_more_byte_does_not() {
    let res = echo(8, counter())
        .oneshot(Request::new(Chunks::new(&[b"0123", b"4567"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = echo(8, counter())
        .oneshot(Request::new(Chunks::new(&[b"0123", b"4567", b"8"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_read_fails_with_a_distinguishable_length_limit_error() {
    let mut body = LimitedBody::new(Chunks::new(&[b"0123", b"4567"]), 6);
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "0123");
    let err = body.frame().await.unwrap().unwrap_err();
    let limit = err
        .downcast_ref::<LengthLimitError>()
        .expect("a LengthLimitError");
    assert_eq!(limit.limit(), 6);
    assert_eq!(
        err.to_string(),
        "request body exceeded its limit of 6 bytes"
    );
    assert!(body.is_exceeded());
}

#[tokio::test]
async fn a_cut_body_keeps_failing_and_never_ends_cleanly() {
    let mut body = LimitedBody::new(Chunks::new(&[b"0123456789"]), 4);
    for _ in 0..3 {
        assert!(!body.is_end_stream());
        let err = body.frame().await.expect("never a clean end").unwrap_err();
        assert!(err.is::<LengthLimitError>());
    }
}

#[tokio::test]
async fn the_frame_that_passes_the_limit_is_never_handed_on_in_part() {
    let mut body = LimitedBody::new(Chunks::new(&[b"abc", b"defghij"]), 5);
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => seen.extend_from_slice(&frame.into_data().unwrap()),
            Err(_) => break,
        }
    }
    assert_eq!(seen, b"abc");
}

#[tokio::test]
async fn a_body_longer_than_it_declared_is_cut_at_the_declared_length() {
    let req = Request::builder()
        .header(header::CONTENT_LENGTH, "4")
        .body(Chunks::new(&[b"abcd", b"efgh"]))
        .unwrap();
    let res = echo(100, counter()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_handler_that_ignores_the_error_still_yields_413() {
    let svc = ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(2))
        .service(service_fn(|req: Request<LimitedBody<Chunks>>| async move {
            let _: Result<_, BoxError> = req.into_body().collect().await;
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("fine")))
        }));
    let res = svc
        .oneshot(Request::new(Chunks::new(&[b"abc"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_service_error_after_the_limit_becomes_413() {
    let svc = ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(2))
        .service(service_fn(|req: Request<LimitedBody<Chunks>>| async move {
            req.into_body().collect().await?;
            Ok::<_, BoxError>(Response::new(Full::<Bytes>::default()))
        }));
    let res = svc
        .oneshot(Request::new(Chunks::new(&[b"abc"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn errors_of_the_wrapped_body_pass_through_and_are_not_413() {
    let svc = ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(100))
        .service(service_fn(|req: Request<LimitedBody<Chunks>>| async move {
            let err = req.into_body().collect().await.unwrap_err();
            assert!(!err.is::<LengthLimitError>());
            assert_eq!(err.to_string(), "peer reset");
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
        }));
    let res = svc
        .oneshot(Request::new(Chunks::new(&[b"abc"]).failing()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn http2_413_carries_no_connection_header() {
    let req = Request::builder()
        .version(Version::HTTP_2)
        .header(header::CONTENT_LENGTH, "11")
        .body(Chunks::new(&[b"hello world"]))
        .unwrap();
    let res = echo(10, counter()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers().get(header::CONNECTION).is_none());

    let req = Request::builder()
        .version(Version::HTTP_2)
        .body(Chunks::new(&[b"hello world"]))
        .unwrap();
    let res = echo(10, counter()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers().get(header::CONNECTION).is_none());
}

#[tokio::test]
async fn the_413_is_rendered_with_the_requests_context() {
    let mut req = Request::new(Chunks::new(&[b"too much"]));
    let cx = req.context().clone();
    let res = echo(1, counter()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = body_text(res).await;
    assert!(body.contains("\"status\":413"), "{body}");
    drop(cx);
}

#[tokio::test]
async fn a_zero_limit_passes_an_empty_body_and_stops_the_first_byte() {
    let res = echo(0, counter())
        .oneshot(Request::new(Chunks::new(&[])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = echo(0, counter())
        .oneshot(Request::new(Chunks::new(&[b"", b"x"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn trailers_pass_through_and_are_not_counted() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    let mut body = LimitedBody::new(Chunks::new(&[b"1234"]).with_trailers(trailers), 4);
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "1234"
    );
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_trailers().unwrap()["x-checksum"], "abc");
    assert!(body.frame().await.is_none());
}

#[test]
fn size_hint_end_stream_and_default_pass_through() {
    let body = LimitedBody::new(Full::new(Bytes::from_static(b"12345")), 10);
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());
    let body = LimitedBody::new(Empty::<Bytes>::new(), 10);
    assert!(body.is_end_stream());
    let body = LimitedBody::<Empty<Bytes>>::default();
    assert!(body.is_end_stream());
    assert_eq!(body.limit(), 0);
}

#[test]
fn debug_shows_the_limit_and_not_the_body() {
    let body = LimitedBody::new(Full::new(Bytes::from_static(b"secret")), 10);
    let debug = format!("{body:?}");
    assert!(debug.starts_with("LimitedBody"), "{debug}");
    assert!(!debug.contains("secret"), "{debug}");
    let layer = RequestBodyLimitLayer::new(7);
    assert_eq!(layer.limit(), 7);
    assert!(format!("{layer:?}").contains('7'));
}

#[tokio::test]
async fn the_layer_passes_the_conformance_kit() {
    // The kit's probe takes `Request<String>`: the body is unwrapped again behind the layer
    // (the limit itself is tested above; the kit checks readiness, context and errors).
    let layer = ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(1024))
        .map_request(|req: Request<LimitedBody<String>>| req.map(LimitedBody::into_inner));
    Conformance::new(layer).run().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the framing, the body reads whole when it fits and fails with
    /// `LengthLimitError` when it does not, and never hands on more than the limit.
    #[test]
    fn the_limit_holds_for_any_framing(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
        limit in 0u64..300,
    ) {
        let total: usize = chunks.iter().map(Vec::len).sum();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let mut body = LimitedBody::new(Chunks::new(&slices), limit);
            let mut seen = 0usize;
            let mut failed = false;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => seen += frame.into_data().unwrap().len(),
                    Err(err) => {
                        prop_assert!(err.is::<LengthLimitError>());
                        failed = true;
                        break;
                    }
                }
            }
            prop_assert!(seen as u64 <= limit);
            prop_assert_eq!(failed, total as u64 > limit);
            if !failed {
                prop_assert_eq!(seen, total);
            }
            Ok(())
        })?;
    }

    /// Any header bytes as `Content-Length`: never a panic, and an over-limit number is `413`.
    #[test]
    fn any_content_length_bytes_are_handled(value in proptest::collection::vec(any::<u8>(), 0..30)) {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, value.clone());
            let over = service::ContentLength::of(&headers, 1000).exceeds;
            if let Ok(n) = value.to_str().unwrap_or("x").trim().parse::<u64>() {
                if value.to_str().unwrap().trim().bytes().all(|b| b.is_ascii_digit()) {
                    prop_assert_eq!(over, n > 1000);
                }
            }
        }
    }

    /// Up to three `Content-Length` fields of any bytes: the one-pass reading declares a
    /// length exactly when there is one field of digits (trimmed) that fits a `u64`.
    #[test]
    fn the_declared_length_is_that_of_a_single_well_formed_field(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..4),
    ) {
        let mut headers = HeaderMap::new();
        for value in &values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(header::CONTENT_LENGTH, value);
            }
        }
        let fields: Vec<_> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
        let expected = match fields.as_slice() {
            [value] => value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u64>().ok()),
            _ => None,
        };
        prop_assert_eq!(service::ContentLength::of(&headers, 1000).length, expected);
    }
}

#[tokio::test]
async fn the_body_limit_records_its_own_time_only_when_layer_times_are_asked_for() {
    for asked in [false, true] {
        let cx = middleware_core::Context::new();
        if asked {
            cx.request_layer_times();
        }
        let mut req = Request::new(Chunks::new(&[b"hello"]));
        req.extensions_mut().insert(cx.clone());
        let res = echo(10, counter()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let names: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
        let expected: &[&str] = if asked { &["mw.body_limit"] } else { &[] };
        assert_eq!(names, expected, "asked: {asked}");
    }
}

// Fixtures

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// The layer around a handler that counts its calls and echoes the body, or answers `400` on a
/// body error.
fn echo(
    limit: u64,
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Chunks>,
    Response = Response<crate::ResponseBody<Full<Bytes>>>,
    Error = Infallible,
> + Clone {
    ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(limit))
        .service(service_fn(move |req: Request<LimitedBody<Chunks>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, Infallible>(match req.into_body().collect().await {
                    Ok(body) => Response::new(Full::new(body.to_bytes())),
                    Err(_) => Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .body(Full::default())
                        .unwrap(),
                })
            }
        }))
}

async fn body_text<B>(res: Response<B>) -> String
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A body of fixed frames with no size hint (like a chunked body), that may end in trailers or
/// in an error.
#[derive(Debug)]
struct Chunks {
    frames: VecDeque<Frame<Bytes>>,
    fail: bool,
}

impl Chunks {
    fn new(chunks: &[&[u8]]) -> Self {
        Self {
            frames: chunks
                .iter()
                .map(|chunk| Frame::data(Bytes::copy_from_slice(chunk)))
                .collect(),
            fail: false,
        }
    }

    fn failing(mut self) -> Self {
        self.fail = true;
        self
    }

    fn with_trailers(mut self, trailers: HeaderMap) -> Self {
        self.frames.push_back(Frame::trailers(trailers));
        self
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.frames.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None if self.fail => {
                self.fail = false;
                Poll::Ready(Some(Err("peer reset".into())))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && !self.fail
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
