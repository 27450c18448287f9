use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use http::HeaderValue;

use super::*;

#[derive(Debug, PartialEq)]
struct Marker(u32);

#[test]
fn every_cause_is_kept_and_named_once() {
    let causes = [
        CancelCause::Deadline,
        CancelCause::Dropped,
        CancelCause::Explicit,
        CancelCause::Panicked,
    ];
    for cause in causes {
        let cx = Context::new();
        assert!(cx.cancel_with(cause));
        assert_eq!(cx.cause(), Some(cause));
        // The first cause wins.
        assert!(!cx.cancel_with(CancelCause::Explicit));
        assert_eq!(cx.cause(), Some(cause));
    }
    let names: std::collections::HashSet<_> = causes.iter().map(|c| c.as_str()).collect();
    assert_eq!(names.len(), causes.len());
    assert_eq!(CancelCause::Panicked.to_string(), "panicked");
}

#[test]
fn values_inserted_upstream_are_visible_downstream() {
    let mut req = http::Request::new(());
    req.context().insert(Marker(7));
    let (parts, ()) = req.into_parts();
    assert_eq!(
        parts.try_context().unwrap().get::<Marker>(),
        Some(&Marker(7))
    );
}

#[test]
fn a_clone_is_a_snapshot_of_values() {
    let mut cx = Context::new();
    cx.insert(Marker(1));
    let snapshot = cx.clone();
    cx.insert(Marker(2));
    cx.insert("later");
    assert_eq!(snapshot.get::<Marker>(), Some(&Marker(1)));
    assert_eq!(snapshot.get::<&str>(), None);
    assert_eq!(cx.get::<Marker>(), Some(&Marker(2)));
    assert_eq!(cx.get::<&str>(), Some(&"later"));
}

#[test]
fn a_long_value_list_drops_without_recursion() {
    let mut cx = Context::new();
    for i in 0..200_000_u32 {
        cx.insert(i);
    }
    assert_eq!(cx.get::<u32>(), Some(&199_999));
    assert_eq!(cx.values.len(), 1);
    drop(cx);
}

#[test]
fn removing_a_value_leaves_snapshots_alone() {
    let mut cx = Context::new();
    cx.insert(Marker(1));
    let snapshot = cx.clone();
    assert!(cx.remove::<Marker>());
    assert!(!cx.remove::<Marker>());
    assert_eq!(cx.get::<Marker>(), None);
    assert_eq!(snapshot.get::<Marker>(), Some(&Marker(1)));
}

#[test]
fn the_context_is_found_not_recreated() {
    let mut req = http::Request::new(());
    let first = req.context().clone();
    let second = req.context().clone();
    assert!(first.same_request(&second));
    assert!(!first.same_request(&Context::new()));
}

#[test]
fn deadline_only_tightens() {
    let cx = Context::new();
    let base = cx.created();
    assert_eq!(cx.deadline(), None);
    assert_eq!(cx.remaining(), None);
    let late = base + Duration::from_secs(10);
    let early = base + Duration::from_secs(5);
    assert_eq!(cx.set_deadline(late), late);
    assert_eq!(cx.set_deadline(early), early);
    assert_eq!(
        cx.set_deadline(late),
        early,
        "a later deadline must not loosen"
    );
    assert_eq!(cx.deadline(), Some(early));
    assert!(cx.remaining().unwrap() <= Duration::from_secs(5));
}

#[test]
fn deadline_is_shared_by_every_handle() {
    let cx = Context::new();
    let snapshot = cx.clone();
    cx.set_timeout(Duration::from_secs(1));
    assert_eq!(snapshot.deadline(), cx.deadline());
}

#[test]
fn huge_timeouts_saturate_instead_of_overflowing() {
    let cx = Context::new();
    cx.set_timeout(Duration::MAX);
    assert!(cx.remaining().unwrap() > Duration::from_secs(365 * 24 * 3600));
    assert!(!cx.is_cancelled());
}

