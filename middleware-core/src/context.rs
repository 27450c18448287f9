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
    any::{Any, TypeId},
    borrow::Cow,
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence},
    },
    task::{Context as TaskContext, Poll, Waker},
    time::{Duration, Instant},
};

use http::{Extensions, HeaderName, HeaderValue};

mod report;

pub use self::report::{Expiry, TimeoutPhase};

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

/// Why a [`Context`] was cancelled. The first cause recorded wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelCause {
    /// The deadline passed.
    Deadline,
    /// The request future was dropped before it completed: the client went away, or an outer
    /// layer gave up on the request.
    Dropped,
    /// A layer or handler called [`Context::cancel`].
    Explicit,
    /// The handler (or a layer inside panic recovery) panicked; the request ended with the
    /// recovery's answer (a `500`, or a truncated body once the head went out).
    Panicked,
}

impl CancelCause {
    /// A short lowercase name, stable for logs and metrics: `deadline`, `dropped`, `explicit`,
    /// `panicked`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Dropped => "dropped",
            Self::Explicit => "explicit",
            Self::Panicked => "panicked",
        }
    }

    const fn to_u8(self) -> u8 {
        match self {
            Self::Deadline => 1,
            Self::Dropped => 2,
            Self::Explicit => 3,
            Self::Panicked => 4,
        }
    }

    const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Deadline),
            2 => Some(Self::Dropped),
            3 => Some(Self::Explicit),
            4 => Some(Self::Panicked),
            _ => None,
        }
    }
}

