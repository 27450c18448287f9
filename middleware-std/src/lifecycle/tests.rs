use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use middleware_core::testing::Conformance;
use tower::{ServiceExt, service_fn};

use super::*;

#[tokio::test]
async fn the_first_response_of_a_connection_is_new_and_the_next_ones_reuse_it() {
    let info = ConnectInfo::new(Duration::from_millis(7));
    let seen = Seen::default();
    let upstream = {
        let info = info.clone();
        service_fn(move |_req: Request<String>| {
            let mut res = Response::new(Full::<Bytes>::from("ok"));
            res.extensions_mut().insert(info.clone());
            async move { Ok::<_, Infallible>(res) }
        })
    };
    let client = LifecycleLayer::new()
        .on_timings(seen.hook())
        .layer(upstream);
    let cx = Context::new();
    for _ in 0..2 {
        let res = client.clone().oneshot(request(&cx)).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let seen = seen.all();
    assert_eq!(
        seen[0].connection(),
        ConnectionKind::New {
            connect: Duration::from_millis(7)
        }
    );
    assert_eq!(seen[1].connection(), ConnectionKind::Reused);
    assert!(seen.iter().all(Timings::is_complete));
    assert_eq!(
        names(&cx),
        [
            "client.connect",
            "client.first_byte",
            "client.body",
            "client.reused",
            "client.first_byte",
            "client.body"
        ]
    );
}

#[tokio::test]
async fn the_write_time_is_the_connections_last_write_after_the_call() {
    let info = ConnectInfo::new(Duration::ZERO);
    let upstream = {
        let info = info.clone();
        service_fn(move |_req: Request<String>| {
            let info = info.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                info.wrote();
                tokio::time::sleep(Duration::from_millis(5)).await;
                let mut res = Response::new(Empty::<Bytes>::new());
                res.extensions_mut().insert(info);
                Ok::<_, Infallible>(res)
            }
        })
    };
    let seen = Seen::default();
    let res = LifecycleLayer::new()
        .on_timings(seen.hook())
        .layer(upstream)
        .oneshot(request(&Context::new()))
        .await
        .unwrap();
    drop(res);
    let timings = seen.one();
    let wrote = timings.wrote_request().expect("the connection wrote");
    let first = timings.first_byte().unwrap();
    assert!(
        wrote >= Duration::from_millis(5) && wrote < first,
        "{timings:?}"
    );
}

#[tokio::test]
async fn a_body_dropped_before_its_end_is_not_complete_and_has_no_body_mark() {
    let seen = Seen::default();
    let upstream = service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(Chunks::new(&[b"a", b"b"])))
    });
    let cx = Context::new();
    let mut res = LifecycleLayer::new()
        .on_timings(seen.hook())
        .layer(upstream)
        .oneshot(request(&cx))
        .await
        .unwrap();
    assert!(seen.all().is_empty(), "not finished at the head");
    res.body_mut().frame().await.unwrap().unwrap();
    drop(res);
    let timings = seen.one();
    assert!(!timings.is_complete());
    assert_eq!(timings.body_end(), None);
    assert_eq!(timings.connection(), ConnectionKind::Unknown);
    assert_eq!(names(&cx), ["client.first_byte"]);
}

#[tokio::test]
async fn a_failed_body_is_not_complete_and_never_ends_cleanly() {
    let seen = Seen::default();
    let upstream = service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(Failing(false)))
    });
    let res = LifecycleLayer::new()
        .on_timings(seen.hook())
        .layer(upstream)
        .oneshot(request(&Context::new()))
        .await
        .unwrap();
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().is_err());
    assert!(!body.is_end_stream());
    assert!(!seen.one().is_complete());
}

#[tokio::test]
async fn a_bodiless_response_finishes_at_its_head() {
    let seen = Seen::default();
    let upstream = service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let cx = Context::new();
    let res = LifecycleLayer::new()
        .on_timings(seen.hook())
        .layer(upstream)
        .oneshot(request(&cx))
        .await
        .unwrap();
    let timings = seen.one();
    assert!(timings.is_complete());
    assert!(timings.body_end().unwrap() >= timings.first_byte().unwrap());
    assert_eq!(names(&cx), ["client.first_byte", "client.body"]);
    drop(res);
    assert_eq!(seen.all().len(), 1, "reported once");
}

#[tokio::test]
async fn a_failed_call_is_reported_without_a_response() {
    let seen = Seen::default();
    let upstream = service_fn(|_req: Request<String>| async {
        Err::<Response<Empty<Bytes>>, _>(std::io::Error::other("refused"))
    });
    let cx = Context::new();
    let err = LifecycleLayer::new()
        .on_timings(seen.hook())
        .layer(upstream)
        .oneshot(request(&cx))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "refused");
    let timings = seen.one();
    assert_eq!(timings.first_byte(), None);
    assert!(!timings.is_complete());
    assert!(names(&cx).is_empty());
}

#[tokio::test]
async fn a_call_given_up_before_its_response_is_still_reported() {
    let seen = Seen::default();
    let upstream = service_fn(|_req: Request<String>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let call = LifecycleLayer::new()
        .on_timings(seen.hook())
        .layer(upstream)
        .oneshot(request(&Context::new()));
    let given_up = tokio::time::timeout(Duration::from_millis(10), call).await;
    assert!(given_up.is_err());
    let timings = seen.one();
    assert_eq!(timings.first_byte(), None);
    assert!(!timings.is_complete());
}

#[tokio::test]
async fn the_layer_records_its_own_time_when_asked() {
    let cx = Context::new();
    cx.request_layer_times();
    let upstream = service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok")))
    });
    let res = Lifecycle::new(upstream)
        .oneshot(request(&cx))
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(
        names(&cx),
        ["client.first_byte", "client.body", "mw.lifecycle"]
    );
}

#[tokio::test]
async fn the_layer_keeps_the_conformance_contract() {
    middleware_core::check_conformance!(Conformance::new(LifecycleLayer::new())).await;
}

// ---- fixtures

fn request(cx: &Context) -> Request<String> {
    let mut req = Request::new(String::new());
    req.extensions_mut().insert(cx.clone());
    req
}

fn names(cx: &Context) -> Vec<String> {
    cx.marks().iter().map(|m| m.name().to_owned()).collect()
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Timings>>>);

impl Seen {
    fn hook(&self) -> impl Fn(&Timings) + Clone + use<> {
        let seen = self.clone();
        move |t: &Timings| seen.0.lock().unwrap().push(t.clone())
    }

    fn all(&self) -> Vec<Timings> {
        self.0.lock().unwrap().clone()
    }

    fn one(&self) -> Timings {
        let all = self.all();
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].clone()
    }
}

/// A body that yields `chunks` one frame at a time.
#[derive(Debug, Default)]
struct Chunks(VecDeque<Bytes>);

impl Chunks {
    fn new(chunks: &[&'static [u8]]) -> Self {
        Self(chunks.iter().map(|c| Bytes::from_static(c)).collect())
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// A body that fails once, then ends.
struct Failing(bool);

impl Body for Failing {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if self.0 {
            return Poll::Ready(None);
        }
        self.0 = true;
        Poll::Ready(Some(Err(std::io::Error::other("reset"))))
    }
}