#[test]
fn a_past_deadline_cancels_with_cause_deadline() {
    let cx = Context::new();
    cx.set_deadline(cx.created());
    assert_eq!(cx.remaining(), Some(Duration::ZERO));
    assert_eq!(cx.cause(), Some(CancelCause::Deadline));
    assert!(!cx.cancel(), "the first cause wins");
    assert_eq!(cx.cause(), Some(CancelCause::Deadline));
}

#[test]
fn explicit_cancel_is_seen_by_every_handle() {
    let cx = Context::new();
    let spawned = cx.clone();
    assert!(!spawned.is_cancelled());
    assert!(cx.cancel());
    assert_eq!(spawned.cause(), Some(CancelCause::Explicit));
}

#[test]
fn drop_guard_cancels_with_dropped_unless_disarmed() {
    let cx = Context::new();
    let mut guard = cx.drop_guard();
    guard.disarm();
    drop(guard);
    assert_eq!(cx.cause(), None);
    drop(cx.drop_guard());
    assert_eq!(cx.cause(), Some(CancelCause::Dropped));
}

#[cfg(feature = "tokio")] // the timer and the paused clock are tokio's
#[tokio::test(start_paused = true)]
async fn cancelled_fires_at_the_deadline() {
    let cx = Context::new();
    cx.set_timeout(Duration::from_millis(250));
    let waiter = tokio::spawn({
        let cx = cx.clone();
        async move { (cx.cancelled().await, cx.elapsed()) }
    });
    let (cause, elapsed) = waiter.await.unwrap();
    assert_eq!(cause, CancelCause::Deadline);
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(260), "{elapsed:?}");
}

