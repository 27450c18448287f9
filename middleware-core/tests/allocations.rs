//! Heap allocations per request, counted with the kit's harness
//! (`middleware_core::testing::allocations_per_request`, feature `testing-alloc`). The counts
//! are deterministic and asserted exactly.
#![allow(missing_docs)]

use std::{ops::ControlFlow, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use middleware_core::testing::{Bare, allocations_per_request, measure};
use middleware_core::{
    Hook, HookLayer, Middleware, MiddlewareLayer, Next, Observe, ObserveLayer, Outcome, RequestExt,
    ResponseBody,
};
use tower_layer::Layer;

fn plain() -> Request<String> {
    Request::new(String::new())
}

/// A request whose extension map is already allocated, as it is once any layer (a router, a
/// connection-info layer) has put something in it.
fn with_extensions() -> Request<String> {
    let mut req = Request::new(String::new());
    req.extensions_mut().insert(ConnInfo);
    req
}

#[derive(Clone, Copy)]
struct ConnInfo;

/// A hook that reads a header, carries state, rewrites the status, and never touches the
/// context.
struct StaticHeader;

impl Hook for StaticHeader {
    type State = bool;

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>, bool> {
        ControlFlow::Continue(req.headers().contains_key("x-accept"))
    }

    fn after<B>(&self, accept: bool, res: &mut Response<ResponseBody<B>>) {
        if !accept {
            *res.status_mut() = http::StatusCode::ACCEPTED;
        }
    }
}

/// `StaticHeader` as an observer: the same work, the response type left alone.
#[derive(Clone)]
struct StaticHeaderObserver;

impl Observe for StaticHeaderObserver {
    type State = bool;

    fn before<B>(&self, req: &mut Request<B>) -> bool {
        req.headers().contains_key("x-accept")
    }

    fn after<B>(&self, accept: bool, res: &mut Response<B>) {
        if !accept {
            *res.status_mut() = http::StatusCode::ACCEPTED;
        }
    }
}

/// An observer that makes sure the request has a context.
#[derive(Clone)]
struct NeedsContextObserver;

impl Observe for NeedsContextObserver {
    type State = ();

    fn before<B>(&self, req: &mut Request<B>) {
        let _ = req.context();
    }

    fn after<B>(&self, (): (), _: &mut Response<B>) {}
}

/// A hook that makes sure the request has a context.
struct NeedsContext;

impl Hook for NeedsContext {
    type State = ();

    fn before<B>(&self, req: &mut Request<B>) -> ControlFlow<Response<Bytes>> {
        let _ = req.context();
        ControlFlow::Continue(())
    }

    fn after<B>(&self, (): (), _: &mut Response<ResponseBody<B>>) {}
}

/// An around-style middleware that reads the context and passes through.
struct Around;

impl Middleware for Around {
    async fn handle<N: Next>(&self, mut req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let cancelled = req.context().is_cancelled();
        let res = next.run(req).await?;
        assert!(!cancelled);
        Ok(res)
    }
}

/// An around-style middleware that never asks for the context.
struct PassThrough;

impl Middleware for PassThrough {
    async fn handle<N: Next>(&self, req: Request<N::ReqBody>, next: N) -> Outcome<N> {
        let mut res = next.run(req).await?;
        *res.status_mut() = http::StatusCode::ACCEPTED;
        Ok(res)
    }
}

#[test]
fn an_around_chain_that_ignores_the_context_costs_one_box() {
    // No context is created: the whole chain costs its one boxed future.
    let chain = PassThrough
        .then(PassThrough)
        .then(PassThrough)
        .then(PassThrough)
        .then(PassThrough);
    let svc = MiddlewareLayer::new(chain).layer(Bare::new());
    assert_eq!(allocations_per_request(svc, plain), 1);
    assert_eq!(
        allocations_per_request(MiddlewareLayer::new(PassThrough).layer(Bare::new()), plain),
        1
    );
}

#[test]
fn inserting_a_typed_value_costs_one_allocation() {
    let mut cx = middleware_core::Context::new();
    cx.insert(1_u8);
    let info = measure(|| cx.insert(2_u16));
    assert_eq!(info.count_total, 1);
    let info = measure(|| cx.insert(3_u8)); // replaces
    assert_eq!(info.count_total, 1);
    assert_eq!(cx.get::<u8>(), Some(&3));
    assert_eq!(cx.get::<u16>(), Some(&2));
}

#[test]
fn the_bare_service_does_not_allocate() {
    assert_eq!(allocations_per_request(Bare::new(), plain), 0);
}

#[test]
fn a_hook_that_does_not_touch_the_context_adds_no_allocation() {
    let svc = HookLayer::new(StaticHeader).layer(Bare::new());
    assert_eq!(allocations_per_request(svc, plain), 0);
    let five = HookLayer::new(StaticHeader).layer(HookLayer::new(StaticHeader).layer(
        HookLayer::new(StaticHeader).layer(
            HookLayer::new(StaticHeader).layer(HookLayer::new(StaticHeader).layer(Bare::new())),
        ),
    ));
    assert_eq!(allocations_per_request(five, plain), 0);
}

#[test]
fn an_observer_that_does_not_touch_the_context_adds_no_allocation() {
    let svc = ObserveLayer::new(StaticHeaderObserver).layer(Bare::new());
    assert_eq!(allocations_per_request(svc, plain), 0);
    let five = ObserveLayer::new(StaticHeaderObserver).layer(
        ObserveLayer::new(StaticHeaderObserver).layer(
            ObserveLayer::new(StaticHeaderObserver).layer(
                ObserveLayer::new(StaticHeaderObserver)
                    .layer(ObserveLayer::new(StaticHeaderObserver).layer(Bare::new())),
            ),
        ),
    );
    assert_eq!(allocations_per_request(five, plain), 0);
    // Mixed with hooks: still nothing.
    let mixed = ObserveLayer::new(StaticHeaderObserver).layer(
        HookLayer::new(StaticHeader)
            .layer(ObserveLayer::new(StaticHeaderObserver).layer(Bare::new())),
    );
    assert_eq!(allocations_per_request(mixed, plain), 0);
}

#[test]
fn an_observer_pays_for_the_context_only_when_it_asks_and_once() {
    let base = allocations_per_request(Bare::new(), with_extensions);
    let one = ObserveLayer::new(NeedsContextObserver).layer(Bare::new());
    assert_eq!(allocations_per_request(one, with_extensions) - base, 2);
    let three = ObserveLayer::new(NeedsContextObserver).layer(
        HookLayer::new(NeedsContext)
            .layer(ObserveLayer::new(NeedsContextObserver).layer(Bare::new())),
    );
    assert_eq!(allocations_per_request(three, with_extensions) - base, 2);
}

#[test]
fn the_context_costs_two_allocations_once_per_request() {
    // The context: its shared state (one `Arc`) and its extension slot (one `Box`).
    let base = allocations_per_request(Bare::new(), with_extensions);
    let one = HookLayer::new(NeedsContext).layer(Bare::new());
    assert_eq!(allocations_per_request(one, with_extensions) - base, 2);
    // Found, not re-created, by every later layer.
    let three = HookLayer::new(NeedsContext)
        .layer(HookLayer::new(NeedsContext).layer(HookLayer::new(NeedsContext).layer(Bare::new())));
    assert_eq!(allocations_per_request(three, with_extensions) - base, 2);
}

#[test]
fn an_empty_extension_map_costs_two_more_on_first_insert() {
    // `http::Extensions` allocates its map (a `Box` and the hash table) on the first insert of
    // anything; a request that already carries an extension has paid that.
    let svc = HookLayer::new(NeedsContext).layer(Bare::new());
    assert_eq!(allocations_per_request(svc, plain), 4);
    // Making such a request costs the same two (`ConnInfo` is zero-sized: its box is free).
    assert_eq!(allocations_per_request(Bare::new(), with_extensions), 2);
}

#[test]
fn a_chain_of_five_around_middlewares_adds_one_allocation() {
    let base = allocations_per_request(Bare::new(), with_extensions);
    let chain = Around.then(Around).then(Around).then(Around).then(Around);
    let svc = MiddlewareLayer::new(chain).layer(Bare::new());
    // 2 for the context + 1 box for the whole chain's future.
    assert_eq!(allocations_per_request(svc, with_extensions) - base, 3);

    let single = MiddlewareLayer::new(Around).layer(Bare::new());
    assert_eq!(allocations_per_request(single, with_extensions) - base, 3);
}

#[test]
fn around_layers_share_one_context() {
    let base = allocations_per_request(Bare::new(), with_extensions);
    let two_layers =
        MiddlewareLayer::new(Around).layer(MiddlewareLayer::new(Around).layer(Bare::new()));
    // One context (2) + one box per layer (2).
    assert_eq!(
        allocations_per_request(two_layers, with_extensions) - base,
        4
    );
}

#[test]
fn a_child_or_detached_scope_costs_one_allocation() {
    let mut cx = middleware_core::Context::new();
    cx.insert(1_u8);
    let parent = cx.clone();
    let info = measure(|| drop(parent.child()));
    assert_eq!(info.count_total, 1);
    let info = measure(|| drop(parent.child_with_timeout(Duration::from_secs(1))));
    assert_eq!(info.count_total, 1);
    let info = measure(|| drop(parent.detached()));
    assert_eq!(info.count_total, 1);
    // A grandchild is no dearer: nothing is copied down the tree.
    let child = parent.child();
    let info = measure(|| drop(child.child()));
    assert_eq!(info.count_total, 1);
    assert_eq!(info.count_current, 0, "a dropped scope frees itself");
}

#[test]
fn a_request_that_makes_no_child_pays_what_it_paid_before_scopes() {
    // The same two allocations as `the_context_costs_two_allocations_once_per_request`, now
    // asserted next to the scope costs: scopes add nothing to a request that makes none.
    let base = allocations_per_request(Bare::new(), with_extensions);
    let one = HookLayer::new(NeedsContext).layer(Bare::new());
    assert_eq!(allocations_per_request(one, with_extensions) - base, 2);
    let info = measure(|| drop(middleware_core::Context::new()));
    assert_eq!(info.count_total, 1, "one scope, the request's state inline");
}

/// A family of distinct value types, one per `N`.
struct Keyed<const N: usize>;

fn insert_costs<const N: usize>(cx: &mut middleware_core::Context) -> u64 {
    measure(|| cx.insert(Keyed::<N>)).count_total
}

#[test]
fn each_value_costs_one_allocation_and_reading_none() {
    let mut cx = middleware_core::Context::new();
    let costs = [
        insert_costs::<0>(&mut cx),
        insert_costs::<1>(&mut cx),
        insert_costs::<2>(&mut cx),
        insert_costs::<3>(&mut cx),
        insert_costs::<4>(&mut cx),
        insert_costs::<5>(&mut cx),
        insert_costs::<6>(&mut cx),
        insert_costs::<7>(&mut cx),
        insert_costs::<8>(&mut cx),
        insert_costs::<9>(&mut cx),
    ];
    assert_eq!(costs, [1; 10]);
    assert_eq!(measure(|| assert!(cx.remove::<Keyed<3>>())).count_total, 1);
    let reads = measure(|| {
        assert!(cx.get::<Keyed<9>>().is_some());
        assert!(cx.get::<Keyed<0>>().is_some());
        assert!(cx.get::<Keyed<3>>().is_none());
        assert!(cx.get::<u8>().is_none());
    });
    assert_eq!(reads.count_total, 0);
}