impl fmt::Display for CancelCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request id: a non-empty header value of visible ASCII, cheap to clone.
///
/// The slot on the [`Context`] is set once ([`Context::set_request_id`]); generating and
/// validating ids from untrusted headers is the job of a request-id layer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Wraps a header value.
    ///
    /// # Errors
    ///
    /// Fails when the value is empty or holds anything but visible ASCII (`0x21..=0x7e`), so an
    /// id can always be logged and echoed in a header without escaping.
    pub fn new(value: HeaderValue) -> Result<Self, InvalidRequestId> {
        let bytes = value.as_bytes();
        if bytes.is_empty() || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(InvalidRequestId(()));
        }
        Ok(Self(value))
    }

    /// The id as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Checked in `new`: visible ASCII is valid UTF-8.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value, ready to be echoed in a response.
    #[must_use]
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl TryFrom<&str> for RequestId {
    type Error = InvalidRequestId;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        HeaderValue::from_str(value)
            .map_err(|_| InvalidRequestId(()))
            .and_then(Self::new)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a value is not a valid [`RequestId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequestId(());

impl fmt::Display for InvalidRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request id must be non-empty visible ascii")
    }
}

impl std::error::Error for InvalidRequestId {}

/// A named duration recorded on a [`Context`] by a layer or a handler (for `Server-Timing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    name: Cow<'static, str>,
    duration: Duration,
}

impl Mark {
    /// The mark's name as it was recorded (escaping is the job of whoever renders it).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The recorded duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

/// Extension methods that find or create the [`Context`] of a request.
///
/// Implemented for [`http::Request`], [`http::request::Parts`] and [`http::Extensions`].
pub trait RequestExt: sealed::Sealed {
    /// The request's context, created on first use.
    ///
    /// Creating it costs two allocations (the shared state and the extension slot; an extension
    /// map that is still empty allocates itself on its first insert, whatever is inserted).
    /// Finding an existing one costs none.
    fn context(&mut self) -> &mut Context;

    /// The request's context if some layer created one, without creating it.
    fn try_context(&self) -> Option<&Context>;
}

impl RequestExt for Extensions {
    fn context(&mut self) -> &mut Context {
        // One map lookup; the context is built only when absent.
        self.get_or_insert_with(Context::new)
    }

    fn try_context(&self) -> Option<&Context> {
        self.get::<Context>()
    }
}

impl<B> RequestExt for http::Request<B> {
    fn context(&mut self) -> &mut Context {
        self.extensions_mut().context()
    }

    fn try_context(&self) -> Option<&Context> {
        self.extensions().try_context()
    }
}

impl RequestExt for http::request::Parts {
    fn context(&mut self) -> &mut Context {
        self.extensions.context()
    }

    fn try_context(&self) -> Option<&Context> {
        self.extensions.try_context()
    }
}

mod sealed {
    // Sealed on purpose: nameable only here, so no one else can implement `RequestExt`.
    #[allow(unnameable_types)]
    pub trait Sealed {}
    impl Sealed for http::Extensions {}
    impl<B> Sealed for http::Request<B> {}
    impl Sealed for http::request::Parts {}
}

const NO_DEADLINE: u64 = u64::MAX;
const NOT_CANCELLED: u8 = 0;

struct Shared {
    created: Instant,
    /// Nanoseconds after `created`; `NO_DEADLINE` when unset. Only ever lowered.
    deadline: AtomicU64,
    /// `NOT_CANCELLED` or a `CancelCause::to_u8`. Written once.
    cause: AtomicU8,
    waiters: Mutex<Vec<Option<Waker>>>,
    /// Set (never cleared) by the first waiter, so that tightening a deadline or cancelling a
    /// context nobody waits on takes no lock.
    has_waiters: AtomicBool,
    request_id: OnceLock<RequestId>,
    marks: Mutex<Vec<Mark>>,
    /// The first deadline that expired, as the enforcing layer reported it.
    expiry: OnceLock<Expiry>,
    /// Header names a layer read credentials from; empty (no allocation) for most requests.
    sensitive_headers: Mutex<Vec<HeaderName>>,
}

impl Shared {
    fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Acquire) {
            NO_DEADLINE => None,
            nanos => Some(self.created + Duration::from_nanos(nanos)),
        }
    }

    fn cause(&self) -> Option<CancelCause> {
        if let Some(cause) = CancelCause::from_u8(self.cause.load(Ordering::Acquire)) {
            return Some(cause);
        }
        let deadline = self.deadline()?;
        if now() >= deadline {
            self.cancel(CancelCause::Deadline);
            return CancelCause::from_u8(self.cause.load(Ordering::Acquire));
        }
        None
    }

    fn cancel(&self, cause: CancelCause) -> bool {
        let won = self
            .cause
            .compare_exchange(
                NOT_CANCELLED,
                cause.to_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if won {
            self.wake_all();
        }
        won
    }

    fn wake_all(&self) {
        // Pairs with the fence in `Cancelled::poll`: either that waiter sees the new cause or
        // deadline when it looks again after registering, or this sees its flag.
        fence(Ordering::SeqCst);
        if !self.has_waiters.load(Ordering::Relaxed) {
            return;
        }
        // Wake outside the lock: a waker may poll inline and look at the context again.
        let wakers: Vec<Waker> = lock(&self.waiters).iter().flatten().cloned().collect();
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Locks a mutex, recovering the data when another thread panicked while holding it: every
/// critical section here leaves the data consistent, so poisoning carries no information.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current time, through tokio's clock when the `tokio` feature is on (so paused test clocks
/// are honoured; outside a runtime this is `Instant::now()`).
#[cfg(feature = "tokio")]
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The current time.
#[cfg(not(feature = "tokio"))]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// One node of the persistent value list: a value (or the removal of one) and the rest.
trait Node: Send + Sync {
    fn key(&self) -> TypeId;
    /// `None` for a removal.
    fn value(&self) -> Option<&(dyn Any + Send + Sync)>;
    fn next(&self) -> Option<&Arc<dyn Node>>;
    fn take_next(&mut self) -> Option<Arc<dyn Node>>;
}

struct ValueNode<T> {
    value: T,
    next: Option<Arc<dyn Node>>,
}

struct Removal {
    key: TypeId,
    next: Option<Arc<dyn Node>>,
}

impl<T: Send + Sync + 'static> Node for ValueNode<T> {
    fn key(&self) -> TypeId {
        TypeId::of::<T>()
    }

    fn value(&self) -> Option<&(dyn Any + Send + Sync)> {
        Some(&self.value)
    }

    fn next(&self) -> Option<&Arc<dyn Node>> {
        self.next.as_ref()
    }

    fn take_next(&mut self) -> Option<Arc<dyn Node>> {
        self.next.take()
    }
}

impl Node for Removal {
    fn key(&self) -> TypeId {
        self.key
    }

    fn value(&self) -> Option<&(dyn Any + Send + Sync)> {
        None
    }

    fn next(&self) -> Option<&Arc<dyn Node>> {
        self.next.as_ref()
    }

    fn take_next(&mut self) -> Option<Arc<dyn Node>> {
        self.next.take()
    }
}

/// Drops the rest of a list iteratively, so a long list cannot overflow the stack.
fn drop_list(mut next: Option<Arc<dyn Node>>) {
    while let Some(mut node) = next {
        next = Arc::get_mut(&mut node).and_then(Node::take_next);
    }
}

impl<T> Drop for ValueNode<T> {
    fn drop(&mut self) {
        drop_list(self.next.take());
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        drop_list(self.next.take());
    }
}

/// A persistent (immutable, shared) list of typed values, newest first. Inserting pushes one
/// node in front (one allocation) and never changes nodes that clones share, so clones are
/// snapshots.
#[derive(Clone, Default)]
struct Values(Option<Arc<dyn Node>>);

impl Values {
    fn nodes(&self) -> impl Iterator<Item = &dyn Node> {
        std::iter::successors(self.0.as_deref(), |node| node.next().map(|next| &**next))
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.nodes()
            .find(|node| node.key() == TypeId::of::<T>())?
            .value()?
            .downcast_ref::<T>()
    }

    fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let next = self.0.take();
        self.0 = Some(Arc::new(ValueNode { value, next }));
    }

    fn remove<T: Send + Sync + 'static>(&mut self) -> bool {
        if self.get::<T>().is_none() {
            return false;
        }
        let next = self.0.take();
        self.0 = Some(Arc::new(Removal {
            key: TypeId::of::<T>(),
            next,
        }));
        true
    }

    /// The number of live values (for `Debug`).
    fn len(&self) -> usize {
        let mut seen: Vec<TypeId> = Vec::new();
        let mut live = 0;
        for node in self.nodes() {
            if !seen.contains(&node.key()) {
                seen.push(node.key());
                live += usize::from(node.value().is_some());
            }
        }
        live
    }
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
            shared: Arc::new(Shared {
                created: now(),
                deadline: AtomicU64::new(NO_DEADLINE),
                cause: AtomicU8::new(NOT_CANCELLED),
                waiters: Mutex::new(Vec::new()),
                has_waiters: AtomicBool::new(false),
                request_id: OnceLock::new(),
                marks: Mutex::new(Vec::new()),
                expiry: OnceLock::new(),
                sensitive_headers: Mutex::new(Vec::new()),
            }),
            values: Values::default(),
        }
    }

    /// Whether two handles belong to the same request (share deadline, cancellation, id, marks).
    #[must_use]
    pub fn same_request(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
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
        self.shared.created
    }

    /// Time since the context was created.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        now().saturating_duration_since(self.shared.created)
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
            .checked_duration_since(self.shared.created)
            .map_or(0, |d| {
                u64::try_from(d.as_nanos()).unwrap_or(NO_DEADLINE - 1)
            })
            .min(NO_DEADLINE - 1);
        let previous = self.shared.deadline.fetch_min(nanos, Ordering::AcqRel);
        if nanos < previous {
            // Waiters re-arm their timers for the new, earlier deadline.
            self.shared.wake_all();
        }
        self.shared.created + Duration::from_nanos(nanos.min(previous))
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
        Cancelled {
            shared: &self.shared,
            slot: None,
            timer: DeadlineTimer::new(),
        }
    }

    // ----- request id ---------------------------------------------------------------------

    /// The request id, if a layer set one.
    #[must_use]
    pub fn request_id(&self) -> Option<&RequestId> {
        self.shared.request_id.get()
    }

    /// Sets the request id. The slot is written once: a later call gets its id back as the error.
    ///
    /// # Errors
    ///
    /// Returns `id` when the request already has an id.
    pub fn set_request_id(&self, id: RequestId) -> Result<(), RequestId> {
        self.shared.request_id.set(id)
    }

    // ----- timing marks -------------------------------------------------------------------

    /// Records a named duration, e.g. the time a database call took. Marks are shared by the
    /// whole request and only appended.
    pub fn mark(&self, name: impl Into<Cow<'static, str>>, duration: Duration) {
        lock(&self.shared.marks).push(Mark {
            name: name.into(),
            duration,
        });
    }

    /// A copy of the marks recorded so far, in order.
    #[must_use]
    pub fn marks(&self) -> Vec<Mark> {
        lock(&self.shared.marks).clone()
    }

    /// Calls `f` with the marks recorded so far, without copying them.
    ///
    /// The marks stay locked while `f` runs: `f` must not record marks or read them again on
    /// any handle of this request (that would deadlock); copy what it needs instead.
    pub fn with_marks<R>(&self, f: impl FnOnce(&[Mark]) -> R) -> R {
        f(&lock(&self.shared.marks))
    }

    // ----- reports to the whole request ---------------------------------------------------

    /// Records which deadline expired (see [`Expiry`]). The first report wins; returns whether
    /// this one did. Shared by every handle of the request, so an outer access log sees what an
    /// inner timeout layer reported.
    #[allow(clippy::must_use_candidate)] // most callers do not care who won
    pub fn record_expiry(&self, expiry: Expiry) -> bool {
        self.shared.expiry.set(expiry).is_ok()
    }

    /// The deadline that expired, as the layer that enforced it reported it.
    #[must_use]
    pub fn expiry(&self) -> Option<Expiry> {
        self.shared.expiry.get().copied()
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
        let mut names = lock(&self.shared.sensitive_headers);
        if !names.contains(&name) {
            names.push(name);
        }
    }

    /// Whether a layer declared header `name` as carrying a credential in this request (see
    /// [`mark_sensitive_header`](Self::mark_sensitive_header)).
    #[must_use]
    pub fn is_sensitive_header(&self, name: &HeaderName) -> bool {
        lock(&self.shared.sensitive_headers).contains(name)
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
        f.debug_struct("Context")
            .field("request_id", &self.request_id())
            .field("deadline", &self.deadline())
            .field(
                "cause",
                &CancelCause::from_u8(self.shared.cause.load(Ordering::Acquire)),
            )
            .field("values", &self.values.len())
            .field(
                "marks",
                // `try_lock`: Debug may run inside `with_marks`, which holds the lock.
                &self
                    .shared
                    .marks
                    .try_lock()
                    .map_or(None, |marks| Some(marks.len())),
            )
            .finish()
    }
}