#[cfg(feature = "tokio")] // the timer and the paused clock are tokio's
#[tokio::test(start_paused = true)]
async fn tightening_the_deadline_rearms_waiters() {
    let cx = Context::new();
    cx.set_timeout(Duration::from_secs(60));
    let waiter = tokio::spawn({
        let cx = cx.clone();
        async move { (cx.cancelled().await, cx.elapsed()) }
    });
    tokio::task::yield_now().await;
    cx.set_timeout(Duration::from_secs(1));
    let (cause, elapsed) = waiter.await.unwrap();
    assert_eq!(cause, CancelCause::Deadline);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn cancelled_fires_on_explicit_cancel_before_the_deadline() {
    let cx = Context::new();
    cx.set_timeout(Duration::from_secs(60));
    let waiter = tokio::spawn({
        let cx = cx.clone();
        async move { cx.cancelled().await }
    });
    tokio::task::yield_now().await;
    cx.cancel();
    assert_eq!(waiter.await.unwrap(), CancelCause::Explicit);
    assert!(cx.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn dropping_a_waiter_frees_its_slot() {
    let cx = Context::new();
    for _ in 0..3 {
        let mut fut = Box::pin(cx.cancelled());
        assert!(futures_poll(fut.as_mut()).is_pending());
    }
    assert!(
        lock(&cx.shared.request().waiters)
            .iter()
            .all(Option::is_none)
    );
    assert_eq!(
        lock(&cx.shared.request().waiters).len(),
        1,
        "slots are reused"
    );
}

#[test]
fn request_id_is_set_once() {
    let cx = Context::new();
    let first = RequestId::try_from("abc-123").unwrap();
    let second = RequestId::try_from("other").unwrap();
    assert_eq!(cx.set_request_id(first.clone()), Ok(()));
    assert_eq!(cx.set_request_id(second.clone()), Err(second));
    assert_eq!(cx.request_id(), Some(&first));
    assert_eq!(first.as_str(), "abc-123");
}

#[test]
fn hostile_request_ids_are_rejected() {
    for bad in [
        "",
        " ",
        "a b",
        "tab\there",
        "line\nbreak",
        "nul\0",
        "é",
        "\x7f",
        "\x1b[31m",
    ] {
        assert!(RequestId::try_from(bad).is_err(), "{bad:?} accepted");
    }
    let opaque = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
    assert!(RequestId::new(opaque).is_err());
}

#[test]
fn a_request_id_is_exactly_the_visible_ascii_values() {
    for b in 0..=u8::MAX {
        let visible = (0x21..=0x7e).contains(&b);
        // Alone, first, last and in the middle of an otherwise valid id.
        for bytes in [vec![b], vec![b, b'a'], vec![b'a', b], vec![b'a', b, b'a']] {
            let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                continue; // not even a header value (a control character)
            };
            assert_eq!(RequestId::new(value).is_ok(), visible, "{bytes:?}");
        }
    }
}

#[test]
fn marks_are_shared_and_ordered() {
    let cx = Context::new();
    let handler = cx.clone();
    handler.mark("db", Duration::from_millis(3));
    cx.mark(String::from("render"), Duration::from_millis(1));
    let names: Vec<_> = cx.marks().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(names, ["db", "render"]);
    assert_eq!(cx.with_marks(|m| m[0].duration()), Duration::from_millis(3));
}

#[test]
fn debug_inside_with_marks_does_not_deadlock() {
    let cx = Context::new();
    cx.mark("a", Duration::ZERO);
    let debug = cx.with_marks(|_| format!("{cx:?}"));
    assert!(debug.contains("marks: None"), "{debug}");
}

#[test]
fn debug_shows_state_not_values() {
    let mut cx = Context::new();
    cx.insert("secret-token");
    let debug = format!("{cx:?}");
    assert!(!debug.contains("secret-token"), "{debug}");
    assert!(debug.contains("values: 1"), "{debug}");
}

fn futures_poll<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = TaskContext::from_waker(Waker::noop());
    fut.poll(&mut cx)
}

// ----- scopes -----------------------------------------------------------------------------

#[test]
fn a_child_deadline_never_shortens_the_parent() {
    // The defect: a 100 ms cap on one outbound call shortened the caller's own 10 s deadline.
    let request = Context::new();
    request.set_timeout(Duration::from_secs(10));
    let call = request.child_with_timeout(Duration::from_millis(100));
    assert!(call.remaining().unwrap() <= Duration::from_millis(100));
    assert!(request.remaining().unwrap() > Duration::from_secs(9));
    // A child's deadline in force is the earlier of its own and its parent's.
    let long = request.child_with_timeout(Duration::from_secs(60));
    assert_eq!(long.deadline(), request.deadline());
    // A parent tightened later reaches existing children.
    request.set_timeout(Duration::from_millis(50));
    assert_eq!(long.deadline(), request.deadline());
    assert!(call.deadline().unwrap() <= request.deadline().unwrap());
}

#[test]
fn a_dropped_child_never_cancels_the_request() {
    // The defect: dropping one outbound call future cancelled the whole inbound request.
    let request = Context::new();
    let call = request.child();
    let sibling = request.child();
    drop(call.drop_guard());
    assert_eq!(call.cause(), Some(CancelCause::Dropped));
    assert_eq!(request.cause(), None);
    assert_eq!(sibling.cause(), None);
    // A grandchild of the dropped call is cancelled with it.
    assert_eq!(call.child().cause(), Some(CancelCause::Dropped));
}

#[test]
fn a_child_reports_its_parents_cause_and_keeps_its_own_first() {
    let request = Context::new();
    let a = request.child();
    let b = a.child();
    assert!(a.cancel_with(CancelCause::Deadline));
    assert_eq!(b.cause(), Some(CancelCause::Deadline), "the parent's cause");
    assert!(!b.cancel(), "already cancelled through its parent");
    request.cancel_with(CancelCause::Dropped);
    assert_eq!(
        a.cause(),
        Some(CancelCause::Deadline),
        "the first cause stays"
    );
    assert_eq!(b.cause(), Some(CancelCause::Deadline));
    assert_eq!(request.child().cause(), Some(CancelCause::Dropped));
}

#[test]
fn a_child_cancelled_by_its_own_timeout_says_deadline() {
    let request = Context::new();
    let call = request.child_with_deadline(request.created());
    assert_eq!(call.cause(), Some(CancelCause::Deadline));
    assert_eq!(request.cause(), None);
}

#[test]
fn a_detached_scope_keeps_values_and_id_but_no_cancellation() {
    let mut request = Context::new();
    request.insert(Marker(7));
    request
        .set_request_id(RequestId::try_from("req-1").unwrap())
        .unwrap();
    request.set_timeout(Duration::from_millis(1));
    let audit = request.detached();
    request.cancel();
    assert_eq!(audit.cause(), None);
    assert_eq!(audit.deadline(), None);
    assert_eq!(audit.get::<Marker>(), Some(&Marker(7)));
    assert_eq!(audit.request_id().unwrap().as_str(), "req-1");
    // Its own children follow it, not the request.
    let write = audit.child();
    assert!(!write.is_cancelled());
    audit.cancel();
    assert_eq!(write.cause(), Some(CancelCause::Explicit));
}

#[test]
fn scopes_see_values_as_a_snapshot_and_share_marks() {
    let mut request = Context::new();
    request.insert(Marker(1));
    let mut call = request.child();
    request.insert(Marker(2));
    assert_eq!(
        call.get::<Marker>(),
        Some(&Marker(1)),
        "the values when it was made"
    );
    call.insert(Marker(3));
    assert_eq!(
        request.get::<Marker>(),
        Some(&Marker(2)),
        "a child's insert stays in it"
    );
    call.mark("upstream", Duration::from_millis(4));
    request.detached().mark("audit", Duration::from_millis(1));
    let names: Vec<String> = request
        .marks()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(names, ["upstream", "audit"], "the request's marks");
    assert!(call.same_request(&request));
    assert!(!call.same_scope(&request));
    assert!(request.clone().same_scope(&request));
}

#[tokio::test(start_paused = true)]
async fn a_child_waiter_wakes_when_the_parent_is_cancelled_and_not_for_a_sibling() {
    let request = Context::new();
    let call = request.child();
    let sibling = request.child();
    let waiter = tokio::spawn({
        let call = call.clone();
        async move { call.cancelled().await }
    });
    tokio::task::yield_now().await;
    sibling.cancel();
    tokio::task::yield_now().await;
    assert!(
        !waiter.is_finished(),
        "a sibling's cancellation is not ours"
    );
    request.cancel_with(CancelCause::Dropped);
    assert_eq!(waiter.await.unwrap(), CancelCause::Dropped);
}

#[tokio::test(start_paused = true)]
async fn a_child_waiter_wakes_at_the_parents_deadline() {
    let request = Context::new();
    let call = request.child_with_timeout(Duration::from_secs(5));
    request.set_timeout(Duration::from_secs(1));
    let started = tokio::time::Instant::now();
    assert_eq!(call.cancelled().await, CancelCause::Deadline);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[test]
fn a_deep_chain_of_scopes_drops_without_recursion() {
    let request = Context::new();
    let mut scope = request.child();
    for _ in 0..200_000 {
        scope = scope.child();
    }
    request.cancel();
    assert_eq!(scope.cause(), Some(CancelCause::Explicit));
    drop(request);
    drop(scope); // frees 200,001 scopes in a loop
}

#[test]
fn a_parent_dropped_with_ten_thousand_live_children_walks_nothing() {
    let request = Context::new();
    let children: Vec<Context> = (0..10_000).map(|_| request.child()).collect();
    request.cancel();
    drop(request);
    assert!(
        children
            .iter()
            .all(|c| c.cause() == Some(CancelCause::Explicit))
    );
}

/// A reference model of scopes: each node's own deadline and cause, its parent (none for the
/// root and detached scopes), and the cause it recorded once it saw one.
#[cfg(feature = "tokio")]
mod model {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    pub(super) enum Op {
        Child { of: usize, timeout_ms: Option<u64> },
        Detached { of: usize },
        Cancel { at: usize, cause: u8 },
        Timeout { at: usize, ms: u64 },
        Advance { ms: u64 },
        Look { at: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<usize>(), proptest::option::of(1_u64..50))
                .prop_map(|(of, timeout_ms)| Op::Child { of, timeout_ms }),
            any::<usize>().prop_map(|of| Op::Detached { of }),
            (any::<usize>(), 0_u8..4).prop_map(|(at, cause)| Op::Cancel { at, cause }),
            (any::<usize>(), 1_u64..50).prop_map(|(at, ms)| Op::Timeout { at, ms }),
            (1_u64..30).prop_map(|ms| Op::Advance { ms }),
            any::<usize>().prop_map(|at| Op::Look { at }),
        ]
    }

    struct Node {
        parent: Option<usize>,
        deadline_ms: Option<u64>,
        cause: Option<CancelCause>,
    }

    struct Model {
        nodes: Vec<Node>,
        now_ms: u64,
    }

    impl Model {
        fn deadline(&self, at: usize) -> Option<u64> {
            let node = &self.nodes[at];
            let parent = node.parent.and_then(|p| self.deadline(p));
            match (node.deadline_ms, parent) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }

        fn cause(&mut self, at: usize) -> Option<CancelCause> {
            if let Some(cause) = self.nodes[at].cause {
                return Some(cause);
            }
            let mut up = self.nodes[at].parent;
            let mut inherited = None;
            while let Some(p) = up {
                if let Some(cause) = self.nodes[p].cause {
                    inherited = Some(cause);
                    break;
                }
                up = self.nodes[p].parent;
            }
            let cause = inherited.or_else(|| {
                self.deadline(at)
                    .filter(|d| self.now_ms >= *d)
                    .map(|_| CancelCause::Deadline)
            })?;
            self.nodes[at].cause = Some(cause);
            Some(cause)
        }
    }

    const CAUSES: [CancelCause; 4] = [
        CancelCause::Deadline,
        CancelCause::Dropped,
        CancelCause::Explicit,
        CancelCause::Panicked,
    ];

    proptest! {
        #[test]
        fn random_scope_trees_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let root = Context::new();
                let mut scopes = vec![root];
                let mut model = Model {
                    nodes: vec![Node { parent: None, deadline_ms: None, cause: None }],
                    now_ms: 0,
                };
                for op in ops {
                    match op {
                        Op::Child { of, timeout_ms } => {
                            let of = of % scopes.len();
                            let child = match timeout_ms {
                                Some(ms) => scopes[of].child_with_timeout(Duration::from_millis(ms)),
                                None => scopes[of].child(),
                            };
                            scopes.push(child);
                            model.nodes.push(Node {
                                parent: Some(of),
                                deadline_ms: timeout_ms.map(|ms| model.now_ms + ms),
                                cause: None,
                            });
                        }
                        Op::Detached { of } => {
                            let of = of % scopes.len();
                            scopes.push(scopes[of].detached());
                            model.nodes.push(Node { parent: None, deadline_ms: None, cause: None });
                        }
                        Op::Cancel { at, cause } => {
                            let at = at % scopes.len();
                            let cause = CAUSES[usize::from(cause)];
                            let expected = model.cause(at).is_none();
                            if expected {
                                model.nodes[at].cause = Some(cause);
                            }
                            prop_assert_eq!(scopes[at].cancel_with(cause), expected);
                        }
                        Op::Timeout { at, ms } => {
                            let at = at % scopes.len();
                            scopes[at].set_timeout(Duration::from_millis(ms));
                            let node = &mut model.nodes[at];
                            let new = model.now_ms + ms;
                            node.deadline_ms = Some(node.deadline_ms.map_or(new, |d| d.min(new)));
                        }
                        Op::Advance { ms } => {
                            tokio::time::advance(Duration::from_millis(ms)).await;
                            model.now_ms += ms;
                        }
                        Op::Look { at } => {
                            let at = at % scopes.len();
                            prop_assert_eq!(scopes[at].cause(), model.cause(at));
                        }
                    }
                }
                // Every scope, looked at in order, matches the model (causes, deadlines, and
                // so `remaining`); nothing moved upward.
                for (at, scope) in scopes.iter().enumerate() {
                    prop_assert_eq!(scope.cause(), model.cause(at), "scope {}", at);
                    prop_assert_eq!(scope.is_cancelled(), model.cause(at).is_some());
                    let expected = model.deadline(at).map(|d| Duration::from_millis(d.saturating_sub(model.now_ms)));
                    prop_assert_eq!(scope.remaining(), expected, "scope {}", at);
                }
                Ok(())
            })?;
        }
    }
}

