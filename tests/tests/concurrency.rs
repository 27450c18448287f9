//! Concurrency correctness of the shared-state pieces of the context: 100,000 requests, 64 at a
//! time on a multi-thread runtime, each with a unique marker. No value, mark, request id or
//! cancellation may cross from one request to another.
#![allow(missing_docs)]

use std::{
    convert::Infallible,
    ops::ControlFlow,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::{
    Hook, HookLayer, Middleware, MiddlewareLayer, Next, Outcome, RequestExt, RequestId,
    ResponseBody,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const REQUESTS: u64 = 100_000;
const CONCURRENCY: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Marker(u64);

fn marker_of<B>(req: &Request<B>) -> u64 {
    req.headers()["x-marker"].to_str().unwrap().parse().unwrap()
}

/// Outer: puts the marker into the context, its request id, a mark, and a deadline.
struct Tag;

impl Middleware for Tag {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let marker = marker_of(&req);
        let cx = req.context();
        cx.insert(Marker(marker));
        cx.set_request_id(RequestId::try_from(format!("req-{marker}").as_str()).unwrap())
            .unwrap();
        cx.set_timeout(Duration::from_secs(60));
        cx.mark(format!("tag-{marker}"), Duration::from_micros(marker));
        let snapshot = cx.clone();
        tokio::task::yield_now().await;
        let res = next.run(req).await?;
        // The snapshot still sees this request's value; later inserts by inner layers are not
        // in it, and the marks (shared) carry only this request's names.
        assert_eq!(snapshot.get::<Marker>(), Some(&Marker(marker)));
        assert_eq!(snapshot.get::<Inner>(), None);
        let names: Vec<String> = snapshot
            .marks()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert_eq!(
            names,
            [format!("tag-{marker}"), format!("handler-{marker}")]
        );
        Ok(res)
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Inner(u64);

/// Hook in the middle: checks what the outer layer put in, adds its own value.
struct Check;

impl Hook for Check {
    type State = ();

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        let marker = marker_of(req);
        let cx = req.context();
        assert_eq!(cx.get::<Marker>(), Some(&Marker(marker)));
        cx.insert(Inner(marker));
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_value_crosses_requests_under_64_way_concurrency() {
    let checked = Arc::new(AtomicU64::new(0));
    let svc = ServiceBuilder::new()
        .layer(MiddlewareLayer::new(Tag))
        .layer(HookLayer::new(Check))
        .service(service_fn({
            let checked = Arc::clone(&checked);
            move |req: Request<String>| {
                let checked = Arc::clone(&checked);
                async move {
                    let marker = marker_of(&req);
                    let cx = req.try_context().expect("context").clone();
                    assert_eq!(cx.get::<Marker>(), Some(&Marker(marker)));
                    assert_eq!(cx.get::<Inner>(), Some(&Inner(marker)));
                    assert_eq!(cx.request_id().unwrap().as_str(), format!("req-{marker}"));
                    assert!(!cx.is_cancelled());
                    // Spawned work with a snapshot sees the same request.
                    let spawned = tokio::spawn({
                        let cx = cx.clone();
                        async move { cx.get::<Marker>().copied() }
                    });
                    assert_eq!(spawned.await.unwrap(), Some(Marker(marker)));
                    cx.mark(format!("handler-{marker}"), Duration::ZERO);
                    checked.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, Infallible>(Response::new(String::new()))
                }
            }
        }));

    let mut workers = Vec::new();
    for worker in 0..CONCURRENCY {
        let mut svc = svc.clone();
        workers.push(tokio::spawn(async move {
            let mut marker = worker;
            while marker < REQUESTS {
                let req = Request::builder()
                    .header("x-marker", marker)
                    .body(String::new())
                    .unwrap();
                let res = svc.ready().await.unwrap().call(req).await.unwrap();
                assert_eq!(res.status(), 200);
                marker += CONCURRENCY;
            }
        }));
    }
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(120), worker)
            .await
            .expect("bounded")
            .unwrap();
    }
    assert_eq!(checked.load(Ordering::Relaxed), REQUESTS);
}