/// Cancels a request with [`CancelCause::Dropped`] if dropped before [`DropGuard::disarm`].
///
/// A response future holds one while the request is in flight: when the future is dropped early
/// (the client went away, an outer timeout fired), the context's cancellation fires so spawned
/// work can stop. The first cause wins, so a timeout that cancelled with
/// [`CancelCause::Deadline`] before dropping the future keeps its cause.
///
/// Guards watch the response *future*: once the response head is out, a client that goes away
/// while the body streams is seen by body wrappers (the logging layer's), not by this guard.
///
/// All handles of a request share one cancellation: a clone put into a sub-request that passes
/// an adapter is guarded there too, so dropping that sub-request cancels the whole request.
/// Hand sub-requests a fresh [`Context`] (copying what they need) when that is not wanted.
#[derive(Debug)]
pub struct DropGuard(Option<Arc<Shared>>);

impl DropGuard {
    /// A guard that guards nothing: for a request without a context.
    ///
    /// ```
    /// use middleware_core::{Context, DropGuard, RequestExt};
    ///
    /// let req = http::Request::new(());
    /// let guard = req.try_context().map_or_else(DropGuard::none, Context::drop_guard);
    /// drop(guard); // nothing to cancel
    /// ```
    #[must_use]
    pub const fn none() -> Self {
        Self(None)
    }