/// A family of distinct value types, one per `N`.
#[derive(Debug, PartialEq, Eq)]
struct Keyed<const N: usize>(u32);

fn insert_keyed<const N: usize>(cx: &mut Context, value: u32) {
    cx.insert(Keyed::<N>(value));
}

fn remove_keyed<const N: usize>(cx: &mut Context) -> bool {
    cx.remove::<Keyed<N>>()
}

fn get_keyed<const N: usize>(cx: &Context) -> Option<u32> {
    cx.get::<Keyed<N>>().map(|k| k.0)
}

/// Calls `f::<k>(args)` for a key `k` in `0..12`.
macro_rules! on_key {
    ($k:expr, $f:ident $(, $arg:expr)*) => {
        match $k {
            0 => $f::<0>($($arg),*),
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            9 => $f::<9>($($arg),*),
            10 => $f::<10>($($arg),*),
            _ => $f::<11>($($arg),*),
        }
    };
}

#[derive(Clone, Debug)]
enum ValueOp {
    Insert(usize, u32),
    Remove(usize),
    Snapshot,
}

fn value_op() -> impl proptest::strategy::Strategy<Value = ValueOp> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..12_usize, any::<u32>()).prop_map(|(k, v)| ValueOp::Insert(k, v)),
        1 => (0..12_usize).prop_map(ValueOp::Remove),
        1 => Just(ValueOp::Snapshot),
    ]
}

