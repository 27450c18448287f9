//! The connector wrapper: times each new connection and tags it, so every response says which
//! connection carried it.

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll, ready},
    time::{Duration, Instant},
};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use pin_project_lite::pin_project;
use tower_service::Service;

/// A connector that times each connection it makes (DNS and connect together, as the wrapped
/// connector does them) and tags it with a [`ConnectInfo`], which hyper-util's client puts in
/// the extensions of every response the connection carries. [`Lifecycle`](super::Lifecycle)
/// reads it to tell a new connection from a reused one.
///
/// See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct TimedConnector<C> {
    inner: C,
}

impl<C> TimedConnector<C> {
    /// Wraps `inner`, e.g. hyper-util's `HttpConnector`.
    pub const fn new(inner: C) -> Self {
        Self { inner }
    }

    /// Gets a reference to the inner connector.
    pub const fn get_ref(&self) -> &C {
        &self.inner
    }

    /// Gets a mutable reference to the inner connector.
    pub const fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner connector.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C> Service<Uri> for TimedConnector<C>
where
    C: Service<Uri>,
{
    type Response = TimedConnection<C::Response>;
    type Error = C::Error;
    type Future = ConnectFuture<C::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        ConnectFuture {
            inner: self.inner.call(uri),
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// The future of [`TimedConnector`].
    pub struct ConnectFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
    }
}

impl<F> fmt::Debug for ConnectFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ConnectFuture))
            .field("inner", &format_args!("..."))
            .field("started", &self.started)
            .finish()
    }
}

impl<F, T, E> Future for ConnectFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<TimedConnection<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let io = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(TimedConnection {
            inner: io,
            info: ConnectInfo::new(this.started.elapsed()),
        }))
    }
}

pin_project! {
    /// A connection made by [`TimedConnector`]: the inner transport, unchanged, which notes when
    /// it last wrote (the end of a request's write).
    pub struct TimedConnection<T> {
        #[pin]
        inner: T,
        info: ConnectInfo,
    }
}

impl<T> fmt::Debug for TimedConnection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(TimedConnection))
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<T: Connection> Connection for TimedConnection<T> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.info.clone())
    }
}

impl<T: Read> Read for TimedConnection<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: Write> Write for TimedConnection<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = ready!(this.inner.poll_write(cx, buf));
        if matches!(written, Ok(n) if n > 0) {
            this.info.wrote();
        }
        Poll::Ready(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = ready!(this.inner.poll_write_vectored(cx, bufs));
        if matches!(written, Ok(n) if n > 0) {
            this.info.wrote();
        }
        Poll::Ready(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Which connection carried a response, how long it took to make, and when it last wrote: a
/// response extension set by [`TimedConnector`]'s connections. Clones share it.
#[derive(Clone)]
pub struct ConnectInfo(Arc<Shared>);

struct Shared {
    connect: Duration,
    epoch: Instant,
    /// Nanoseconds after `epoch` of the last write, plus one (0: never wrote).
    last_write: AtomicU64,
    /// Whether a response already claimed the connection as new.
    claimed: AtomicBool,
}

impl ConnectInfo {
    pub(crate) fn new(connect: Duration) -> Self {
        Self(Arc::new(Shared {
            connect,
            epoch: Instant::now(),
            last_write: AtomicU64::new(0),
            claimed: AtomicBool::new(false),
        }))
    }

    /// How long making the connection took (name resolution and connect, and whatever else the
    /// wrapped connector does, such as a TLS handshake).
    #[must_use]
    pub fn connect_time(&self) -> Duration {
        self.0.connect
    }

    /// When the connection was made.
    #[must_use]
    pub fn connected_at(&self) -> Instant {
        self.0.epoch
    }

    /// When the connection last wrote bytes, if it has.
    #[must_use]
    pub fn last_write(&self) -> Option<Instant> {
        match self.0.last_write.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.0.epoch + Duration::from_nanos(nanos - 1)),
        }
    }

    /// Whether `self` and `other` are the same connection.
    #[must_use]
    pub fn same_connection(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// `true` for the first caller only: the call that made the connection (its first
    /// response), as opposed to the calls that reuse it.
    pub(crate) fn claim(&self) -> bool {
        !self.0.claimed.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn wrote(&self) {
        // Saturates after 584 years of connection.
        let nanos = u64::try_from(self.0.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.0.last_write.store(nanos + 1, Ordering::Release);
    }
}

impl fmt::Debug for ConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ConnectInfo))
            .field("connect_time", &self.0.connect)
            .field("claimed", &self.0.claimed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
