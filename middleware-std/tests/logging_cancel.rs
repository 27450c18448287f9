//! A client that goes away in the middle of the response body ends the request: the log layer
//! cancels the request's context with cause `dropped`, so spawned work stops.
#![cfg(feature = "logging")]
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use middleware_std::{CancelCause, Context, RequestExt, logging::LogLayer};
use tower::{Layer, ServiceExt, service_fn};

fn app(
    seen: &Arc<Mutex<Option<Context>>>,
) -> impl tower::Service<
    Request<String>,
    Response = Response<impl http_body::Body<Data = Bytes, Error: std::fmt::Debug>>,
    Error = Infallible,
> {
    let seen = Arc::clone(seen);
    LogLayer::new()
        .create_context(true)
        .layer(service_fn(move |req: Request<String>| {
            *seen.lock().unwrap() = req.try_context().cloned();
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"body")))) }
        }))
}

#[tokio::test]
async fn dropping_the_body_unread_cancels_with_dropped() {
    let seen = Arc::new(Mutex::new(None));
    let res = app(&seen)
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    drop(res);
    let cx = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the layer made a context");
    assert_eq!(cx.cause(), Some(CancelCause::Dropped));
}

#[tokio::test]
async fn reading_the_body_to_the_end_cancels_nothing() {
    let seen = Arc::new(Mutex::new(None));
    let res = app(&seen)
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    let cx = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the layer made a context");
    assert_eq!(cx.cause(), None);
}