    /// Disarms the guard: the request completed.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.cancel(CancelCause::Dropped);
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`Context::cancelled`]; completes with the [`CancelCause`].
    ///
    /// It can be awaited, raced in `select!`, or polled by hand from another future.
    #[must_use = "futures do nothing unless polled"]
    pub struct Cancelled<'a> {
        shared: &'a Arc<Shared>,
        slot: Option<usize>,
        #[pin]
        timer: DeadlineTimer,
    }

    impl<'a> PinnedDrop for Cancelled<'a> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(slot) = this.slot.take() {
                if let Some(waker) = lock(&this.shared.waiters).get_mut(slot) {
                    *waker = None;
                }
            }
        }
    }
}

impl fmt::Debug for Cancelled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled")
            .field("cause", &self.shared.cause())
            .finish_non_exhaustive()
    }
}

impl Future for Cancelled<'_> {
    type Output = CancelCause;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(cause) = this.shared.cause() {
            return Poll::Ready(cause);
        }
        {
            let mut waiters = lock(&this.shared.waiters);
            if let Some(slot) = *this.slot {
                match &mut waiters[slot] {
                    Some(waker) => waker.clone_from(cx.waker()),
                    empty @ None => *empty = Some(cx.waker().clone()),
                }
            } else {
                let slot = if let Some(free) = waiters.iter().position(Option::is_none) {
                    waiters[free] = Some(cx.waker().clone());
                    free
                } else {
                    waiters.push(Some(cx.waker().clone()));
                    waiters.len() - 1
                };
                *this.slot = Some(slot);
            }
        }
        this.shared.has_waiters.store(true, Ordering::Relaxed);
        // Pairs with the fence in `wake_all` (see there).
        fence(Ordering::SeqCst);
        // A cancel between the first look and the registration must not be missed.
        if let Some(cause) = this.shared.cause() {
            return Poll::Ready(cause);
        }
        if let Some(deadline) = this.shared.deadline() {
            if this.timer.poll_until(deadline, cx).is_ready() {
                this.shared.cancel(CancelCause::Deadline);
                if let Some(cause) = this.shared.cause() {
                    return Poll::Ready(cause);
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(feature = "tokio")]
pin_project_lite::pin_project! {
    struct DeadlineTimer {
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

#[cfg(feature = "tokio")]
impl DeadlineTimer {
    fn new() -> Self {
        Self { sleep: None }
    }

    /// Polls a tokio timer for `deadline`, re-arming it when the deadline moved. Outside a tokio
    /// runtime there is no timer: the deadline is then seen only when someone looks.
    fn poll_until(self: Pin<&mut Self>, deadline: Instant, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut this = self.project();
        let deadline = tokio::time::Instant::from_std(deadline);
        if this.sleep.is_none() {
            if tokio::runtime::Handle::try_current().is_err() {
                return Poll::Pending;
            }
            this.sleep.set(Some(tokio::time::sleep_until(deadline)));
        }
        let mut sleep = this.sleep.as_pin_mut().expect("armed above");
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.poll(cx)
    }
}

#[cfg(not(feature = "tokio"))]
struct DeadlineTimer;

#[cfg(not(feature = "tokio"))]
impl DeadlineTimer {
    fn new() -> Self {
        Self
    }

    #[allow(clippy::unused_self, clippy::needless_pass_by_ref_mut)]
    fn poll_until(self: Pin<&mut Self>, _: Instant, _: &mut TaskContext<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
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
}
