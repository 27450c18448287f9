//! The per-request [`Context`]: typed values, a deadline, cancellation with a cause, a request id
//! and timing marks.
//!
//! A `Context` travels inside the request's [`http::Extensions`], so it crosses every tower
//! boundary (axum routers, tower-http layers, tonic, hyper-util) untouched. The first layer that
//! needs one creates it ([`RequestExt::context`]); every later layer and the handler find the
//! same one.
//!
//! # What is shared and what is a snapshot
//!
//! A `Context` is a cheap handle (two pointers). Cloning it never allocates.
//!
//! - **Typed values** are a *snapshot*: [`Context::insert`] takes `&mut self` and changes only
//!   this handle (and the clones made from it afterwards). A value inserted by an outer layer is
//!   visible to inner layers and the handler, because the request carries the handle inwards; a
//!   clone handed to spawned work keeps the values it had when it was cloned. This is Go's
//!   `context.WithValue` discipline: there is no shared mutable map for requests to race on.
//! - **The deadline, cancellation, request id and timing marks** are *shared* by every handle of
//!   one request: a deadline tightened by an inner layer bounds the whole request, a cancellation
//!   is seen by spawned work, and a mark added by the handler is read by an outer timing layer.
//!   Each of them is write-once or monotonic: the deadline only tightens, the first cancellation
//!   cause wins, the request id is set once, marks are only appended.
//!
//! # Timers and the `tokio` feature
//!
//! The core crate does not need a runtime. Without the `tokio` feature, an expired deadline is
//! observed whenever anyone asks ([`Context::is_cancelled`], [`Context::cause`],
//! [`Context::remaining`], polling [`Cancelled`]), and a layer that enforces the deadline (such
//! as `middleware-std`'s timeout) cancels the context when its own timer fires. With the `tokio`
//! feature, [`Cancelled`] also arms a `tokio::time::Sleep` for the deadline, so a task that only
//! awaits cancellation wakes up when the deadline passes, and the clock is read through
//! `tokio::time::Instant::now`, so tests with a paused clock see deadlines expire. A timer needs a
//! reactor to wake a task, which is why this is tokio's and not ours.