/// Checks `cx` against `model` for every key, and its live-value count.
fn assert_matches_model(cx: &Context, model: &std::collections::HashMap<usize, u32>) {
    for k in 0..12 {
        assert_eq!(on_key!(k, get_keyed, cx), model.get(&k).copied(), "key {k}");
    }
    assert_eq!(cx.values.len(), model.len());
}

proptest::proptest! {
    /// Any sequence of inserts and removals, long enough to fold the list into indexes many
    /// times over: every handle and every snapshot reads exactly what a map would.
    #[test]
    fn values_read_like_a_map_across_folds_and_snapshots(
        ops in proptest::collection::vec(value_op(), 0..120),
    ) {
        let mut cx = Context::new();
        let mut model = std::collections::HashMap::new();
        let mut snapshots = Vec::new();
        for op in ops {
            match op {
                ValueOp::Insert(k, v) => {
                    on_key!(k, insert_keyed, &mut cx, v);
                    model.insert(k, v);
                }
                ValueOp::Remove(k) => {
                    let removed = on_key!(k, remove_keyed, &mut cx);
                    proptest::prop_assert_eq!(removed, model.remove(&k).is_some());
                }
                ValueOp::Snapshot => snapshots.push((cx.clone(), model.clone())),
            }
            assert_matches_model(&cx, &model);
        }
        for (snapshot, model) in &snapshots {
            assert_matches_model(snapshot, model);
        }
    }
}

#[test]
fn many_distinct_values_fold_and_drop_without_recursion() {
    let mut cx = Context::new();
    let snapshot_at = 100_003;
    let mut snapshot = None;
    for i in 0..200_000_u32 {
        match i % 4 {
            0 => insert_keyed::<0>(&mut cx, i),
            1 => insert_keyed::<1>(&mut cx, i),
            2 => insert_keyed::<2>(&mut cx, i),
            _ => insert_keyed::<3>(&mut cx, i),
        }
        if i == snapshot_at {
            snapshot = Some(cx.clone());
        }
    }
    assert_eq!(get_keyed::<0>(&cx), Some(199_996));
    assert_eq!(get_keyed::<3>(&cx), Some(199_999));
    assert_eq!(cx.values.len(), 4);
    drop(cx);
    let snapshot = snapshot.unwrap();
    assert_eq!(get_keyed::<3>(&snapshot), Some(100_003));
    assert_eq!(get_keyed::<0>(&snapshot), Some(100_000));
    drop(snapshot);
}
