use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll, Waker},
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
    assert!(lock(&cx.shared.waiters).iter().all(Option::is_none));
    assert_eq!(lock(&cx.shared.waiters).len(), 1, "slots are reused");
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