use std::{
    borrow::Cow,
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use http::HeaderName;

mod cancel;
mod ext;
mod guard;
mod marks;
mod report;
mod request_id;
mod shared;
#[cfg(test)]
mod tests;
mod values;

pub(crate) use self::shared::now;
pub use self::{
    cancel::{CancelCause, Cancelled},
    ext::RequestExt,
    guard::DropGuard,
    marks::Mark,
    report::{Expiry, TimeoutPhase},
    request_id::{InvalidRequestId, RequestId},
};
use self::{
    shared::{NO_DEADLINE, Shared, lock},
    values::Values,
};

/// The per-request context. See the [module docs](self) for what is shared and what is a snapshot.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use middleware_core::{CancelCause, Context, RequestExt};
///
/// #[derive(Debug, PartialEq)]
/// struct User(&'static str);
///
/// let mut req = http::Request::new(());
/// // The first layer that needs a context creates it; later ones find the same one.
/// req.context().insert(User("ada"));
/// req.context().set_timeout(Duration::from_secs(5));
///
/// let cx = req.context().clone();
/// assert_eq!(cx.get::<User>(), Some(&User("ada")));
/// assert!(cx.remaining().unwrap() <= Duration::from_secs(5));
///
/// cx.cancel();
/// assert_eq!(req.context().cause(), Some(CancelCause::Explicit));
/// ```
#[derive(Clone)]
pub struct Context {
    shared: Arc<Shared>,
    values: Values,
}

impl Context {
    /// A fresh context: no values, no deadline, not cancelled, no request id, no marks.
    ///
    /// Layers normally call [`RequestExt::context`] instead, which finds the request's context or
    /// creates it there. A context made with `new` is detached until it is inserted into a
    /// request's extensions.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::root()),
            values: Values::default(),
        }
    }

    /// Whether two handles belong to the same request (share the request id, marks and
    /// reports): clones, and every child or detached scope made from them.
    #[must_use]
    pub fn same_request(&self, other: &Self) -> bool {
        Arc::ptr_eq(
            Shared::root_of(&self.shared),
            Shared::root_of(&other.shared),
        )
    }

    /// Whether two handles are the same scope (share deadline and cancellation): clones, not
    /// children.
    #[must_use]
    pub fn same_scope(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    // ----- scopes -------------------------------------------------------------------------

    /// A child scope, for work done on the request's behalf (one outbound call, one attempt):
    /// the parent's cancellation and deadline flow down to it, while its own deadline and
    /// cancellation stay with it and its own children, never reaching the parent or its
    /// siblings. It sees the values this handle has now (and its own inserts), and shares the
    /// request's id, marks and reports. Costs one allocation.
    ///
    /// ```
    /// use std::time::Duration;
    /// use middleware_core::{CancelCause, Context};
    ///
    /// let request = Context::new();
    /// request.set_timeout(Duration::from_secs(10));
    ///
    /// let call = request.child_with_timeout(Duration::from_millis(100));
    /// assert!(call.remaining().unwrap() <= Duration::from_millis(100));
    /// assert!(request.remaining().unwrap() > Duration::from_secs(9), "the caller keeps its budget");
    ///
    /// call.cancel_with(CancelCause::Dropped); // the call future was dropped
    /// assert_eq!(request.cause(), None, "a child's cancellation never reaches the parent");
    ///
    /// let other = request.child();
    /// request.cancel();
    /// assert_eq!(other.cause(), Some(CancelCause::Explicit), "the parent's flows down");
    /// assert_eq!(call.cause(), Some(CancelCause::Dropped), "a scope keeps its first cause");
    /// ```
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            shared: Arc::new(Shared::scope_of(&self.shared, false)),
            values: self.values.clone(),
        }
    }

    /// A [child](Self::child) whose own deadline is `timeout` from now: its deadline in force is
    /// the earlier of that and this scope's.
    #[must_use]
    pub fn child_with_timeout(&self, timeout: Duration) -> Self {
        let child = self.child();
        child.set_timeout(timeout);
        child
    }

    /// A [child](Self::child) whose own deadline is `deadline`: its deadline in force is the
    /// earlier of that and this scope's.
    #[must_use]
    pub fn child_with_deadline(&self, deadline: Instant) -> Self {
        let child = self.child();
        child.set_deadline(deadline);
        child
    }

    /// A detached scope, for work that must outlive the request (an audit write, a cache fill):
    /// it keeps this handle's values and the request's id, marks and reports, but none of the
    /// deadline or cancellation of this scope or its parents (Go's `context.WithoutCancel`).
    /// Costs one allocation.
    ///
    /// ```
    /// use std::time::Duration;
    /// use middleware_core::Context;
    ///
    /// let request = Context::new();
    /// request.set_timeout(Duration::from_millis(5));
    /// let audit = request.detached();
    /// request.cancel();
    /// assert!(!audit.is_cancelled());
    /// assert_eq!(audit.deadline(), None);
    /// assert!(audit.same_request(&request));
    /// ```
    #[must_use]
    pub fn detached(&self) -> Self {
        Self {
            shared: Arc::new(Shared::scope_of(&self.shared, true)),
            values: self.values.clone(),
        }
    }

    // ----- typed values -------------------------------------------------------------------

    /// Inserts a typed value, replacing one of the same type in this handle.
    ///
    /// Visible to this handle, to the request's inner layers and handler (which receive this
    /// handle inside the request), and to clones made from now on; not to clones made before.
    /// Costs one allocation (asserted in `tests/allocations.rs`); the replaced value stays alive
    /// until the request's handles are gone.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(value);
    }

    /// The value of type `T`, if one was inserted.
    #[must_use]
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get::<T>()
    }

    /// Removes the value of type `T` from this handle; returns whether there was one.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> bool {
        self.values.remove::<T>()
    }

    // ----- deadline -----------------------------------------------------------------------

    /// When the context was created (the start of the request as far as layers can tell).
    #[must_use]
    pub fn created(&self) -> Instant {
        self.shared.request().created
    }

    /// Time since the context was created.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        now().saturating_duration_since(self.shared.request().created)
    }

    /// The request's deadline, if any layer set one.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.deadline()
    }

    /// Sets the deadline to `deadline` unless an earlier one is already set: a deadline can only
    /// be tightened, so nested budgets compose and the earliest wins. Returns the deadline now in
    /// force.
    ///
    /// A deadline in the past cancels the context with [`CancelCause::Deadline`] at the next
    /// look.
    #[allow(clippy::must_use_candidate)] // most callers only tighten
    pub fn set_deadline(&self, deadline: Instant) -> Instant {
        let nanos = deadline
            .checked_duration_since(self.shared.request().created)
            .map_or(0, |d| {
                u64::try_from(d.as_nanos()).unwrap_or(NO_DEADLINE - 1)
            })
            .min(NO_DEADLINE - 1);
        let in_force = self.shared.tighten(nanos);
        self.shared.request().created + Duration::from_nanos(in_force)
    }

    /// Sets the deadline to `timeout` from now, unless an earlier one is already set (see
    /// [`Context::set_deadline`]). Returns the deadline now in force.
    #[allow(clippy::must_use_candidate)] // most callers only tighten
    pub fn set_timeout(&self, timeout: Duration) -> Instant {
        let now = now();
        let deadline = now.checked_add(timeout).unwrap_or_else(|| {
            // Far beyond any real budget: clamp to a century.
            now + Duration::from_secs(100 * 365 * 24 * 3600)
        });
        self.set_deadline(deadline)
    }

    /// Time left before the deadline: `None` without a deadline, `Some(Duration::ZERO)` once it
    /// has passed.
    #[must_use]
    pub fn remaining(&self) -> Option<Duration> {
        let deadline = self.deadline()?;
        Some(deadline.saturating_duration_since(now()))
    }

    // ----- cancellation -------------------------------------------------------------------

    /// Cancels the request with [`CancelCause::Explicit`]. Returns `false` if it was already
    /// cancelled (the first cause is kept).
    #[allow(clippy::must_use_candidate)] // most callers do not care who won
    pub fn cancel(&self) -> bool {
        self.shared.cancel(CancelCause::Explicit)
    }

    /// Cancels the request with the given cause. Returns `false` if it was already cancelled
    /// (the first cause is kept). Layers use this to record why they gave up, e.g. a timeout
    /// layer cancels with [`CancelCause::Deadline`] before it drops the inner future.
    #[allow(clippy::must_use_candidate)] // most callers do not care who won
    pub fn cancel_with(&self, cause: CancelCause) -> bool {
        self.shared.cancel(cause)
    }

    /// Whether the request is cancelled (a passed deadline counts).
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.shared.cause().is_some()
    }

    /// Why the request was cancelled, if it was (a passed deadline counts).
    #[must_use]
    pub fn cause(&self) -> Option<CancelCause> {
        self.shared.cause()
    }

    /// Why the request was cancelled, as far as anyone has acted on it: like
    /// [`cause`](Self::cause), but without reading the clock, so a deadline that passed while
    /// nobody looked is not reported. For hot paths that only need to know whether a
    /// cancellation was seen (a producer that stopped on [`cancelled`](Self::cancelled) or
    /// [`is_cancelled`](Self::is_cancelled)).
    ///
    /// ```
    /// use middleware_core::{CancelCause, Context};
    ///
    /// let cx = Context::new();
    /// cx.set_deadline(cx.created()); // already passed, but nobody looked
    /// assert_eq!(cx.observed_cause(), None);
    /// assert_eq!(cx.cause(), Some(CancelCause::Deadline)); // looking records it
    /// assert_eq!(cx.observed_cause(), Some(CancelCause::Deadline));
    /// ```
    #[must_use]
    pub fn observed_cause(&self) -> Option<CancelCause> {
        self.shared.observed_cause()
    }

    /// A future that completes with the cause once the request is cancelled.
    ///
    /// With the `tokio` feature, it also wakes when the deadline passes (see the
    /// [module docs](self)). The future borrows the context; for `'static` work, move a clone
    /// into the task: `tokio::spawn(async move { cx.cancelled().await })`.
    ///
    /// # Panics
    ///
    /// With the `tokio` feature, polling it inside a tokio runtime built without timers
    /// (`enable_time`) while a deadline is set panics, as every tokio timer does there. Outside
    /// any tokio runtime there is no timer and no panic.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use middleware_core::{CancelCause, Context};
    ///
    /// let cx = Context::new();
    /// let waiter = tokio::spawn({
    ///     let cx = cx.clone();
    ///     async move { cx.cancelled().await }
    /// });
    /// cx.cancel();
    /// assert_eq!(waiter.await.unwrap(), CancelCause::Explicit);
    /// # }
    /// ```
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled::new(&self.shared)
    }

    // ----- request id ---------------------------------------------------------------------

    /// The request id, if a layer set one.
    #[must_use]
    pub fn request_id(&self) -> Option<&RequestId> {
        self.shared.request().request_id.get()
    }

    /// Sets the request id. The slot is written once: a later call gets its id back as the error.
    ///
    /// # Errors
    ///
    /// Returns `id` when the request already has an id.
    pub fn set_request_id(&self, id: RequestId) -> Result<(), RequestId> {
        self.shared.request().request_id.set(id)
    }

    // ----- timing marks -------------------------------------------------------------------

    /// Records a named duration, e.g. the time a database call took. Marks are shared by the
    /// whole request and only appended.
    pub fn mark(&self, name: impl Into<Cow<'static, str>>, duration: Duration) {
        lock(&self.shared.request().marks).push(Mark {
            name: name.into(),
            duration,
        });
    }

    /// A copy of the marks recorded so far, in order.
    #[must_use]
    pub fn marks(&self) -> Vec<Mark> {
        lock(&self.shared.request().marks).clone()
    }

    /// Calls `f` with the marks recorded so far, without copying them.
    ///
    /// The marks stay locked while `f` runs: `f` must not record marks or read them again on
    /// any handle of this request (that would deadlock); copy what it needs instead.
    pub fn with_marks<R>(&self, f: impl FnOnce(&[Mark]) -> R) -> R {
        f(&lock(&self.shared.request().marks))
    }

    // ----- reports to the whole request ---------------------------------------------------

    /// Records which deadline expired (see [`Expiry`]). The first report wins; returns whether
    /// this one did. Shared by every handle of the request, so an outer access log sees what an
    /// inner timeout layer reported.
    #[allow(clippy::must_use_candidate)] // most callers do not care who won
    pub fn record_expiry(&self, expiry: Expiry) -> bool {
        self.shared.request().expiry.set(expiry).is_ok()
    }

    /// The deadline that expired, as the layer that enforced it reported it.
    #[must_use]
    pub fn expiry(&self) -> Option<Expiry> {
        self.shared.request().expiry.get().copied()
    }

    /// Declares that header `name` carries a credential in this request, so that no layer
    /// logs its value, whichever side of the declaring layer it sits on. Auth layers call this
    /// for every header they read a secret from; an access log redacts every declared header.
    ///
    /// ```
    /// use http::HeaderName;
    /// use middleware_core::Context;
    ///
    /// let cx = Context::new();
    /// let log_side = cx.clone(); // an outer layer's handle, taken before the auth check
    /// cx.mark_sensitive_header(HeaderName::from_static("x-auth-token"));
    /// assert!(log_side.is_sensitive_header(&HeaderName::from_static("x-auth-token")));
    /// assert!(!log_side.is_sensitive_header(&HeaderName::from_static("accept")));
    /// ```
    pub fn mark_sensitive_header(&self, name: HeaderName) {
        let mut names = lock(&self.shared.request().sensitive_headers);
        if !names.contains(&name) {
            names.push(name);
        }
    }

    /// Whether a layer declared header `name` as carrying a credential in this request (see
    /// [`mark_sensitive_header`](Self::mark_sensitive_header)).
    #[must_use]
    pub fn is_sensitive_header(&self, name: &HeaderName) -> bool {
        lock(&self.shared.request().sensitive_headers).contains(name)
    }

    /// Asks the layers of this request to report the time they spend in their own code, as
    /// marks named `mw.<layer>` (see [`layer_times_requested`](Self::layer_times_requested)).
    /// A layer that renders them (a `Server-Timing` layer) calls this before it calls its inner
    /// service, so the layers inside it report and the layers outside it, whose own code already
    /// ran, do not. Request-wide, and free: no allocation.
    pub fn request_layer_times(&self) {
        self.shared
            .request()
            .layer_times
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a layer asked for per-layer times ([`request_layer_times`](Self::request_layer_times)):
    /// a layer reads a clock for its own time only when this is `true`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use middleware_core::Context;
    ///
    /// let cx = Context::new();
    /// assert!(!cx.layer_times_requested());
    /// cx.request_layer_times(); // a timing layer, on its way in
    /// let inner = cx.child();
    /// if inner.layer_times_requested() {
    ///     inner.mark("mw.my_layer", Duration::from_micros(3));
    /// }
    /// assert_eq!(cx.marks()[0].name(), "mw.my_layer");
    /// ```
    #[must_use]
    #[inline]
    pub fn layer_times_requested(&self) -> bool {
        self.shared
            .request()
            .layer_times
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A guard that cancels this request with [`CancelCause::Dropped`] when it is dropped while
    /// still armed. Adapters hold one inside their response future; see [`DropGuard`].
    #[must_use]
    pub fn drop_guard(&self) -> DropGuard {
        DropGuard(Some(Arc::clone(&self.shared)))
    }
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Context))
            .field("request_id", &self.request_id())
            .field("deadline", &self.deadline())
            // The cause recorded so far: `Debug` does not cancel a scope whose deadline passed.
            .field("cause", &self.shared.own_cause())
            .field("values", &self.values.len())
            .field(
                "marks",
                // `try_lock`: Debug may run inside `with_marks`, which holds the lock.
                &self
                    .shared
                    .request()
                    .marks
                    .try_lock()
                    .map_or(None, |marks| Some(marks.len())),
            )
            .finish()
    }
}
